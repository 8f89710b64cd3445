/**
 * The user's sandboxes, shared by the panel, the status bar and the cell runner.
 *
 * The list follows the user's sandbox events (their own event stream, pushed at once). Stats and
 * one-shot executions are polled with `Poll` only while the panel is visible, at the
 * interval of the settings, backing off while the server fails.
 */
import { Notification } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { api } from './api';
import { applySandboxEvent, droppedSandboxes } from './events';
import { SandboxEventStream } from './stream';
import type { IOneShot, ISandbox, ISandboxEvent, IServerConfig, IStats } from './wire';

export class SandboxStore {
  sandboxes: ISandbox[] = [];
  stats = new Map<string, IStats>();
  oneShots: IOneShot[] = [];
  config: IServerConfig | null = null;
  /** Sandbox id -> executions running or queued, from the server's events. */
  executing = new Map<string, number>();
  /** Sandbox names with a cell running from this browser tab (known before any event). */
  busy = new Set<string>();
  /** Whether the first list has arrived (before it, "not created" would be a guess). */
  loaded = false;
  /** Sandbox id -> how many times code finished or the sandbox restarted: its files may differ since. */
  activity = new Map<string, number>();

  constructor(intervalSeconds = 5) {
    this.poll = new Poll({
      name: 'jupyter-sandbox:stats',
      factory: () => this.pollDetails(),
      frequency: SandboxStore.frequency(intervalSeconds),
      // hidden panel: nobody looks at stats, so none are fetched
      standby: () => !this._visible || 'when-hidden'
    });
    this.poll.ticked.connect((_, state) => {
      if (state.phase === 'rejected') {
        this.report(state.payload);
      }
    });
    void this.refresh();
    void this.loadConfig();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The poll interval, from the settings. */
  set interval(seconds: number) {
    this.poll.frequency = SandboxStore.frequency(seconds);
  }

  /** Every `seconds`; after failures, backing off up to a minute (or the interval, if longer). */
  private static frequency(seconds: number) {
    const interval = seconds * 1000;
    return { interval, backoff: true, max: Math.max(interval, 60 * 1000) };
  }

  /** The panel tells whether it is shown: stats are polled only then. */
  set visible(visible: boolean) {
    const was = this._visible;
    this._visible = visible;
    if (visible && !was) {
      void this.poll.refresh();
    }
  }

  find(nameOrId: string): ISandbox | undefined {
    return this.sandboxes.find(s => s.name === nameOrId || s.id === nameOrId);
  }

  isBusy(sandbox: ISandbox): boolean {
    return this.busy.has(sandbox.name) || (this.executing.get(sandbox.id) ?? 0) > 0;
  }

  setBusy(name: string, busy: boolean): void {
    if (busy) {
      this.busy.add(name);
    } else {
      this.busy.delete(name);
    }
    this._changed.emit();
  }

  /** Follow the user's own events (not jupyter_server's event bus, which every user hears). */
  listen(): void {
    this.events ??= new SandboxEventStream(
      event => {
        if (event.action === 'kernel_interrupted') {
          this._kernelInterrupted.emit(event.kernel_id);
        } else {
          this.handleEvent(event);
        }
      },
      () => void this.refresh() // (re)connected: events may have been missed
    );
  }

  /** The user interrupted a notebook kernel (its id): its sandbox cell should stop too. */
  get kernelInterrupted(): ISignal<this, string> {
    return this._kernelInterrupted;
  }

  /**
   * A sandbox of the list was removed (by anyone, from anywhere): its model as last known. Said
   * once, whether its event or a list without it (after a status event, say) drops it first.
   */
  get removed(): ISignal<this, ISandbox> {
    return this._removed;
  }

  /** A sandbox event from the user's event stream. */
  handleEvent(event: ISandboxEvent): void {
    const before = this.sandboxes;
    if (this.refreshing) {
      this.again = true; // the list on its way may predate this event
    }
    const applied = applySandboxEvent(this.sandboxes, this.executing, event);
    this.sandboxes = applied.sandboxes;
    this.executing = applied.executing;
    if (event.action === 'removed') {
      this.stats.delete(event.sandbox_id);
    }
    if (event.action === 'execution_finished' || event.action === 'status') {
      this.activity.set(event.sandbox_id, (this.activity.get(event.sandbox_id) ?? 0) + 1);
    }
    this._changed.emit();
    this.tellRemoved(before);
    if (applied.refresh) {
      void this.refresh();
    }
  }

  /** Fetch the list now (calls during a fetch make one more fetch after it, not one each). */
  async refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.loadList();
      } while (this.again);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Fetch everything now (the panel's Refresh button). */
  async refreshAll(): Promise<void> {
    await Promise.all([this.refresh(), this.poll.refresh(), this.loadConfig()]);
  }

  async loadConfig(): Promise<void> {
    try {
      this.config = await api.config();
      this._changed.emit();
    } catch (error) {
      this.report(error);
    }
  }

  private async loadList(): Promise<void> {
    const before = this.sandboxes;
    try {
      this.sandboxes = await api.list();
      this.loaded = true;
      this.failing = false;
    } catch (error) {
      this.report(error);
    }
    this._changed.emit();
    this.tellRemoved(before);
  }

  /** The sandboxes of `before` that the list no longer holds. */
  private tellRemoved(before: ISandbox[]): void {
    droppedSandboxes(before, this.sandboxes).forEach(s => this._removed.emit(s));
  }

  /** What the poll fetches while the panel shows: the list, then stats of the running ones, one-shots. */
  private async pollDetails(): Promise<void> {
    // the list through refresh(): loads of it never overlap, so an older answer never wins
    await this.refresh();
    if (this.failing) {
      throw new Error('the server did not answer');
    }
    const [oneShots, stats] = await Promise.all([api.oneShots(), this.loadStats()]);
    this.oneShots = oneShots;
    this.stats = stats;
    this._changed.emit();
  }

  private async loadStats(): Promise<Map<string, IStats>> {
    const stats = new Map<string, IStats>();
    await Promise.all(
      this.sandboxes
        .filter(s => s.status === 'running')
        .map(async s => {
          try {
            stats.set(s.id, await api.stats(s.id));
          } catch {
            // removed or restarting since the list: its event says so
          }
        })
    );
    return stats;
  }

  /** One notification per outage, not one every few seconds. */
  private report(error: unknown): void {
    if (!this.failing) {
      Notification.error(`Sandboxes: ${(error as Error).message}`, { autoClose: 8000 });
    }
    this.failing = true;
  }

  dispose(): void {
    this.poll.dispose();
    this.events?.dispose();
  }

  readonly poll: Poll;
  private events: SandboxEventStream | null = null;
  private _visible = false;
  private failing = false;
  private again = false;
  private refreshing: Promise<void> | null = null;
  private _changed = new Signal<this, void>(this);
  private _kernelInterrupted = new Signal<this, string>(this);
  private _removed = new Signal<this, ISandbox>(this);
}
