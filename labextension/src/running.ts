/**
 * Sandboxes in JupyterLab's Running panel (the @jupyterlab/running extension point), beside
 * kernels and terminals: each opens in the Sandboxes panel and shuts down with the `remove`
 * command (which asks first when a notebook's kernel lives in it); "Shut Down All" removes them all.
 */
import type { IRunningSessions } from '@jupyterlab/running';
import type { Session } from '@jupyterlab/services';
import { notebookIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';

import { CommandIDs } from './commands';
import { sandboxIcon } from './icons';
import { isNotebookKernel, kernelSessionPath, runningTitle, sandboxLabel } from './kinds';
import { SandboxStore } from './store';
import type { ISandbox } from './wire';

export function runningSandboxes(
  store: SandboxStore,
  commands: CommandRegistry,
  sessions: Session.IManager | null
): IRunningSessions.IManager {
  const item = (s: ISandbox): IRunningSessions.IRunningItem => {
    const path = sessions ? kernelSessionPath(s, sessions.running()) : s.notebook_path;
    return {
      className: 'jp-SandboxRunningItem',
      icon: () => (isNotebookKernel(s) ? notebookIcon : sandboxIcon),
      label: () => sandboxLabel(s, path),
      labelTitle: () => runningTitle(s, path),
      detail: () => s.status,
      open: () => void commands.execute(CommandIDs.openPanel, { id: s.id }),
      shutdown: () => void commands.execute(CommandIDs.remove, { id: s.id })
    };
  };
  return {
    name: 'Sandboxes',
    running: () => store.sandboxes.map(item),
    // the Running panel has asked already (shutdownAllConfirmationText)
    shutdownAll: () => {
      for (const s of store.sandboxes) {
        void commands.execute(CommandIDs.remove, { id: s.id, confirmed: true });
      }
    },
    refreshRunning: () => void store.refresh(),
    runningChanged: store.changed,
    shutdownLabel: 'Remove Sandbox',
    shutdownAllLabel: 'Shut Down All',
    shutdownAllConfirmationText:
      'Remove all your sandboxes? Their files and variables are lost, and notebooks whose kernel runs in one lose it.'
  };
}
