/**
 * jupyter-sandbox in JupyterLab: the Sandboxes panel, "Run cell in sandbox" for notebooks,
 * and a status-bar item naming the current notebook's sandbox and its state.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { CommandToolbarButton, LabIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { api, ensureSandbox } from './api';
import { OutputBuilder, sandboxNameForPath } from './model';
import { SandboxPanel } from './panel';
import { SandboxStore } from './store';

const RUN = 'jupyter-sandbox:run-cell';
const OPEN = 'jupyter-sandbox:open-panel';

export const sandboxIcon = new LabIcon({
  name: 'jupyter-sandbox:sandbox',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M3 7l9-5 9 5v10l-9 5-9-5V7zm2 1.2v7.6l7 3.9 7-3.9V8.2l-7 3.9-7-3.9zm1.1-1.2L12 10.3 17.9 7 12 3.7 6.1 7z"/>' +
    '</svg>'
});

/** Shows "Sandbox: <name> · <state>" for the current notebook. */
class SandboxStatus extends Widget {
  readonly activeChanged = new Signal<this, void>(this);

  constructor(
    private store: SandboxStore,
    private tracker: INotebookTracker
  ) {
    super();
    this.addClass('jp-SandboxStatus');
    this.node.title = 'The sandbox that "Run cell in sandbox" uses for this notebook';
    store.changed.connect(this.update, this);
    tracker.currentChanged.connect(() => {
      this.activeChanged.emit();
      this.update();
    });
    this.update();
  }

  update(): void {
    const panel = this.tracker.currentWidget;
    if (!panel) {
      this.node.textContent = '';
      return;
    }
    const name = sandboxNameForPath(panel.context.path);
    const sandbox = this.store.find(name);
    const state = this.store.busy.has(name) ? 'busy' : sandbox ? sandbox.status : 'not created';
    this.node.textContent = `Sandbox: ${name} · ${state}`;
    this.node.dataset.state = state;
  }
}

/** Runs the active cell's source in the notebook's sandbox, streaming outputs into the cell. */
async function runCell(panel: NotebookPanel, store: SandboxStore): Promise<void> {
  const cell = panel.content.activeCell;
  if (!(cell instanceof CodeCell)) {
    return;
  }
  const name = sandboxNameForPath(panel.context.path);
  const outputs = cell.model.outputs;
  outputs.clear();
  cell.model.executionCount = null;
  cell.setPrompt('*');
  store.setBusy(name, true);
  const builder = new OutputBuilder();
  try {
    const sandbox = await ensureSandbox(name);
    await api.execute(sandbox.id, cell.model.sharedModel.getSource(), event => {
      for (const op of builder.apply(event)) {
        if (op.op === 'add') {
          outputs.add(op.output);
        } else if (op.op === 'set') {
          outputs.set(op.index, op.output);
        } else {
          outputs.clear();
        }
      }
    });
  } catch (error) {
    Notification.error(`Run cell in sandbox ${name}: ${(error as Error).message}`, { autoClose: 8000 });
  } finally {
    store.setBusy(name, false);
    cell.model.executionCount = builder.executionCount;
    cell.setPrompt(builder.executionCount === null ? '' : String(builder.executionCount));
    void store.refresh();
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-sandbox:plugin',
  description: 'Sandboxes panel and "Run cell in sandbox" for jupyter-sandbox',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const store = new SandboxStore();
    const panel = new SandboxPanel(store);
    panel.title.icon = sandboxIcon;
    app.shell.add(panel, 'left', { rank: 650 });

    app.commands.addCommand(OPEN, {
      label: 'Show Sandboxes panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(RUN, {
      label: 'Run cell in sandbox',
      caption: "Run the active cell in this notebook's sandbox",
      icon: sandboxIcon,
      isEnabled: () => tracker.currentWidget?.content.activeCell instanceof CodeCell,
      execute: () => {
        const current = tracker.currentWidget;
        return current ? runCell(current, store) : undefined;
      }
    });
    app.commands.addKeyBinding({ command: RUN, keys: ['Accel Alt Enter'], selector: '.jp-Notebook' });
    app.contextMenu.addItem({ command: RUN, selector: '.jp-Notebook .jp-CodeCell', rank: 0 });
    palette?.addItem({ command: RUN, category: 'Sandbox' });
    palette?.addItem({ command: OPEN, category: 'Sandbox' });

    tracker.widgetAdded.connect((_, notebook) => {
      const button = new CommandToolbarButton({ commands: app.commands, id: RUN, label: '' });
      button.addClass('jp-SandboxRunButton');
      if (!notebook.toolbar.insertAfter('run', 'run-in-sandbox', button)) {
        notebook.toolbar.addItem('run-in-sandbox', button);
      }
    });
    tracker.activeCellChanged.connect(() => app.commands.notifyCommandChanged(RUN));

    if (statusBar) {
      const status = new SandboxStatus(store, tracker);
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

export default plugin;
