/**
 * The notebook cell executor (INotebookCellExecutor), replacing JupyterLab's default one
 * (package.json disables `@jupyterlab/notebook-extension:cell-executor`): a marked cell
 * runs in the sandbox however it is run (Shift+Enter, Run All, the Run menu); every other
 * cell goes to JupyterLab's own `runCell`, unchanged.
 */
import type { ICodeCellModel } from '@jupyterlab/cells';
import { INotebookCellExecutor, runCell } from '@jupyterlab/notebook';

import { isMarked } from './cellmark';
import { Dropped } from './queue';
import { kernelIsSandboxed, SandboxRunner } from './runner';

export class SandboxCellExecutor implements INotebookCellExecutor {
  constructor(private runner: SandboxRunner) {}

  runCell(options: INotebookCellExecutor.IRunCellOptions): Promise<boolean> {
    const { cell, notebook } = options;
    if (cell.model.type !== 'code') {
      return runCell(options); // markdown and raw cells: rendered at once, nothing to order
    }
    const model = cell.model as ICodeCellModel;
    const queue = this.runner.queueFor(notebook);
    // a sandboxed kernel runs in the notebook's sandbox: its marked cells go to the kernel, not to a second one
    const inSandbox = isMarked(model) && !kernelIsSandboxed(options.sessionContext);
    if (queue.pending > 0) {
      // waiting behind another cell: show it as queued, as the kernel's own queue does
      model.executionState = 'running';
    }
    const run = inSandbox
      ? () => {
          options.onCellExecutionScheduled({ cell });
          return this.runner.run(cell, options.sessionContext).then(ok => {
            options.onCellExecuted({ cell, success: ok });
            return ok;
          });
        }
      : () => runCell(options);
    return queue.enqueue(inSandbox ? 'sandbox' : 'kernel', run).catch(error => {
      if (error instanceof Dropped) {
        if (!cell.isDisposed) {
          model.executionState = 'idle';
        }
        return false;
      }
      throw error;
    });
  }
}
