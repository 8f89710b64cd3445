/**
 * The server's wire shapes (jupyter_sandbox/models.py, handlers.py and the event schema),
 * declared once for the whole extension. Types only: no runtime imports.
 */

/** A sandbox as GET sandbox/api/sandboxes returns it (jupyter_sandbox.models.SandboxModel). */
export interface ISandbox {
  id: string;
  name: string;
  owner: string;
  status: string;
  /** Why the status is what it is when that is worth saying (e.g. how it exited). */
  status_reason?: string | null;
  backend: string;
  spec: {
    image: string | null;
    memory: number;
    cpus: number;
    pids: number;
    disk: number;
    network: boolean;
    [key: string]: unknown;
  };
  created: number;
  last_activity: number;
  contexts: IContext[];
  isolation?: string;
  e2b_url?: string | null;
  /** The notebook kernel this sandbox belongs to (removed when it shuts down), if any. */
  kernel_id?: string | null;
}

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

/** GET sandbox/api/config: what the create form shows. Sizes in bytes. */
export interface IServerConfig {
  backend: string;
  isolation: string;
  images: string[];
  defaults: {
    image: string;
    memory: number;
    cpus: number;
    disk: number;
    pids: number;
    timeout: number | null;
    network: boolean;
  };
  maximums: {
    memory: number;
    cpus: number;
    disk: number;
    pids: number;
    timeout: number;
    sandboxes_per_user: number;
    contexts_per_sandbox: number;
  };
  allow_network: boolean;
  /** The largest request body; an upload is also held to the sandbox's disk size. */
  max_upload_size: number;
}

/** GET sandboxes/{id}/logs */
export interface ILogs {
  container: string | null;
  contexts: { id: string; language: string; kernel_log: string }[];
}

/** A one-shot execution (python-executor's ExecutionResult). */
export interface IOneShot {
  execution_id: string;
  status: string;
  duration_ms?: number | null;
  started_at?: string | null;
  finished_at?: string | null;
  exit_code?: number | null;
  error?: string | null;
}

/** One decoded NDJSON line of POST sandboxes/{id}/execute. */
export interface IWireEvent {
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

/** The id of the server's sandbox event schema (jupyter_sandbox/event_schemas/sandbox/v1.yaml). */
export const SANDBOX_EVENTS = 'https://events.jupyter.org/jupyter_sandbox/sandbox/v1';

/** jupyter_server's own kernel events: an "interrupt" of a notebook's kernel stops its sandbox cell too. */
export const KERNEL_ACTIONS = 'https://events.jupyter.org/jupyter_server/kernel_actions/v1';

/** One sandbox event as it arrives on the event bus. */
export interface ISandboxEvent {
  action: 'created' | 'status' | 'removed' | 'execution_started' | 'execution_finished';
  sandbox_id: string;
  name: string;
  status: string;
  executing?: number;
}

/** The server's error body ({message, reason, field?}). */
export interface IErrorBody {
  message?: string;
  reason?: string;
  field?: string;
}
