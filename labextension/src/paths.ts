/** Paths in a sandbox: its working directory, how files are named, shown, uploaded and downloaded. Pure code. */
import type { IFileEntry, ISandbox, IServerConfig } from './wire';

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

/**
 * Where a sandbox's file copied into the workspace goes (a contents API path): beside the sandbox's
 * notebook when it has one, else in the file browser's folder; named as in the sandbox
 * ("out/a.csv" -> "a.csv").
 */
export function workspaceTarget(path: string, notebookPath: string | null, browserFolder: string | null): string {
  const folder = notebookPath ? notebookPath.split('/').slice(0, -1).join('/') : (browserFolder ?? '');
  const name = downloadName(path);
  return folder ? `${folder.replace(/\/+$/, '')}/${name}` : name;
}

/** The largest file the server takes into a sandbox: its request limit, and the sandbox's disk. */
export function uploadLimit(sandbox: ISandbox, config: IServerConfig | null): number {
  return Math.min(config?.max_upload_size ?? Infinity, sandbox.spec.disk);
}
