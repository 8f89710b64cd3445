/**
 * Removing a sandbox that a notebook's whole kernel lives in: asked first (the kernel, its
 * variables and the sandbox's files go), then the notebook is left in a clear state: a dialog
 * offers a new kernel at once, instead of a "Disconnected" notebook with a cell waiting at [*].
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

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
