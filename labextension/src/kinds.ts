/**
 * The two kinds of sandbox: those that run code sent to them, and those that run a notebook's
 * whole kernel ("Python 3 (sandboxed)"). A kernel's sandbox answers 409 to execute, contexts
 * and restart (the notebook does those); interrupt, files and logs work. Pure code.
 */
import { notebookSandboxName } from './notebooksandbox';
import type { ISandbox } from './wire';

/** What the panel offers on a sandbox (beyond removing it). */
export type SandboxAction = 'interrupt' | 'restart' | 'upload' | 'logs' | 'terminal';

export function isNotebookKernel(sandbox: ISandbox): boolean {
  return sandbox.kind === 'kernel';
}

/** The actions the server accepts for this sandbox, in the order the panel shows them. */
export function sandboxActions(sandbox: ISandbox): SandboxAction[] {
  const all: SandboxAction[] = ['interrupt', 'restart', 'upload', 'logs', 'terminal'];
  return isNotebookKernel(sandbox) ? all.filter(a => a !== 'restart') : all;
}

/** The part of a session the panel needs to name a kernel's notebook. */
export interface ISessionLike {
  path: string;
  kernel?: { id: string } | null;
}

/**
 * The path of the notebook (or console) a sandbox goes with: the one whose kernel runs in it, or
 * whose kernel `%%sandbox` and run-in-sandbox named it for (`notebook-` and the kernel id's first
 * 12 characters). The open sessions first (a rename shows at once), else what the server said.
 */
export function kernelSessionPath(sandbox: ISandbox, sessions: Iterable<ISessionLike>): string | null {
  for (const session of sessions) {
    const id = session.kernel?.id;
    if (id && (id === sandbox.kernel_id || sandbox.name === notebookSandboxName(id))) {
      return session.path;
    }
  }
  return sandbox.notebook_path ?? null;
}

/** What the panel calls a sandbox: by its notebook's file name when it goes with one. */
export function sandboxLabel(sandbox: ISandbox, sessionPath: string | null): string {
  return sessionPath?.split('/').pop() || sandbox.name;
}

/** The Running panel's hover text for a sandbox: what it is, its id and state. */
export function runningTitle(sandbox: ISandbox, path: string | null): string {
  const what = isNotebookKernel(sandbox) ? 'Notebook kernel sandbox' : 'Sandbox';
  const of = path ? ` of ${path}` : '';
  const reason = sandbox.status_reason ? ` (${sandbox.status_reason})` : '';
  return `${what} ${sandbox.name}${of}\nId: ${sandbox.id}\nStatus: ${sandbox.status}${reason}`;
}

/** What a notebook says when its sandboxed kernel died and restarts: the server's reason, then what follows. */
export function kernelDeathText(path: string, reason: string): string {
  const why = reason.trim().replace(/\.?$/, '.');
  return `${why} The kernel of ${path} restarts automatically in its sandbox; its variables are lost.`;
}
