/**
 * The two kinds of sandbox: those that run code sent to them, and those that run a notebook's
 * whole kernel ("Python 3 (sandboxed)"). A kernel's sandbox answers 409 to execute, contexts
 * and restart (the notebook does those); interrupt, files and logs work. Pure code.
 */
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

/** The path of the notebook (or console) whose kernel this sandbox runs, if its session is open. */
export function kernelSessionPath(sandbox: ISandbox, sessions: Iterable<ISessionLike>): string | null {
  if (!isNotebookKernel(sandbox) || !sandbox.kernel_id) {
    return null;
  }
  for (const session of sessions) {
    if (session.kernel?.id === sandbox.kernel_id) {
      return session.path;
    }
  }
  return null;
}

/** What the panel calls a sandbox: a kernel's sandbox by its notebook's file name when known. */
export function sandboxLabel(sandbox: ISandbox, sessionPath: string | null): string {
  if (!isNotebookKernel(sandbox) || !sessionPath) {
    return sandbox.name;
  }
  return sessionPath.split('/').pop() || sandbox.name;
}
