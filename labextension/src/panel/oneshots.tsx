/**
 * The user's one-shot executions: a section of the Sandboxes panel. Each row expands (click, or
 * its right-click menu) to its status, exit code, error, code and output; a running one can be killed.
 */
import {
  caretDownIcon,
  caretRightIcon,
  ReactWidget,
  stopIcon,
  ToolbarButtonComponent
} from '@jupyterlab/ui-components';
import React from 'react';

import { api } from '../api';
import { formatDuration } from '../format';
import { ACTIVE_ONE_SHOT, oneShotDuration } from '../oneshots';
import { SandboxStore } from '../store';
import type { IOneShot } from '../wire';
import { report } from './panel';

export class OneShotList extends ReactWidget {
  constructor(private store: SandboxStore) {
    super();
    this.addClass('jp-SandboxOneShots');
    this.title.label = 'One-shot executions';
    store.changed.connect(() => this.update(), this);
  }

  /** Show or hide a row's details. */
  toggle(id: string): void {
    if (!this.expanded.delete(id)) {
      this.expanded.add(id);
    }
    this.update();
  }

  render(): JSX.Element {
    const { oneShots } = this.store;
    if (!oneShots.length) {
      return <div className="jp-SandboxPanel-empty">None</div>;
    }
    const now = Date.now();
    return <ul className="jp-SandboxList-items">{oneShots.map(e => this.renderItem(e, now))}</ul>;
  }

  private renderItem(e: IOneShot, now: number): JSX.Element {
    const expanded = this.expanded.has(e.execution_id);
    const Caret = expanded ? caretDownIcon.react : caretRightIcon.react;
    return (
      <li
        key={e.execution_id}
        className={`jp-SandboxOneShot${expanded ? ' jp-mod-expanded' : ''}`}
        data-id={e.execution_id}
        data-status={e.status}
      >
        <div
          className="jp-SandboxItem-header"
          role="button"
          tabIndex={0}
          aria-expanded={expanded}
          title={`One-shot execution ${e.execution_id}: ${e.status} — click to ${expanded ? 'collapse' : 'expand'}`}
          onClick={() => this.toggle(e.execution_id)}
          onKeyDown={event => (event.key === 'Enter' || event.key === ' ') && this.toggle(e.execution_id)}
        >
          <Caret tag="span" className="jp-SandboxItem-caret" />
          <span className="jp-SandboxItem-label">
            <code>{e.execution_id}</code>
          </span>
          <span className="jp-SandboxItem-badge" data-state={e.status}>
            {e.status}
          </span>
          <span className="jp-SandboxItem-detail">{formatDuration(oneShotDuration(e, now))}</span>
          {ACTIVE_ONE_SHOT.has(e.status) && (
            <ToolbarButtonComponent
              icon={stopIcon}
              tooltip={`Kill ${e.execution_id}`}
              onClick={event => {
                event?.stopPropagation();
                void report('Kill', () => api.killOneShot(e.execution_id)).then(() => this.store.refreshAll());
              }}
            />
          )}
        </div>
        {expanded && this.renderBody(e)}
      </li>
    );
  }

  private renderBody(e: IOneShot): JSX.Element {
    const where = e.error_line ? ` (line ${e.error_line})` : '';
    return (
      <div className="jp-SandboxItem-body jp-SandboxOneShot-body">
        <dl className="jp-SandboxItem-details">
          <dt>Status</dt>
          <dd data-field="status">{e.status}</dd>
          <dt>Exit code</dt>
          <dd data-field="exit-code">{e.exit_code ?? '-'}</dd>
          <dt>Started</dt>
          <dd>{e.started_at ?? '-'}</dd>
          {e.error && (
            <>
              <dt>Error</dt>
              <dd data-field="error" title={e.error}>
                {e.error_type ? `${e.error_type}${where}: ` : ''}
                {e.error}
              </dd>
            </>
          )}
        </dl>
        {this.renderOutput('Code', 'code', e.code)}
        {this.renderOutput('Result', 'result', e.result)}
        {this.renderOutput('Output', 'stdout', e.stdout)}
        {this.renderOutput('Errors', 'stderr', e.stderr)}
      </div>
    );
  }

  private renderOutput(title: string, field: string, text: string | null | undefined): JSX.Element | null {
    if (!text) {
      return null;
    }
    return (
      <section className="jp-SandboxLogs-section" data-output={field}>
        <h4>{title}</h4>
        <pre>{text}</pre>
      </section>
    );
  }

  private expanded = new Set<string>();
}
