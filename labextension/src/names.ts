/** Names and paths: which sandbox a notebook uses, how files are named and shown. Pure code. */
import type { IFileEntry, IOneShot, ISandbox, IServerConfig } from './wire';

/**
 * The default sandbox of a notebook: tied to its kernel, not its path, so that the
 * `%%sandbox` magic (which names it the same way, from the kernel's connection file) and
 * "Run cell in sandbox" share it, and a rename keeps it. The server removes it when that
 * kernel shuts down.
 */
export function notebookSandboxName(kernelId: string): string {
  return `notebook-${kernelId.slice(0, 12)}`;
}

/** Whether an entry is a folder to browse into rather than a file to download. */
export function isDirectory(entry: IFileEntry): boolean {
  return entry.type === 'dir';
}

/** The name a downloaded file is saved under: the path's last part ("/home/user/a.txt" -> "a.txt"). */
export function downloadName(path: string): string {
  const base = path.replace(/\/+$/, '').split('/').pop() ?? '';
  return base && base !== '.' && base !== '..' ? base : 'download';
}

/** The sandboxes' working directory, where relative paths start. */
export const WORKDIR = '/home/user';

/** A path as the panel shows it: relative to the working directory ("/home/user/out/a.csv" -> "out/a.csv"). */
export function relativePath(path: string, root = WORKDIR): string {
  if (path === root || path === root + '/') {
    return '.';
  }
  return path.startsWith(root + '/') ? path.slice(root.length + 1) : path;
}

/** Where an upload of `fileName` into folder `dir` (relative, "." for the root) goes. */
export function uploadPath(dir: string, fileName: string): string {
  const rel = relativePath(dir);
  return rel === '.' || rel === '' ? fileName : `${rel.replace(/\/+$/, '')}/${fileName}`;
}

/** The largest file the server takes into a sandbox: its request limit, and the sandbox's disk. */
export function uploadLimit(sandbox: ISandbox, config: IServerConfig | null): number {
  return Math.min(config?.max_upload_size ?? Infinity, sandbox.spec.disk);
}

/** GET .../v1/executions may answer a list or {executions: [...]}. */
export function oneShotList(data: unknown): IOneShot[] {
  const list = Array.isArray(data) ? data : (data as { executions?: unknown } | null)?.executions;
  return Array.isArray(list) ? (list as IOneShot[]) : [];
}

/** A one-shot's duration: the server's once finished, else the time since it started. */
export function oneShotDuration(e: IOneShot, nowMs: number): number | null {
  if (e.duration_ms !== null && e.duration_ms !== undefined) {
    return e.duration_ms;
  }
  const started = e.started_at ? Date.parse(e.started_at) : NaN;
  return isNaN(started) ? null : Math.max(0, nowMs - started);
}

export const ACTIVE_ONE_SHOT = new Set(['pending', 'running']);

/** The server's error message from an error response body ({message, reason} JSON). */
export function errorMessage(status: number, body: string): string {
  try {
    const data = JSON.parse(body);
    if (data && typeof data === 'object' && (data.message || data.reason)) {
      return String(data.message || data.reason);
    }
  } catch {
    // not JSON: fall through to the text itself
  }
  const text = body.trim();
  return text ? `${text.slice(0, 300)} (HTTP ${status})` : `HTTP ${status}`;
}

/** The field an error body names, if any. */
export function errorField(body: string): string | null {
  try {
    const data = JSON.parse(body);
    return data && typeof data.field === 'string' ? data.field : null;
  } catch {
    return null;
  }
}
