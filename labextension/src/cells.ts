/**
 * What a notebook shows of its sandbox: marked cells get a border and a badge (with the
 * sandbox's execution count of their last run, kept apart from the kernel's numbers), and
 * the notebook toolbar says when its sandbox is busy (the kernel's own indicator says
 * "Idle" then, since the kernel is not the one running the cell).
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { isMarked, sandboxCount } from './cellmark';
import { sandboxIcon } from './icons';
import { sandboxNameOf, SandboxRunner } from './runner';

const MARKED = 'jp-SandboxCell';
const BADGE = 'jp-SandboxCell-badge';

/** Sync one cell's look with its mark. */
export function showMark(cell: Cell): void {
  const marked = cell.model.type === 'code' && isMarked(cell.model);
  cell.toggleClass(MARKED, marked);
  let badge = cell.node.querySelector<HTMLElement>(`.${BADGE}`);
  if (!marked) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement('div');
    badge.className = BADGE;
    badge.title =
      'This cell runs in the notebook\'s sandbox, however it is run. "Remove sandbox mark" (Run menu) makes it a kernel cell again.';
    // the cell header: JupyterLab's place for what belongs above a cell's input
    (cell.node.querySelector(':scope > .jp-CellHeader') ?? cell.node).prepend(badge);
  }
  const count = sandboxCount(cell.model);
  badge.textContent = count === null ? 'sandbox' : `sandbox [${count}]`;
}

/** Keeps every cell of a notebook showing its mark, as cells come and marks change. */
export function trackMarks(panel: NotebookPanel): void {
  const seen = new WeakSet<object>();
  const sweep = () => {
    for (const cell of panel.content.widgets) {
      if (!seen.has(cell.model)) {
        seen.add(cell.model);
        cell.model.metadataChanged.connect(() => {
          // the widget of this model now (cells are re-created when moved)
          const current = panel.content.widgets.find(w => w.model === cell.model);
          if (current) {
            showMark(current);
          }
        });
      }
      showMark(cell);
    }
  };
  void panel.context.ready.then(() => {
    sweep();
    panel.content.model?.cells.changed.connect(() => requestAnimationFrame(sweep));
  });
}

/** The notebook toolbar's "sandbox busy" indicator, beside the kernel's. */
export class SandboxBusyIndicator extends Widget {
  constructor(
    private panel: NotebookPanel,
    private runner: SandboxRunner
  ) {
    super();
    this.addClass('jp-SandboxBusy');
    const icon = document.createElement('span');
    sandboxIcon.element({ container: icon, tag: 'span' });
    this.label = document.createElement('span');
    this.node.append(icon, this.label);
    runner.runningChanged.connect(this.refresh, this);
    runner.store.changed.connect(this.refresh, this);
    panel.sessionContext.kernelChanged.connect(this.refresh, this);
    this.refresh();
  }

  private refresh(): void {
    const name = sandboxNameOf(this.panel.sessionContext);
    const sandbox = name ? this.runner.store.find(name) : undefined;
    const busy = this.runner.isRunning(this.panel.sessionContext.session?.kernel?.id ?? undefined);
    const state = busy ? 'busy' : sandbox ? 'idle' : '';
    this.node.dataset.state = state;
    this.label.textContent = state ? `Sandbox ${state}` : '';
    this.node.title = name
      ? `The notebook's sandbox ${name}: ${state || 'not created yet'}`
      : 'No kernel, so no sandbox';
  }

  private label: HTMLElement;
}
