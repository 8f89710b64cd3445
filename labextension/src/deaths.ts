/**
 * A sandboxed kernel's death said once, with its reason (issue 26).
 *
 * When a notebook's kernel dies, the server restarts it and JupyterLab's notebook panel shows
 * "Kernel Restarting: the kernel appears to have died". That dialog is the panel's own handler of
 * its session's status (`NotebookPanel._onSessionStatusChanged`, connected in its constructor);
 * no token replaces it (`ISessionContextDialogs` covers only kernel selection and restart). For a
 * kernel that runs in a sandbox the server knows why it died: the provisioner puts the reason in
 * the kernel's model (`reason`, the words the cell that died shows too), so the notebook's one
 * dialog says that instead. Every other kernel, and any death without a reason, keeps JupyterLab's
 * dialog. A notebook whose kernel's sandbox was removed gets neither: removal.ts offers it a restart.
 */
import { Dialog, type ISessionContext, showDialog } from '@jupyterlab/apputils';
import { type INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { type Kernel, KernelAPI, type ServerConnection } from '@jupyterlab/services';

import { kernelDeathText } from './kinds';
import { kernelIsSandboxed } from './runner';

type StatusSlot = (this: NotebookPanel, sender: ISessionContext, status: Kernel.Status) => void;

/** JupyterLab's handler (private, so looked up and checked: if a release renames it, its dialog stays). */
const panelStatusSlot = (NotebookPanel.prototype as unknown as { _onSessionStatusChanged?: StatusSlot })
  ._onSessionStatusChanged;

/**
 * Take over the kernel-death dialog of every notebook the tracker opens. `isLeaving(panel)`: the
 * notebook's kernel went with its removed sandbox, and another dialog already offers a restart.
 */
export function explainKernelDeaths(
  tracker: INotebookTracker,
  settings: ServerConnection.ISettings,
  isLeaving: (panel: NotebookPanel) => boolean
): void {
  if (typeof panelStatusSlot !== 'function') {
    console.warn('jupyter-sandbox: JupyterLab has no NotebookPanel._onSessionStatusChanged; its own dialog stays');
    return;
  }
  /** The dialog with the reason the server gives for the kernel's death; JupyterLab's (`generic`) without one. */
  const tellDeath = async (panel: NotebookPanel, kernelId: string, generic: () => void): Promise<void> => {
    let reason = '';
    try {
      reason = (await KernelAPI.getKernelModel(kernelId, settings))?.reason ?? '';
    } catch (error) {
      console.warn(`jupyter-sandbox: why kernel ${kernelId} died is not known:`, error);
    }
    if (!reason) {
      generic();
    } else if (!panel.isDisposed && !isLeaving(panel)) {
      await showDialog({
        title: 'Kernel Restarting',
        body: kernelDeathText(panel.context.path, reason),
        buttons: [Dialog.okButton({ label: 'Ok' })]
      });
    }
  };

  tracker.widgetAdded.connect((_, panel) => {
    const statusChanged = panel.sessionContext.statusChanged;
    if (!statusChanged.disconnect(panelStatusSlot, panel)) {
      return; // not connected as it was: leave the panel as JupyterLab made it
    }
    let told = false; // a series of automatic restarts is told once, as JupyterLab does
    statusChanged.connect((sender, status) => {
      const kernel = sender.session?.kernel;
      if (status === 'autorestarting' && kernel && kernelIsSandboxed(sender)) {
        if (!told && !isLeaving(panel)) {
          told = true;
          void tellDeath(panel, kernel.id, () => panelStatusSlot.call(panel, sender, status));
        }
        return;
      }
      if (status !== 'restarting' && status !== 'autorestarting') {
        told = false;
      }
      panelStatusSlot.call(panel, sender, status);
    }, panel);
  });
}
