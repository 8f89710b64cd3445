/** The status-bar item: the current notebook's sandbox and its state; a click opens it in the panel. */
import { INotebookTracker } from '@jupyterlab/notebook';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CommandIDs } from './commands';
import { kernelIsSandboxed, sandboxNameOf } from './runner';
import { SandboxStore } from './store';

export class SandboxStatus extends Widget {
  readonly activeChanged = new Signal<this, void>(this);

  constructor(
    private store: SandboxStore,
    private tracker: INotebookTracker,
    private commands: CommandRegistry
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-SandboxStatus');
    this.node.setAttribute('type', 'button');
    this.node.onclick = () => {
      const name = this.name();
      const sandbox = name ? this.store.find(name) : undefined;
      void this.commands.execute(CommandIDs.openPanel, sandbox ? { id: sandbox.id } : {});
    };
    store.changed.connect(this.refresh, this);
    tracker.currentChanged.connect((_, panel) => {
      panel?.sessionContext.kernelChanged.connect(this.refresh, this);
      this.activeChanged.emit();
      this.refresh();
    });
    this.refresh();
  }

  private name(): string | null {
    return sandboxNameOf(this.tracker.currentWidget?.sessionContext);
  }

  refresh(): void {
    const panel = this.tracker.currentWidget;
    if (!panel) {
      this.node.textContent = '';
      return;
    }
    const name = this.name();
    if (!name) {
      this.node.textContent = 'Sandbox: no kernel';
      this.node.dataset.state = 'no kernel';
      this.node.title = 'A notebook needs a kernel to have a sandbox';
      return;
    }
    const sandbox = this.store.find(name);
    const state = sandbox
      ? this.store.isBusy(sandbox) && sandbox.status === 'running'
        ? 'busy'
        : sandbox.status
      : this.store.loaded
        ? 'not created'
        : '…';
    this.node.textContent = `Sandbox: ${name} · ${state}`;
    this.node.dataset.state = state;
    this.node.title = kernelIsSandboxed(panel.sessionContext)
      ? `The sandbox this notebook's kernel runs in (where "Run cell in sandbox" runs too). Click to show it in the Sandboxes panel.`
      : `The sandbox of this notebook's kernel (used by "Run cell in sandbox" and %%sandbox). Click to show it in the Sandboxes panel.`;
    if (sandbox?.status_reason) {
      this.node.title += `\n${sandbox.status_reason}`; // e.g. its kernel died out of memory
    }
  }
}
