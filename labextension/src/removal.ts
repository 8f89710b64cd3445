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
      if (isNotebookKernel(sandbox) && sandbox.kernel_id && !this.removedHere.has(sandbox.kernel_id)) {
        void this.removed(sandbox);
      }
    }, this);
    // a notebook whose kernel this page shuts down on purpose (Shut Down Kernel, closing it) is not
    // told: its sandbox's removal is that shutdown's doing
    tracker.widgetAdded.connect((_, nb) => {
      nb.sessionContext.statusChanged.connect((_, status) => {
        if (status === 'terminating') {
          this.endedHere.add(nb);
        }
      });
      nb.sessionContext.sessionChanged.connect((_, change) => {
        if (change.newValue) {
          this.endedHere.delete(nb);
        }
      });
    });
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
    this.removedHere.add(kernelId); // its event, whenever it comes, finds these notebooks told
    const notebooks = this.take(notebooksOfKernel(this.tracker, kernelId));
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

  /**
   * A kernel's sandbox was removed elsewhere (another page, the CLI, an admin): its notebooks here.
   * Those still on the kernel, and those of its notebook that have lost their session already
   * (JupyterLab's poll of the sessions may see it gone first), unless this page ended it.
   */
  private async removed(sandbox: ISandbox): Promise<void> {
    const lost: NotebookPanel[] = [];
    this.tracker.forEach(nb => {
      const session = nb.sessionContext.session;
      if (this.endedHere.has(nb) || nb.sessionContext.kernelDisplayStatus === 'starting') {
        return; // this page ended its session, or is changing its kernel
      }
      if (
        session
          ? session.kernel?.id === sandbox.kernel_id
          : !!sandbox.notebook_path && nb.context.path === sandbox.notebook_path
      ) {
        lost.push(nb);
      }
    });
    await Promise.all(
      this.take(lost).map(async nb => {
        try {
          const kernelName = kernelNameOf(nb);
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

  /** Those of `notebooks` not being told already, marked as being told. */
  private take(notebooks: NotebookPanel[]): NotebookPanel[] {
    const untold = notebooks.filter(nb => !this.leaving.has(nb));
    untold.forEach(nb => this.leaving.add(nb));
    return untold;
  }

  private readonly removedHere = new Set<string>();
  private readonly endedHere = new WeakSet<NotebookPanel>();
  private readonly leaving = new Set<NotebookPanel>();
}

/** The kernel a notebook had: its session's, else the one its metadata names. */
function kernelNameOf(panel: NotebookPanel): string | undefined {
  const spec = panel.model?.getMetadata('kernelspec') as { name?: string } | undefined;
  return panel.sessionContext.session?.kernel?.name ?? spec?.name;
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
