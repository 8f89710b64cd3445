/**
 * The order of a notebook's cell executions when some run in the sandbox and some in the
 * kernel. JupyterLab's *Run All* starts every cell at once and relies on the kernel to
 * queue them in order and to drop the rest after an error (stop_on_error). Sandbox cells
 * bypass the kernel, so this queue keeps the same promise across both: cells run in the
 * order they were started, and a failure drops the cells waiting behind it.
 *
 * Consecutive kernel cells are handed to the kernel together (it orders them itself), so
 * a notebook without sandbox cells behaves exactly as before. Pure code.
 */

export type Where = 'kernel' | 'sandbox';

/** What a queued run is told when it did not run because an earlier one failed. */
export class Dropped extends Error {
  constructor() {
    super('not run: an earlier cell failed');
  }
}

export class ExecutionQueue {
  /** How many runs are queued or running. */
  get pending(): number {
    return this._pending;
  }

  /**
   * Runs `run` once every run enqueued before it has succeeded (a kernel run right after
   * kernel runs: together with them), or rejects with `Dropped` when one of them failed.
   * `run` resolving to false or throwing counts as a failure.
   */
  enqueue(where: Where, run: () => Promise<boolean>): Promise<boolean> {
    // Decided synchronously: Run All calls every cell's executor in one tick.
    const idle = this._pending === 0;
    const before = idle ? Promise.resolve(true) : this._tail;
    const start = where === 'kernel' && !idle && this._lastWhere === 'kernel' ? this._groupStart : before;
    if (where === 'kernel') {
      this._groupStart = start;
    }
    this._lastWhere = where;
    this._pending += 1;

    const result = start.then(ok => {
      if (!ok) {
        throw new Dropped();
      }
      return run();
    });
    const ok = result.then(
      value => value,
      () => false
    );
    this._tail = Promise.all([before, ok]).then(([a, b]) => a && b);
    void ok.then(() => {
      this._pending -= 1;
    });
    return result;
  }

  private _pending = 0;
  private _tail: Promise<boolean> = Promise.resolve(true);
  private _groupStart: Promise<boolean> = Promise.resolve(true);
  private _lastWhere: Where | null = null;
}
