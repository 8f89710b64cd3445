/**
 * Right-click menus on the Sandboxes panel's rows (JupyterLab's context menu, by selector): a
 * sandbox row offers its logs, copying its id, interrupt, restart, upload and remove; a one-shot
 * row its details, copying its id and kill. Each item says it came from a row (`args.row`), and the
 * command finds which row through the context menu's hit test.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { api } from './api';
import { CommandIDs, OneShotCommandIDs } from './commands';
import { ACTIVE_ONE_SHOT } from './oneshots';
import { report } from './panel/panel';
import { SandboxStore } from './store';

export const SANDBOX_ROW = '.jp-SandboxItem';
export const ONE_SHOT_ROW = '.jp-SandboxOneShot';

/** The `data-id` of the row a context menu was opened on, when the command came from one. */
export function rowId(app: JupyterFrontEnd, args: ReadonlyPartialJSONObject, selector: string): string | null {
  if (!args.row) {
    return null;
  }
  const node = app.contextMenuHitTest(n => n.matches(selector));
  return node?.dataset.id ?? null;
}

/** The menus on sandbox rows (commands of index.ts) and one-shot rows (their commands, made here). */
export function addRowMenus(app: JupyterFrontEnd, store: SandboxStore, toggleOneShot: (id: string) => void): void {
  const { commands, contextMenu } = app;
  const row = { row: true };
  const sandboxItems = [
    CommandIDs.logs,
    CommandIDs.copyId,
    CommandIDs.interrupt,
    CommandIDs.restart,
    CommandIDs.upload,
    CommandIDs.remove
  ];
  sandboxItems.forEach((command, rank) => contextMenu.addItem({ command, args: row, selector: SANDBOX_ROW, rank }));

  const oneShot = (args: ReadonlyPartialJSONObject) => rowId(app, args, ONE_SHOT_ROW);
  commands.addCommand(OneShotCommandIDs.details, {
    label: 'Show Code Output and Status',
    execute: args => {
      const id = oneShot(args);
      if (id) {
        toggleOneShot(id);
      }
    }
  });
  commands.addCommand(OneShotCommandIDs.copyId, {
    label: 'Copy Execution Id',
    execute: args => {
      const id = oneShot(args);
      if (id) {
        Clipboard.copyToSystem(id);
        Notification.info(`Copied ${id}`, { autoClose: 2000 });
      }
    }
  });
  commands.addCommand(OneShotCommandIDs.kill, {
    label: 'Kill Execution',
    isEnabled: args => {
      const id = oneShot(args);
      return id !== null && ACTIVE_ONE_SHOT.has(store.oneShots.find(e => e.execution_id === id)?.status ?? '');
    },
    execute: async args => {
      const id = oneShot(args);
      if (id) {
        await report(`Kill ${id}`, () => api.killOneShot(id));
        await store.refreshAll();
      }
    }
  });
  Object.values(OneShotCommandIDs).forEach((command, rank) =>
    contextMenu.addItem({ command, args: row, selector: ONE_SHOT_ROW, rank })
  );
}
