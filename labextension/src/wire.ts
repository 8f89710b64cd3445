/**
 * The server's wire shapes, declared once for the whole extension. Types only: no runtime
 * imports. tests/test_wire_types.py checks each interface against its Python declaration: the
 * dataclass in jupyter_sandbox/models.py, else server/openapi.yaml or the event schema.
 */

/** A sandbox as GET sandbox/api/sandboxes returns it (jupyter_sandbox.models.SandboxModel). */
export interface ISandbox {
  id: string;
  name: string;
  owner: string;
  status: string;
  backend: string;
  spec: ISandboxSpec;
  created: number;
  last_activity: number;
  contexts: IContext[];
  /** What the backend isolates, said plainly. */
  isolation: string;
  e2b_url: string | null;
  /** The notebook kernel this sandbox belongs to (removed when it shuts down), if any. */
  kernel_id: string | null;
  /** Why the status is what it is when that is worth saying (e.g. how it exited). */
  status_reason: string | null;
  /**
   * "kernel": it runs a notebook's whole kernel (the "Python 3 (sandboxed)" kernelspec); code,
   * contexts and restart go through the notebook (the server answers 409 to them here).
   */
  kind: 'sandbox' | 'kernel';
  /** Unix time it is removed at unless extended (E2B's timeout); null: no deadline. */
  end_at: number | null;
  /** The E2B template name it was made from (sandbox/e2b/api), if any. */
  template: string | null;
  /**
   * The notebook whose kernel it goes with (its path now, renames followed), from the server's
   * sessions; null when no open notebook holds that kernel.
   */
  notebook_path: string | null;
  /** Its container is stopped (paused): resume, or code sent to it, brings it back (issue 23). */
  paused: boolean;
  /** Of its last pause: whether its kernels' variables were kept (null: never paused). */
  memory_kept: boolean | null;
  /** Why its memory was not kept (e.g. runc's checkpoint needs CRIU). */
  memory_note: string | null;
  /** Its memory limit as set, said as in cells and the CLI: "1 GiB of memory plus 512 MiB of disk". */
  limit: string;
}

/** What a sandbox is made of (jupyter_sandbox.models.SandboxSpec). Sizes in bytes. */
export interface ISandboxSpec {
  /** null: the server's default image */
  image: string | null;
  memory: number;
  cpus: number;
  pids: number;
  disk: number;
  network: boolean;
  /** with network, the allow-list its egress proxy enforces ({allow, deny}); null: unfiltered (issue 23) */
  egress: { [key: string]: string[] } | null;
  env: { [key: string]: string };
  /** default per-execution timeout in seconds */
  timeout: number | null;
  /** null: the backend's default (runc) */
  runtime: string | null;
  metadata: { [key: string]: string };
  /** the persistent volume mounted (null: none; docs/volumes.md) */
  volume: string | null;
  volume_read_only: boolean;
}

/** One kernel in a sandbox (jupyter_sandbox.models.ContextModel). */
export interface IContext {
  id: string;
  language: string;
  cwd: string;
}

export interface IStats {
  cpu_percent: number;
  memory_used: number;
  memory_limit: number;
  pids: number | null;
}

/** One entry of GET sandboxes/{id}/files for a directory (the backends' list_files). */
export interface IFileEntry {
  name: string;
  /** absolute inside the sandbox, e.g. /home/user/out/data.csv */
  path: string;
  /** "dir", "file" or "symlink" */
  type: string;
  size: number;
  modified: number;
}

/**
 * One row of GET sandbox/api/admin/sandboxes: any user's sandbox, for holders of the admin scope
 * (openapi.yaml's AdminSandbox). Sizes in bytes, times in Unix seconds.
 */
export interface IAdminSandbox {
  id: string;
  name: string;
  owner: string;
  status: string;
  kind: 'sandbox' | 'kernel';
  created: number;
  /** seconds since it was created, by the server's clock */
  age: number;
  last_activity: number;
  memory_limit: number;
  cpus: number;
  /** null: not running, or the engine did not say */
  memory_used: number | null;
  cpu_percent: number | null;
}

