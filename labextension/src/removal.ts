/**
 * Removing a sandbox that a notebook's whole kernel lives in: asked first (the kernel, its
 * variables and the sandbox's files go), then every open notebook on that kernel is left in a
 * clear state, in this page and in the user's other pages and windows: no session ("No Kernel")
 * and a dialog offering a new kernel at once, instead of a "Disconnected" notebook with a cell
 * waiting at [*]. The page that removes it shuts its own notebooks' sessions down (a failure is
 * reported); the other pages hear of the removal on the user's sandbox events (the store's
 * `removed`) and let go of the session the server drops with the kernel. Each notebook gets one
 * dialog, however many of those reach it.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { isNotebookKernel } from './kinds';
import { report } from './panel/panel';
import type { SandboxStore } from './store';
import type { ISandbox } from './wire';

/** Whether the user agrees to remove a notebook kernel's sandbox (and so its kernel). */
export async function confirmKernelRemoval(sandbox: ISandbox, path: string | null): Promise<boolean> {
  const result = await showDialog({
    title: 'Remove the kernel’s sandbox?',
    body:
      `The kernel of ${path ?? `kernel ${sandbox.kernel_id}`} runs in sandbox ${sandbox.name}. ` +
      'Removing it shuts that kernel down: its variables and the sandbox’s files are lost.',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
  });
  return result.button.accept;
}

/** The open notebooks whose kernel is `kernelId`. */
export function notebooksOfKernel(tracker: INotebookTracker, kernelId: string): NotebookPanel[] {
  const found: NotebookPanel[] = [];
  tracker.forEach(panel => {
    if (panel.sessionContext.session?.kernel?.id === kernelId) {
      found.push(panel);
    }
  });
  return found;
}

/** After its kernel was shut down with its sandbox: offer the notebook a new kernel of the same kind. */
export async function offerRestart(panel: NotebookPanel, kernelName: string): Promise<void> {
  const result = await showDialog({
    title: 'Kernel shut down',
    body:
      `The sandbox of ${panel.context.path} was removed and its kernel with it. ` +
      'Start a new kernel (in a new sandbox) to run cells again?',
    buttons: [Dialog.cancelButton({ label: 'Not Now' }), Dialog.okButton({ label: 'Restart Kernel' })]
  });
  if (result.button.accept && !panel.isDisposed) {
    await panel.sessionContext.changeKernel({ name: kernelName });
  }
}

/** The notebooks of one page losing their kernel with its sandbox, each told once. */
export class KernelSandboxRemovals {
  constructor(
    private readonly tracker: INotebookTracker,
    store: SandboxStore
  ) {
    store.removed.connect((_, sandbox) => {
      if (isNotebookKernel(sandbox) && sandbox.kernel_id) {
        void this.removed(sandbox.kernel_id);
      }
    }, this);
  }

  /** Whether the notebook is being told that its kernel went with its sandbox. */
  isLeaving(panel: NotebookPanel): boolean {
    return this.leaving.has(panel);
  }

  /**
   * This page removes kernel `kernelId`'s sandbox (asked already): by shutting down its notebooks'
   * sessions here (the server drops a session whose kernel is gone, so a new kernel starts a new
   * one), else the kernel (`shutdownKernel`); the sandbox goes with the kernel.
   */
  async remove(kernelId: string, what: string, shutdownKernel: () => Promise<void>): Promise<void> {
    const notebooks = this.take(kernelId);
    const kernelName = notebooks[0]?.sessionContext.session?.kernel?.name;
    try {
      const done = await report(what, async () => {
        await (notebooks.length ? Promise.all(notebooks.map(nb => nb.sessionContext.shutdown())) : shutdownKernel());
        return true;
      });
      if (done && kernelName) {
        await Promise.all(notebooks.map(nb => offerRestart(nb, kernelName)));
      }
    } finally {
      notebooks.forEach(nb => this.leaving.delete(nb));
    }
  }

  /** A kernel's sandbox was removed (here, in another page, by the CLI or an admin): its notebooks here. */
  private async removed(kernelId: string): Promise<void> {
    await Promise.all(
      this.take(kernelId).map(async nb => {
        try {
          const kernelName = nb.sessionContext.session?.kernel?.name;
          await letGo(nb);
          if (kernelName) {
            await offerRestart(nb, kernelName);
          }
        } finally {
          this.leaving.delete(nb);
        }
      })
    );
  }

  /** The open notebooks on the kernel that are not being told already, marked as being told. */
  private take(kernelId: string): NotebookPanel[] {
    const notebooks = notebooksOfKernel(this.tracker, kernelId).filter(nb => !this.leaving.has(nb));
    notebooks.forEach(nb => this.leaving.add(nb));
    return notebooks;
  }

  private readonly leaving = new Set<NotebookPanel>();
}

/**
 * A notebook whose kernel is gone lets go of its session: shut down (the server may have dropped it
 * already: 404), or, if the server refuses (410: it had the session without its kernel, and deletes
 * it), just forgotten here.
 */
async function letGo(panel: NotebookPanel): Promise<void> {
  try {
    await panel.sessionContext.shutdown();
  } catch {
    panel.sessionContext.session?.dispose();
  }
}
