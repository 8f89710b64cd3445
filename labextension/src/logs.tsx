/**
 * A sandbox's logs in a main-area tab, like JupyterLab's Log Console: its container log and each
 * kernel's log, fetched again every few seconds while the tab shows (a `Poll` that stands by while
 * hidden), with a toolbar button to refresh now. Built from JupyterLab's own widgets and the
 * theme's variables (style/base.css).
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { listIcon, ReactWidget, refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import React from 'react';

import { api } from './api';
import type { ILogs, ISandbox } from './wire';

/** How often an open logs tab fetches the logs again. */
export const LOGS_REFRESH_MS = 3000;

/** The id of the one tab per sandbox (opening its logs again shows that tab). */
export function logsTabId(sandboxId: string): string {
  return `jupyter-sandbox-logs-${sandboxId}`;
}

class LogsView extends ReactWidget {
  constructor(private sandbox: ISandbox) {
    super();
    this.addClass('jp-SandboxLogsView');
    this.poll = new Poll({
      name: `jupyter-sandbox:logs:${sandbox.id}`,
      factory: () => this.load(),
      frequency: { interval: LOGS_REFRESH_MS, backoff: true, max: 60_000 },
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  refresh(): Promise<void> {
    return this.poll.refresh();
  }

  private async load(): Promise<void> {
    try {
      this.logs = await api.logs(this.sandbox.id);
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this.loaded = new Date();
    this.update();
  }

  render(): JSX.Element {
    const { logs, error } = this;
    return (
      <div className="jp-SandboxLogs" aria-label={`Logs of ${this.sandbox.name}`} aria-live="polite">
        <div className="jp-SandboxLogsView-meta">
          {this.sandbox.name} ({this.sandbox.id})
          {this.loaded && ` — fetched ${this.loaded.toLocaleTimeString()}, again every ${LOGS_REFRESH_MS / 1000} s`}
        </div>
        {error && <div className="jp-SandboxPanel-empty">{error}</div>}
        {!logs && !error && <div className="jp-SandboxPanel-empty">Loading…</div>}
        {logs?.contexts.map(c => (
          <section key={c.id} className="jp-SandboxLogs-section" data-log={`kernel-${c.id}`}>
            <h4>
              Kernel log ({c.language}, {c.id})
            </h4>
            <pre>{c.kernel_log || '(empty)'}</pre>
          </section>
        ))}
        {logs && logs.container !== null && (
          <section className="jp-SandboxLogs-section" data-log="container">
            <h4>Container log</h4>
            <pre>{logs.container || '(empty)'}</pre>
          </section>
        )}
      </div>
    );
  }

  private readonly poll: Poll;
  private logs: ILogs | null = null;
  private error: string | null = null;
  private loaded: Date | null = null;
}

/** A main-area tab with a sandbox's logs, refreshing while it shows. */
export function logsWidget(sandbox: ISandbox, label: string): MainAreaWidget<ReactWidget> {
  const content = new LogsView(sandbox);
  const widget = new MainAreaWidget({ content });
  widget.id = logsTabId(sandbox.id);
  widget.addClass('jp-SandboxLogsTab');
  widget.title.label = `Logs: ${label}`;
  widget.title.caption = `Logs of sandbox ${sandbox.name} (${sandbox.id})`;
  widget.title.icon = listIcon;
  widget.title.closable = true;
  widget.toolbar.addItem(
    'refresh',
    new ToolbarButton({ icon: refreshIcon, tooltip: 'Fetch the logs now', onClick: () => void content.refresh() })
  );
  return widget;
}
