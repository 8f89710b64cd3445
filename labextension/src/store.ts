/**
 * The user's sandboxes, their stats and one-shot executions, polled on a timer and shared
 * by the panel and the status bar.
 */
import { Notification } from '@jupyterlab/apputils';
import { ISignal, Signal } from '@lumino/signaling';

import { api } from './api';
import { IOneShot, ISandbox, IStats } from './model';

export class SandboxStore {
  sandboxes: ISandbox[] = [];
  stats = new Map<string, IStats>();
  oneShots: IOneShot[] = [];
  /** Sandbox names with a cell running from this browser tab. */
  busy = new Set<string>();

  constructor(readonly interval = 3000) {
    this.timer = window.setInterval(() => void this.refresh(), interval);
    void this.refresh();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  find(name: string): ISandbox | undefined {
    return this.sandboxes.find(s => s.name === name || s.id === name);
  }

  setBusy(name: string, busy: boolean): void {
    if (busy) {
      this.busy.add(name);
    } else {
      this.busy.delete(name);
    }
    this._changed.emit();
  }

  async refresh(): Promise<void> {
    if (this.refreshing) {
      return this.refreshing;
    }
    this.refreshing = this.load().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    try {
      const [sandboxes, oneShots] = await Promise.all([api.list(), api.oneShots()]);
      const stats = new Map<string, IStats>();
      await Promise.all(
        sandboxes
          .filter(s => s.status === 'running')
          .map(async s => {
            try {
              stats.set(s.id, await api.stats(s.id));
            } catch {
              // removed or restarting between the list and this call: next round shows it
            }
          })
      );
      this.sandboxes = sandboxes;
      this.oneShots = oneShots;
      this.stats = stats;
      this.failing = false;
    } catch (error) {
      // one notification per outage, not one every few seconds
      if (!this.failing) {
        Notification.error(`Sandboxes: ${(error as Error).message}`, { autoClose: 8000 });
      }
      this.failing = true;
    }
    this._changed.emit();
  }

  dispose(): void {
    window.clearInterval(this.timer);
  }

  private timer: number;
  private failing = false;
  private refreshing: Promise<void> | null = null;
  private _changed = new Signal<this, void>(this);
}
