/**
 * Pause and resume, snapshots and fork on the Sandboxes panel's rows (issue 23): items of a sandbox
 * row's context menu. A paused sandbox's badge says "paused" (its status) and its tooltip whether its
 * memory was kept (gVisor) or only its files (runc: the server says why).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { InputDialog, Notification } from '@jupyterlab/apputils';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { api } from './api';
import { rowId, SANDBOX_ROW } from './menus';
import { report } from './panel/panel';
import { SandboxStore } from './store';
import type { ISandbox } from './wire';

export const PauseCommandIDs = {
  pause: 'jupyter-sandbox:pause',
  resume: 'jupyter-sandbox:resume',
  snapshot: 'jupyter-sandbox:snapshot',
  fork: 'jupyter-sandbox:fork'
} as const;

/** Where the items go in a sandbox row's menu: after the row's own (menus.ts ranks 0-5). */
const FIRST_RANK = 10;

/** What a pause kept, in one sentence for a notification. */
export function pausedText(s: ISandbox): string {
  if (s.memory_kept) {
    return `${s.name} is paused; its variables are kept.`;
  }
  return `${s.name} is paused; its files are kept, not its variables (${s.memory_note ?? 'no checkpoint'}).`;
}

/** The row's commands (they need a row: not in the palette) and their context menu items. */
export function addPauseCommands(app: JupyterFrontEnd, store: SandboxStore): void {
  const { commands, contextMenu } = app;
  const rowSandbox = (args: ReadonlyPartialJSONObject): ISandbox | undefined => {
    const id = rowId(app, args, SANDBOX_ROW);
    return id ? store.find(id) : undefined;
  };
  // a notebook kernel's sandbox goes with its notebook: it is not paused, copied or forked from here
  const codeSandbox = (s: ISandbox | undefined): s is ISandbox => s !== undefined && s.kind === 'sandbox';

  commands.addCommand(PauseCommandIDs.pause, {
    label: 'Pause Sandbox',
    caption: 'Stop its container (no CPU or memory held); resume, or the next cell, brings it back',
    isVisible: args => {
      const s = rowSandbox(args);
      return codeSandbox(s) && !s.paused;
    },
    execute: async args => {
      const s = rowSandbox(args);
      if (codeSandbox(s)) {
        const paused = await report(`Pause ${s.name}`, () => api.pause(s.id));
        if (paused) {
          Notification.info(pausedText(paused), { autoClose: 6000 });
        }
        await store.refresh();
      }
    }
  });
  commands.addCommand(PauseCommandIDs.resume, {
    label: 'Resume Sandbox',
    isVisible: args => rowSandbox(args)?.paused === true,
    execute: async args => {
      const s = rowSandbox(args);
      if (s) {
        const resumed = await report(`Resume ${s.name}`, () => api.resume(s.id));
        if (resumed?.status_reason) {
          Notification.info(`${resumed.name}: ${resumed.status_reason}`, { autoClose: 6000 });
        }
        await store.refresh();
      }
    }
  });
  commands.addCommand(PauseCommandIDs.snapshot, {
    label: 'Take Snapshot of Files…',
    caption: 'Keep a named copy of its working directory on the server; new sandboxes can start from it',
    isVisible: args => codeSandbox(rowSandbox(args)),
    execute: async args => {
      const s = rowSandbox(args);
      if (!codeSandbox(s)) {
        return;
      }
      const answer = await InputDialog.getText({ title: `Snapshot of ${s.name}`, label: 'Name', text: s.name });
      if (!answer.button.accept || !answer.value) {
        return;
      }
      const name = answer.value;
      const taken = await report(`Snapshot of ${s.name}`, () => api.snapshot(s.id, name));
      if (taken) {
        Notification.success(`Snapshot ${taken.name} taken of ${s.name}`, { autoClose: 4000 });
      }
    }
  });
  commands.addCommand(PauseCommandIDs.fork, {
    label: 'Fork Sandbox',
    caption: 'A running copy: its spec and a copy of its files (not its variables)',
    isVisible: args => codeSandbox(rowSandbox(args)),
    execute: async args => {
      const s = rowSandbox(args);
      if (codeSandbox(s)) {
        const forked = await report(`Fork ${s.name}`, () => api.fork(s.id));
        if (forked) {
          Notification.success(`${forked.name} is a copy of ${s.name}`, { autoClose: 4000 });
        }
        await store.refresh();
      }
    }
  });
  Object.values(PauseCommandIDs).forEach((command, rank) =>
    contextMenu.addItem({ command, args: { row: true }, selector: SANDBOX_ROW, rank: FIRST_RANK + rank })
  );
}
