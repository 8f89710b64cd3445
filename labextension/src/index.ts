/**
 * jupyter-sandbox in JupyterLab. Four plugins:
 * - `runner`: the shared store of sandboxes (live from the user's own sandbox event stream) and the
 *   runner of sandbox cells;
 * - `cell-executor`: JupyterLab's notebook cell executor, replaced so that a marked cell
 *   runs in the sandbox however it is run;
 * - `plugin`: the Sandboxes panel, the commands (palette, Run and Help menus, cell context
 *   menu, notebook toolbar), the status-bar item and the settings; sandboxes in the Running panel,
 *   right-click menus on the panel's rows, logs in a main-area tab;
 * - `copy-file`: copying a file from a sandbox into the workspace (copyfile.ts).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookCellExecutor, INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRunningSessionManagers } from '@jupyterlab/running';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import type { ITerminal } from '@jupyterlab/terminal';
import { CommandToolbarButton, terminalIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject, Token } from '@lumino/coreutils';

import { api, APIError } from './api';
import { mark, unmark } from './cellmark';
import { SandboxBusyIndicator, showMark, trackMarks } from './cells';
import { CommandIDs, CopyFileCommandID } from './commands';
import { addCopyFileCommand } from './copyfile';
import { SandboxCellExecutor } from './executor';
import { docsWidget } from './help';
import { keyIcon, sandboxIcon } from './icons';
import { isNotebookKernel, kernelSessionPath, sandboxLabel } from './kinds';
import { logsWidget, logsTabId } from './logs';
import { addRowMenus, rowId, SANDBOX_ROW } from './menus';
import { addPauseCommands } from './pause';
import { report, SandboxPanel } from './panel/panel';
import { explainKernelDeaths } from './deaths';
import { confirmKernelRemoval, KernelSandboxRemovals } from './removal';
import { runningSandboxes } from './running';
import { sandboxNameOf, SandboxRunner } from './runner';
import { SandboxStatus } from './status';
import { SandboxStore } from './store';
import { sandboxTerminal, TERMINAL_SETTINGS } from './terminal';
import { ISandbox } from './wire';

const PLUGIN_ID = 'jupyter-sandbox:plugin';

export const ISandboxRunner = new Token<SandboxRunner>(
  'jupyter-sandbox:ISandboxRunner',
  'The sandboxes store and the runner of sandbox cells.'
);

const runnerPlugin: JupyterFrontEndPlugin<SandboxRunner> = {
  id: 'jupyter-sandbox:runner',
  description: 'The store of sandboxes (live from the server events) and the runner of sandbox cells',
  autoStart: true,
  provides: ISandboxRunner,
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, settings: ISettingRegistry | null): SandboxRunner => {
    const store = new SandboxStore();
    const runner = new SandboxRunner(store);
    store.listen();
    store.kernelInterrupted.connect((_, kernelId) => void runner.interruptKernel(kernelId));
    void settings?.load(PLUGIN_ID).then(loaded => {
      const apply = () => {
        store.interval = loaded.get('refreshInterval').composite as number;
      };
      apply();
      loaded.changed.connect(apply);
    });
    return runner;
  }
};

const executorPlugin: JupyterFrontEndPlugin<INotebookCellExecutor> = {
  id: 'jupyter-sandbox:cell-executor',
  description: 'Runs marked cells in the sandbox, every other cell as JupyterLab does',
  autoStart: true,
  requires: [ISandboxRunner],
  provides: INotebookCellExecutor,
  activate: (_: JupyterFrontEnd, runner: SandboxRunner): INotebookCellExecutor =>
    Object.freeze(new SandboxCellExecutor(runner))
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Sandboxes panel, sandbox cells, status bar and help for jupyter-sandbox',
  autoStart: true,
  requires: [INotebookTracker, ISandboxRunner],
  optional: [
    ICommandPalette,
    IStatusBar,
    ISettingRegistry,
    IRenderMimeRegistry,
    ILayoutRestorer,
    IRunningSessionManagers
  ],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    runner: SandboxRunner,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    settings: ISettingRegistry | null,
    rendermime: IRenderMimeRegistry | null,
    restorer: ILayoutRestorer | null,
    running: IRunningSessionManagers | null
  ) => {
    const { commands, shell } = app;
    const store = runner.store;
    const removals = new KernelSandboxRemovals(tracker, store);
    explainKernelDeaths(tracker, app.serviceManager.serverSettings, nb => removals.isLeaving(nb));
    const panel = new SandboxPanel(store, commands, app.serviceManager.sessions);
    shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, panel.id);

    let docsUrl = '';
    void settings?.load(PLUGIN_ID).then(loaded => {
      const apply = () => {
        docsUrl = (loaded.get('docsUrl').composite as string) || '';
      };
      apply();
      loaded.changed.connect(apply);
    });

    const notebook = (): NotebookPanel | null => tracker.currentWidget;
    const hasCodeCell = () => notebook()?.content.activeCell instanceof CodeCell;

    /** The sandbox a command acts on: `args.id`, else the current notebook's. */
    const target = async (args: ReadonlyPartialJSONObject): Promise<ISandbox | null> => {
      const key = args.id
        ? String(args.id)
        : (rowId(app, args, SANDBOX_ROW) ?? sandboxNameOf(notebook()?.sessionContext));
      if (!key) {
        Notification.warning('Open a notebook with a kernel, or pick a sandbox in the Sandboxes panel.', {
          autoClose: 6000
        });
        return null;
      }
      const known = store.find(key);
      if (known) {
        return known;
      }
      try {
        return await api.get(key);
      } catch (error) {
        const message =
          error instanceof APIError && error.status === 404
            ? `No sandbox ${key} yet: run a cell in it first, or create one in the Sandboxes panel.`
            : (error as Error).message;
        Notification.warning(message, { autoClose: 6000 });
        return null;
      }
    };
    const onSandbox =
      (what: string, action: (s: ISandbox) => Promise<unknown>) => async (args: ReadonlyPartialJSONObject) => {
        const sandbox = await target(args);
        if (sandbox) {
          await report(`${what} ${sandbox.name}`, () => action(sandbox));
        }
      };

    commands.addCommand(CommandIDs.runCell, {
      label: 'Run Cell in Sandbox',
      caption: "Mark the selected cells as sandbox cells and run them in this notebook's sandbox",
      icon: sandboxIcon,
      isEnabled: hasCodeCell,
      execute: () => {
        const current = notebook();
        if (!current) {
          return;
        }
        const { content, sessionContext } = current;
        content.widgets
          .filter(c => content.isSelectedOrActive(c) && c.model.type === 'code')
          .forEach(c => mark(c.model));
        return NotebookActions.run(content, sessionContext);
      }
    });
    commands.addCommand(CommandIDs.runAll, {
      label: 'Run All Cells in Sandbox',
      caption: "Mark every code cell as a sandbox cell and run them all in this notebook's sandbox",
      isEnabled: () => notebook() !== null,
      execute: () => {
        const current = notebook();
        if (!current) {
          return;
        }
        current.content.widgets.filter(c => c.model.type === 'code').forEach(c => mark(c.model));
        return NotebookActions.runAll(current.content, current.sessionContext);
      }
    });
    commands.addCommand(CommandIDs.unmark, {
      label: 'Remove Sandbox Mark',
      caption: 'Run the selected cells in the kernel again, like any cell',
      isEnabled: hasCodeCell,
      execute: () => {
        const current = notebook();
        current?.content.widgets
          .filter(c => current.content.isSelectedOrActive(c))
          .forEach(c => {
            unmark(c.model);
            showMark(c);
          });
      }
    });
    commands.addCommand(CommandIDs.newKey, {
      label: 'New API Key',
      caption: "Mint an API key for E2B's SDKs (shown once) in the Sandboxes panel",
      icon: keyIcon,
      execute: async () => {
        shell.activateById(panel.id);
        await panel.newKey();
      }
    });
    commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Sandboxes Panel',
      execute: args => {
        shell.activateById(panel.id);
        if (args.id) {
          panel.reveal(String(args.id));
        }
      }
    });
    commands.addCommand(CommandIDs.create, {
      label: 'Create Sandbox…',
      caption: 'Open the create form of the Sandboxes panel',
      execute: () => {
        shell.activateById(panel.id);
        panel.focusCreate();
      }
    });
    commands.addCommand(CommandIDs.remove, {
      label: args => (args.id || args.row ? 'Remove Sandbox' : "Remove This Notebook's Sandbox"),
      // A notebook kernel's sandbox goes by shutting its kernel down, as the Running panel does:
      // pulled from under a live kernel, it would leave JupyterLab restarting a kernel it cannot find.
      // It is asked first, and its notebooks (here and in other pages) are offered a new kernel (removal.ts).
      execute: async args => {
        const s = await target(args);
        if (!s) {
          return;
        }
        const kernelId = isNotebookKernel(s) ? s.kernel_id : null;
        if (!kernelId) {
          await report(`Remove ${s.name}`, () => api.remove(s.id));
          return;
        }
        const path = kernelSessionPath(s, app.serviceManager.sessions.running());
        if (!args.confirmed && !(await confirmKernelRemoval(s, path))) {
          return;
        }
        await removals.remove(kernelId, `Remove ${s.name}`, () => app.serviceManager.kernels.shutdown(kernelId));
      }
    });
    commands.addCommand(CommandIDs.copyId, {
      label: args => (args.id || args.row ? 'Copy Sandbox Id' : "Copy This Notebook's Sandbox Id"),
      execute: onSandbox('Copy the id of', async s => {
        Clipboard.copyToSystem(s.id);
        Notification.info(`Copied ${s.id}`, { autoClose: 2000 });
      })
    });
    commands.addCommand(CommandIDs.interrupt, {
      label: args => (args.id || args.row ? 'Interrupt Sandbox' : "Interrupt This Notebook's Sandbox"),
      execute: onSandbox('Interrupt', s => api.interrupt(s.id))
    });
    commands.addCommand(CommandIDs.restart, {
      label: args => (args.id || args.row ? 'Restart Sandbox' : "Restart This Notebook's Sandbox"),
      // a notebook kernel's sandbox restarts from its notebook (the server answers 409 here)
      isVisible: args => {
        const row = rowId(app, args, SANDBOX_ROW);
        const sandbox = row ? store.find(row) : undefined;
        return !sandbox || !isNotebookKernel(sandbox);
      },
      execute: onSandbox('Restart', async s => {
        await api.restart(s.id);
        await store.refresh();
      })
    });
    commands.addCommand(CommandIDs.upload, {
      label: 'Upload Files to Sandbox…',
      execute: onSandbox('Upload to', async s => {
        shell.activateById(panel.id);
        panel.reveal(s.id);
        panel.chooseUpload(s);
      })
    });
    commands.addCommand(CommandIDs.logs, {
      label: 'Show Sandbox Logs',
      caption: 'Open its container and kernel logs in a tab that refreshes while it shows',
      execute: onSandbox('Logs of', async s => {
        const id = logsTabId(s.id);
        if (!Array.from(shell.widgets('main')).some(w => w.id === id)) {
          const path = kernelSessionPath(s, app.serviceManager.sessions.running());
          shell.add(logsWidget(s, sandboxLabel(s, path)), 'main');
        }
        shell.activateById(id);
      })
    });
    commands.addCommand(CommandIDs.terminal, {
      label: args => (args.id ? 'Open a Terminal in This Sandbox' : "Open a Terminal in This Notebook's Sandbox"),
      icon: terminalIcon,
      execute: onSandbox('Terminal in', async s => {
        const path = kernelSessionPath(s, app.serviceManager.sessions.running());
        // the user's terminal settings (theme, font, renderer...), as JupyterLab's own terminals get them
        const options = await settings
          ?.load(TERMINAL_SETTINGS)
          .then(loaded => loaded.composite as Partial<ITerminal.IOptions>)
          .catch(() => ({}));
        const terminal = sandboxTerminal(s, sandboxLabel(s, path), options ?? {});
        shell.add(terminal, 'main');
        shell.activateById(terminal.id);
      })
    });
    let docs: MainAreaWidget | null = null;
    commands.addCommand(CommandIDs.help, {
      label: 'Sandboxes Documentation',
      icon: sandboxIcon,
      execute: async () => {
        if (docsUrl) {
          window.open(docsUrl, '_blank', 'noopener');
          return;
        }
        if (!rendermime) {
          Notification.info('The documentation is the README.md of jupyter-sandbox.', { autoClose: 6000 });
          return;
        }
        if (!docs || docs.isDisposed) {
          docs = await docsWidget(rendermime);
          shell.add(docs, 'main');
        }
        shell.activateById(docs.id);
      }
    });

    addRowMenus(app, store, id => panel.oneShots.toggle(id));
    addPauseCommands(app, store);
    running?.add(runningSandboxes(store, commands, app.serviceManager.sessions));

    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'Sandbox' });
    }

    tracker.widgetAdded.connect((_, nb) => {
      const button = new CommandToolbarButton({ commands, id: CommandIDs.runCell, label: '' });
      button.addClass('jp-SandboxRunButton');
      if (!nb.toolbar.insertAfter('run', 'run-in-sandbox', button)) {
        nb.toolbar.addItem('run-in-sandbox', button);
      }
      const busy = new SandboxBusyIndicator(nb, runner);
      if (!nb.toolbar.insertBefore('kernelName', 'sandbox-busy', busy)) {
        nb.toolbar.addItem('sandbox-busy', busy);
      }
      trackMarks(nb);
    });
    tracker.activeCellChanged.connect(() => {
      commands.notifyCommandChanged(CommandIDs.runCell);
      commands.notifyCommandChanged(CommandIDs.unmark);
    });

    if (statusBar) {
      const status = new SandboxStatus(store, tracker, commands);
      statusBar.registerStatusItem('jupyter-sandbox:status', {
        item: status,
        align: 'left',
        rank: 5,
        isActive: () => tracker.currentWidget !== null,
        activeStateChanged: status.activeChanged
      });
    }
  }
};

const copyFilePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-sandbox:copy-file',
  description: 'Copies a file from a sandbox into the workspace (panel files, sandbox rows, palette)',
  autoStart: true,
  requires: [ISandboxRunner, INotebookTracker],
  optional: [IDefaultFileBrowser, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    runner: SandboxRunner,
    tracker: INotebookTracker,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null
  ) => {
    const current = () => sandboxNameOf(tracker.currentWidget?.sessionContext);
    addCopyFileCommand({ app, store: runner.store, browser, current });
    palette?.addItem({ command: CopyFileCommandID, category: 'Sandbox' });
  }
};

export default [runnerPlugin, executorPlugin, plugin, copyFilePlugin];