/** GET sandbox/api/config: what the create form shows (jupyter_sandbox.models.ServerConfig). Sizes in bytes. */
export interface IServerConfig {
  backend: string;
  isolation: string;
  /** The allowed images, the default first. */
  images: string[];
  defaults: IConfigDefaults;
  maximums: IConfigMaximums;
  allow_network: boolean;
  /** The largest request body; an upload is also held to the sandbox's disk size. */
  max_upload_size: number;
  /** 'server': this server runs the sandboxes; 'hub': it forwards to the JupyterHub sandbox service. */
  mode: string;
  /** The names any sandbox's allow-list may hold (empty: any name) (issue 23). */
  network_allow_max: string[];
}

/** What a sandbox gets for each field it leaves out (jupyter_sandbox.models.ConfigDefaults). */
export interface IConfigDefaults {
  image: string;
  memory: number;
  cpus: number;
  disk: number;
  pids: number;
  timeout: number | null;
  network: boolean;
}

/** The most a sandbox may ask for (jupyter_sandbox.models.ConfigMaximums). */
export interface IConfigMaximums {
  memory: number;
  cpus: number;
  disk: number;
  pids: number;
  timeout: number;
  sandboxes_per_user: number;
  contexts_per_sandbox: number;
}

/** GET sandboxes/{id}/logs (jupyter_sandbox.models.SandboxLogs). */
export interface ILogs {
  /** null on a backend without containers (local) */
  container: string | null;
  contexts: IContextLog[];
}

export interface IContextLog {
  id: string;
  language: string;
  kernel_log: string;
}

/** A one-shot execution (python-executor's ExecutionResult, jupyter_sandbox.models.ExecutionResult). */
export interface IOneShot {
  execution_id: string;
  status: string;
  stdout: string | null;
  stderr: string | null;
  exit_code: number | null;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  result: string | null;
  /** present (with error_line) only after a Python traceback through the user's files */
  error_type?: string | null;
  error_line?: number | null;
  /** the entrypoint's text, its first 64 KiB (then a line saying how much was cut) */
  code: string;
}

/** One decoded NDJSON line of POST sandboxes/{id}/execute. */
export interface IWireEvent {
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

/** One sandbox event as it arrives on the user's event stream (sandbox/api/events; event_schemas/sandbox/v1.yaml). */
export interface ISandboxEvent {
  action: 'created' | 'status' | 'removed' | 'execution_started' | 'execution_finished';
  sandbox_id: string;
  name: string;
  status: string;
  executing?: number;
}

/** On the same stream: the user interrupted a notebook's kernel, so its sandbox cell stops too
 * (event_schemas/kernel_interrupted/v1.yaml). */
export interface IKernelInterruptedEvent {
  action: 'kernel_interrupted';
  kernel_id: string;
}

/** The server's error body ({message, reason, field?}). */
export interface IErrorBody {
  message?: string;
  reason?: string;
  field?: string;
}

/** A minted API key as GET sandbox/api/keys lists it: never the secret (core/api_keys.py KeyInfo). */
export interface IApiKey {
  id: string;
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  /** Seconds since the epoch. */
  created: number;
  name: string;
}

/** One of the user's persistent volumes (sandbox/api/volumes; models.VolumeModel). Sizes in bytes. */
export interface IVolume {
  id: string;
  name: string;
  owner: string;
  /** Its limit, as made. */
  size: number;
  used: number;
  /** What its filesystem holds (size less the filesystem's own metadata); 0 when not measured. */
  capacity: number;
  mount_path: string;
  created: number;
  /** Ids of the user's sandboxes that mount it. */
  sandboxes: string[];
}

/** POST sandbox/api/keys: the new key's listing and, this once, its secret. */
export interface IMintedKey extends IApiKey {
  key: string;
}

/** A named copy of a sandbox's working directory, its owner's only (issue 23). */
export interface ISnapshot {
  name: string;
  owner: string;
  created: number;
  size: number;
  source: string;
  spec: ISandboxSpec;
  memory_kept: boolean;
}
