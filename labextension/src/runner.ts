/**
 * Runs marked cells in the notebook's sandbox: one queue per notebook (kernel and sandbox
 * cells in order), outputs streamed into the cell, the sandbox's execution count kept
 * apart from the kernel's, and interrupts.
 */
import { ISessionContext, Notification } from '@jupyterlab/apputils';
import { Cell, ICodeCellModel } from '@jupyterlab/cells';
import type { INotebookModel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { api, ensureSandbox } from './api';
import { setSandboxCount } from './cellmark';
import { isSandboxedSpec, kernelSandboxName, notebookSandboxName } from './notebooksandbox';
import { OutputBuilder } from './outputs';
import { ExecutionQueue } from './queue';
import { SandboxStore } from './store';

/** Whether the notebook's kernel itself runs in a sandbox ("Python 3 (sandboxed)"). */
export function kernelIsSandboxed(sessionContext: ISessionContext | null | undefined): boolean {
  const kernel = sessionContext?.session?.kernel;
  const spec = kernel ? sessionContext.specsManager.specs?.kernelspecs[kernel.name] : undefined;
  return isSandboxedSpec(spec?.metadata);
}

/**
 * The sandbox a notebook's cells run in, named after its kernel; null without a kernel. A
 * sandboxed kernel's notebook has one sandbox: the kernel's own.
 */
export function sandboxNameOf(sessionContext: ISessionContext | null | undefined): string | null {
  const kernelId = sessionContext?.session?.kernel?.id;
  if (!kernelId) {
    return null;
  }
  return kernelIsSandboxed(sessionContext) ? kernelSandboxName(kernelId) : notebookSandboxName(kernelId);
}

export class SandboxRunner {
  constructor(readonly store: SandboxStore) {}

  /** Emitted when a sandbox cell starts or stops running (for the notebooks' busy indicators). */
  get runningChanged(): ISignal<this, void> {
    return this._runningChanged;
  }

  queueFor(notebook: INotebookModel): ExecutionQueue {
    let queue = this.queues.get(notebook);
    if (!queue) {
      queue = new ExecutionQueue();
      this.queues.set(notebook, queue);
    }
    return queue;
  }

  /** Whether a cell of the notebook with this kernel runs in its sandbox now. */
  isRunning(kernelId: string | undefined): boolean {
    return kernelId !== undefined && this.running.has(kernelId);
  }

  /**
   * Run a code cell in the sandbox of the notebook's kernel. Resolves to whether the code
   * ran without error (false stops the cells queued behind it, like a kernel error).
   */
  async run(cell: Cell, sessionContext: ISessionContext | undefined): Promise<boolean> {
    const model = cell.model as ICodeCellModel;
    const kernelId = sessionContext?.session?.kernel?.id;
    if (!kernelId) {
      model.executionState = 'idle';
      Notification.warning(
        'This notebook has no kernel, so it has no sandbox: start a kernel (Kernel menu) to run cells in its sandbox.',
        { autoClose: 8000 }
      );
      return false;
    }
    const code = model.sharedModel.getSource();
    if (!code.trim()) {
      model.sharedModel.transact(() => model.clearExecution(), false);
      return true;
    }
    const name = notebookSandboxName(kernelId);
    model.sharedModel.transact(() => model.clearExecution(), false);
    model.executionState = 'running';
    // What a sandbox sends is never trusted (issue 27): untrusted outputs render only through
    // JupyterLab's safe renderers (sanitized HTML and Markdown, no JavaScript), whatever the
    // server let through and whatever trust the notebook file claimed for the cell.
    model.trusted = false;
    const outputs = model.outputs;
    const builder = new OutputBuilder();
    this.running.set(kernelId, { name, sandboxId: null });
    this.store.setBusy(name, true);
    this._runningChanged.emit();
    try {
      const sandbox = await ensureSandbox(name, { kernel_id: kernelId });
      this.running.set(kernelId, { name, sandboxId: sandbox.id });
      await api.execute(sandbox.id, code, event => {
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
      return false;
    } finally {
      this.running.delete(kernelId);
      this.store.setBusy(name, false);
      if (!cell.isDisposed) {
        setSandboxCount(model, builder.executionCount);
        model.executionState = 'idle';
      }
      this._runningChanged.emit();
    }
    return builder.error === null;
  }

  /**
   * The notebook's kernel was interrupted (its Stop button, the Kernel menu, `I, I`):
   * interrupt its sandbox cell too.
   */
  async interruptKernel(kernelId: string): Promise<void> {
    const running = this.running.get(kernelId);
    if (running) {
      const id = running.sandboxId ?? running.name;
      try {
        await api.interrupt(id);
      } catch (error) {
        Notification.error(`Interrupt sandbox ${running.name}: ${(error as Error).message}`, { autoClose: 8000 });
      }
    }
  }

  private queues = new WeakMap<INotebookModel, ExecutionQueue>();
  /** kernel id -> the sandbox cell running for it */
  private running = new Map<string, { name: string; sandboxId: string | null }>();
  private _runningChanged = new Signal<this, void>(this);
}
