/**
 * The "Sandboxes" side panel, laid out like JupyterLab's running-sessions panel: a toolbar,
 * then collapsible sections. Each sandbox is an item that expands to its details, actions,
 * files (drop files to upload) and logs. Built from @jupyterlab/ui-components; every
 * colour, font and spacing comes from the theme's CSS variables (style/base.css).
 */
import { Notification } from '@jupyterlab/apputils';
import type { Session } from '@jupyterlab/services';
import {
  addIcon,
  caretDownIcon,
  caretRightIcon,
  closeIcon,
  fileUploadIcon,
  infoIcon,
  listIcon,
  notebookIcon,
  ReactWidget,
  refreshIcon,
  SidePanel,
  stopIcon,
  terminalIcon,
  ToolbarButton,
  ToolbarButtonComponent
} from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { AccordionPanel } from '@lumino/widgets';
import React from 'react';

import { api } from '../api';
import { CommandIDs } from '../commands';
import { formatBytes, formatPercent, formatUptime, networkText, networkTitle } from '../format';
import { keyIcon, sandboxIcon } from '../icons';
import { isNotebookKernel, kernelSessionPath, SandboxAction, sandboxActions, sandboxLabel } from '../kinds';
import { downloadName, uploadLimit, uploadPath, WORKDIR } from '../paths';
import { SandboxStore } from '../store';
import type { IFileEntry, ILogs, ISandbox } from '../wire';
import { AdminSandboxList } from './admin';
import { CreateForm } from './create';
import { ApiKeyList } from './keys';
import { VolumeList } from './volumes';
import { dropTarget, FileTree } from './files';
import { OneShotList } from './oneshots';

/** Runs an action, reporting failure as a notification with the server's message. */
export async function report<T>(what: string, action: () => Promise<T>): Promise<T | undefined> {
  try {
    return await action();
  } catch (error) {
    Notification.error(`${what}: ${(error as Error).message}`, { autoClose: 8000 });
    return undefined;
  }
}

/**
 * Hands a blob to the browser as a download named `name`. Typed as opaque bytes: a file from a
 * sandbox (an .html, an .svg) must never be shown by the browser in this page's origin.
 */
function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // after the browser has taken the download over
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The word the badge shows: what the user can do with the sandbox right now. */
export function badgeState(sandbox: ISandbox, busy: boolean): string {
  return busy && sandbox.status === 'running' ? 'busy' : sandbox.status;
}

interface IUpload {
  name: string;
  fraction: number;
}

/** The list of sandboxes: one section of the panel. */
class SandboxList extends ReactWidget {
  constructor(
    private store: SandboxStore,
    private commands: CommandRegistry,
    private sessions: Session.IManager | null
  ) {
    super();
    this.addClass('jp-SandboxList');
    this.title.label = 'Sandboxes';
    store.changed.connect(() => this.update(), this);
    // a kernel's sandbox is named after its notebook, which may open, close or be renamed
    sessions?.runningChanged.connect(() => this.update(), this);
    // uptimes move on even when nothing else happens
    this.ticker = window.setInterval(() => this.isVisible && this.update(), 1000);
  }

  dispose(): void {
    window.clearInterval(this.ticker);
    super.dispose();
  }

  /** Expand a sandbox's item and bring it into view. */
  reveal(id: string, what: { logs?: boolean } = {}): void {
    this.expanded.add(id);
    if (what.logs) {
      this.showLogs(id);
    }
    this.update();
    requestAnimationFrame(() =>
      this.node.querySelector(`[data-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: 'nearest' })
    );
  }

  /** Ask for files to upload into a sandbox (a file dialog). */
  chooseUpload(sandbox: ISandbox): void {
    const input = document.createElement('input');
    input.type = 'file';
    input.multiple = true;
    input.onchange = () => void this.upload(sandbox, WORKDIR, Array.from(input.files ?? []));
    input.click();
  }

  /** Upload files into `dir`, showing progress; refused early when over the server's limit. */
  async upload(sandbox: ISandbox, dir: string, files: File[]): Promise<void> {
    const limit = uploadLimit(sandbox, this.store.config);
    this.expanded.add(sandbox.id);
    for (const file of files) {
      const path = uploadPath(dir, file.name);
      if (file.size > limit) {
        Notification.error(
          `Upload ${file.name}: ${formatBytes(file.size)} is over this sandbox's upload limit of ${formatBytes(limit)}`,
          { autoClose: 8000 }
        );
        continue;
      }
      this.uploads.set(sandbox.id, { name: path, fraction: 0 });
      this.update();
      const done = await report(`Upload ${file.name} to ${sandbox.name}`, async () => {
        await api.upload(sandbox.id, path, file, fraction => {
          this.uploads.set(sandbox.id, { name: path, fraction });
          this.update();
        });
        return true;
      });
      this.uploads.delete(sandbox.id);
      if (done) {
        Notification.success(`Uploaded ${path} to ${sandbox.name}`, { autoClose: 3000 });
      }
    }
    this.bumpFiles(sandbox.id);
  }

  /** List a sandbox's open folders again. */
  private bumpFiles(id: string): void {
    this.filesVersion.set(id, (this.filesVersion.get(id) ?? 0) + 1);
    this.update();
  }

  private showLogs(id: string): void {
    this.logs.set(id, 'loading');
    this.update();
    void api.logs(id).then(
      logs => {
        this.logs.set(id, logs);
        this.update();
      },
      error => {
        this.logs.set(id, { error: (error as Error).message });
        this.update();
      }
    );
  }

  private toggle(id: string): void {
    if (!this.expanded.delete(id)) {
      this.expanded.add(id);
    }
    this.update();
  }

  render(): JSX.Element {
    const { sandboxes } = this.store;
    if (!sandboxes.length) {
      return (
        <div className="jp-SandboxPanel-empty">
          {this.store.loaded ? 'No sandboxes. Create one below, or run a cell in one.' : 'Loading…'}
        </div>
      );
    }
    const now = Date.now() / 1000;
    return <ul className="jp-SandboxList-items">{sandboxes.map(s => this.renderItem(s, now))}</ul>;
  }

  /** The path of the notebook whose kernel runs in this sandbox, if it is one and its session is open. */
  private sessionPath(s: ISandbox): string | null {
    return this.sessions ? kernelSessionPath(s, this.sessions.running()) : null;
  }

  private renderItem(s: ISandbox, now: number): JSX.Element {
    const expanded = this.expanded.has(s.id);
    const Caret = expanded ? caretDownIcon.react : caretRightIcon.react;
    const state = badgeState(s, this.store.isBusy(s));
    const kernel = isNotebookKernel(s);
    const path = this.sessionPath(s);
    const label = sandboxLabel(s, path);
    const Icon = kernel ? notebookIcon.react : sandboxIcon.react;
    const command = (id: string, event?: React.SyntheticEvent) => {
      event?.stopPropagation();
      void this.commands.execute(id, { id: s.id });
    };
    const what = kernel
      ? `the notebook kernel of ${path ?? s.name}, in sandbox ${s.name}`
      : `sandbox ${s.name}${path ? ` of ${path}` : ''}`;
    return (
      <li
        key={s.id}
        className={`jp-SandboxItem${expanded ? ' jp-mod-expanded' : ''}`}
        data-id={s.id}
        data-name={s.name}
        data-status={s.status}
        data-kind={s.kind}
        {...dropTarget(files => void this.upload(s, WORKDIR, files))}
      >
        <div
          className="jp-SandboxItem-header"
          role="button"
          tabIndex={0}
          aria-expanded={expanded}
          title={`${what} (${s.id}) — click to ${expanded ? 'collapse' : 'expand'}; drop files to upload`}
          onClick={() => this.toggle(s.id)}
          onKeyDown={event => (event.key === 'Enter' || event.key === ' ') && this.toggle(s.id)}
        >
          <Caret tag="span" className="jp-SandboxItem-caret" />
          <Icon tag="span" className="jp-SandboxItem-icon" />
          <span className="jp-SandboxItem-label" title={`${label}: ${what} (${s.id})`}>
            {label}
          </span>
          {kernel && (
            <span
              className="jp-SandboxItem-kind"
              title="A notebook kernel: the notebook's whole kernel runs in this sandbox"
            >
              kernel
            </span>
          )}
          <span className="jp-SandboxItem-badge" data-state={state} title={s.status_reason ?? undefined}>
            {state}
          </span>
          <span className="jp-SandboxItem-detail">{formatUptime(now - s.created)}</span>
          <ToolbarButtonComponent
            className="jp-SandboxItem-remove"
            icon={closeIcon}
            tooltip={kernel ? `Shut down ${what} (its sandbox goes with it)` : `Remove ${s.name}`}
            onClick={event => command(CommandIDs.remove, event)}
          />
        </div>
        {expanded && this.renderBody(s, path)}
      </li>
    );
  }

  private renderAction(s: ISandbox, action: SandboxAction, logs: unknown): JSX.Element {
    switch (action) {
      case 'interrupt':
        return (
          <ToolbarButtonComponent
            key={action}
            icon={stopIcon}
            label="Interrupt"
            tooltip="Interrupt the code running in it"
            onClick={() => void this.commands.execute(CommandIDs.interrupt, { id: s.id })}
          />
        );
      case 'restart':
        return (
          <ToolbarButtonComponent
            key={action}
            icon={refreshIcon}
            label="Restart"
            tooltip="Restart it: a fresh container, variables and files reset"
            onClick={() => void this.commands.execute(CommandIDs.restart, { id: s.id })}
          />
        );
      case 'upload':
        return (
          <ToolbarButtonComponent
            key={action}
            icon={fileUploadIcon}
            label="Upload"
            tooltip="Upload files into its working directory (or drop them on it)"
            onClick={() => this.chooseUpload(s)}
          />
        );
      case 'terminal':
        return (
          <ToolbarButtonComponent
            key={action}
            icon={terminalIcon}
            label="Terminal"
            tooltip="Open a terminal in it: a shell in the sandbox, in a main-area tab"
            onClick={() => void this.commands.execute(CommandIDs.terminal, { id: s.id })}
          />
        );
      case 'logs':
        return (
          <ToolbarButtonComponent
            key={action}
            icon={listIcon}
            label="Logs"
            tooltip="Show its kernel and container logs"
            pressed={logs !== undefined}
            onClick={() => {
              if (this.logs.has(s.id)) {
                this.logs.delete(s.id);
                this.update();
              } else {
                this.showLogs(s.id);
              }
            }}
          />
        );
    }
  }

  private renderBody(s: ISandbox, path: string | null): JSX.Element {
    const stats = this.store.stats.get(s.id);
    const upload = this.uploads.get(s.id);
    const logs = this.logs.get(s.id);
    const contexts = s.contexts.map(c => `${c.language} (${c.id})`).join(', ') || 'none';
    // of the memory asked for; the limit said as in cells and the CLI (the disk is held in memory too)
    const memory = `${stats ? formatBytes(stats.memory_used) : '-'} / ${formatBytes(s.spec.memory)}`;
    const memoryTitle = `Limit: ${s.limit}`;
    return (
      <div className="jp-SandboxItem-body">
        <div className="jp-SandboxItem-actions" role="toolbar" aria-label={`Actions on ${s.name}`}>
          {sandboxActions(s).map(action => this.renderAction(s, action, logs))}
        </div>
        <dl className="jp-SandboxItem-details">
          {!isNotebookKernel(s) && path && (
            <>
              <dt>Notebook</dt>
              <dd data-field="notebook" title={`${path} (sandbox ${s.name}, ${s.id})`}>
                {path}
              </dd>
            </>
          )}
          {isNotebookKernel(s) && (
            <>
              <dt>Kernel of</dt>
              <dd data-field="notebook" title={`Kernel ${s.kernel_id}; restart or shut it down from the notebook`}>
                {path ?? `kernel ${s.kernel_id}`}
              </dd>
            </>
          )}
          {s.status_reason && (
            <>
              <dt>Status</dt>
              <dd data-field="status-reason" title={s.status_reason}>
                {s.status} — {s.status_reason}
              </dd>
            </>
          )}
          <dt>Image</dt>
          <dd>{s.spec.image ?? 'default'}</dd>
          <dt>CPU</dt>
          <dd data-field="cpu">{stats ? `${formatPercent(stats.cpu_percent)} of ${s.spec.cpus}` : '-'}</dd>
          <dt>Memory</dt>
          <dd data-field="memory" title={memoryTitle}>
            {memory}
          </dd>
          <dt>Network</dt>
          <dd data-field="network" title={networkTitle(s.spec)}>
            {networkText(s.spec)}
          </dd>
          {s.spec.volume && (
            <>
              <dt>Volume</dt>
              <dd data-field="volume" title="Your persistent volume, at its mount path (see Volumes)">
                {s.spec.volume_read_only ? `${s.spec.volume} (read-only)` : s.spec.volume}
              </dd>
            </>
          )}
          <dt>Contexts</dt>
          <dd data-field="contexts">{contexts}</dd>
        </dl>
        {upload && (
          <div className="jp-SandboxItem-upload" aria-live="polite">
            <span>
              Uploading {upload.name}: {Math.round(upload.fraction * 100)}%
            </span>
            <progress max={1} value={upload.fraction} />
          </div>
        )}
        <div className="jp-SandboxItem-subtitle">
          Files in {WORKDIR}
          <ToolbarButtonComponent
            icon={refreshIcon}
            tooltip="List the files again"
            onClick={() => this.bumpFiles(s.id)}
          />
        </div>
        <FileTree
          sandbox={s}
          version={(this.filesVersion.get(s.id) ?? 0) + (this.store.activity.get(s.id) ?? 0)}
          onDownload={entry => void this.download(s, entry)}
          onUpload={(dir, files) => void this.upload(s, dir, files)}
        />
        {logs !== undefined && this.renderLogs(s, logs)}
      </div>
    );
  }

  private renderLogs(s: ISandbox, logs: ILogs | 'loading' | { error: string }): JSX.Element {
    let body: JSX.Element;
    if (logs === 'loading') {
      body = <div className="jp-SandboxPanel-empty">Loading…</div>;
    } else if ('error' in logs) {
      body = <div className="jp-SandboxPanel-empty">{logs.error}</div>;
    } else {
      body = (
        <>
          {logs.contexts.map(c => (
            <section key={c.id} className="jp-SandboxLogs-section" data-log={`kernel-${c.id}`}>
              <h4>
                Kernel log ({c.language}, {c.id})
              </h4>
              <pre>{c.kernel_log || '(empty)'}</pre>
            </section>
          ))}
          {logs.container !== null && (
            <section className="jp-SandboxLogs-section" data-log="container">
              <h4>Container log</h4>
              <pre>{logs.container || '(empty)'}</pre>
            </section>
          )}
        </>
      );
    }
    return (
      <div className="jp-SandboxLogs" aria-label={`Logs of ${s.name}`}>
        <div className="jp-SandboxItem-subtitle">
          Logs
          <ToolbarButtonComponent icon={refreshIcon} tooltip="Reload the logs" onClick={() => this.showLogs(s.id)} />
        </div>
        {body}
      </div>
    );
  }

  private async download(s: ISandbox, entry: IFileEntry): Promise<void> {
    await report(`Download ${entry.path} from ${s.name}`, async () =>
      saveBlob(await api.fileBlob(s.id, entry.path), downloadName(entry.path))
    );
  }

  private expanded = new Set<string>();
  private uploads = new Map<string, IUpload>();
  private filesVersion = new Map<string, number>();
  private logs = new Map<string, ILogs | 'loading' | { error: string }>();
  private ticker: number;
}

export class SandboxPanel extends SidePanel {
  constructor(
    private store: SandboxStore,
    commands: CommandRegistry,
    sessions: Session.IManager | null = null
  ) {
    super();
    this.id = 'jupyter-sandbox-panel';
    this.addClass('jp-SandboxPanel');
    this.title.icon = sandboxIcon;
    this.title.caption = 'Sandboxes';

    this.list = new SandboxList(store, commands, sessions);
    this.form = new CreateForm(store, made => this.list.reveal(made.id));
    this.oneShots = new OneShotList(store);
    this.keys = new ApiKeyList();
    this.volumes = new VolumeList(); // issue 23
    // added to the accordion only while the admin route answers 200 (403: not an admin)
    this.admin = new AdminSandboxList(allowed => this.showAdmin(allowed));

    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Refresh sandboxes, stats and one-shot executions',
        onClick: () =>
          void Promise.all([this.store.refreshAll(), this.admin.refresh(), this.keys.refresh(), this.volumes.refresh()])
      })
    );
    this.toolbar.addItem(
      'create',
      new ToolbarButton({ icon: addIcon, tooltip: 'New sandbox', onClick: () => this.focusCreate() })
    );
    this.toolbar.addItem(
      'new-key',
      new ToolbarButton({
        icon: keyIcon,
        tooltip: "New API key for E2B's SDKs",
        onClick: () => void commands.execute(CommandIDs.newKey)
      })
    );
    this.toolbar.addItem(
      'help',
      new ToolbarButton({
        icon: infoIcon,
        tooltip: 'Sandboxes documentation',
        onClick: () => void commands.execute(CommandIDs.help)
      })
    );
    this.addWidget(this.list);
    this.addWidget(this.form);
    this.addWidget(this.oneShots);
    this.addWidget(this.keys);
    this.addWidget(this.volumes);
    // most of the room for the list, some for the form, a little for one-shot runs, keys and volumes
    this.accordion.setRelativeSizes([3, 2, 1, 1, 1]);
  }

  private get accordion(): AccordionPanel {
    return this.content as AccordionPanel;
  }

  /** Expand a sandbox's item (and its logs) and bring it into view. */
  reveal(id: string, what: { logs?: boolean } = {}): void {
    this.list.reveal(id, what);
  }

  /** Open the API keys section and mint a key there. */
  async newKey(): Promise<void> {
    this.accordion.expand(this.widgets.indexOf(this.keys));
    await this.keys.mint();
  }

  /** Show the create form with the cursor in its first field. */
  focusCreate(): void {
    this.accordion.expand(this.widgets.indexOf(this.form));
    this.form.focus();
  }

  chooseUpload(sandbox: ISandbox): void {
    this.list.chooseUpload(sandbox);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.store.visible = true;
    void this.admin.refresh();
    void this.keys.refresh();
    void this.volumes.refresh();
  }

  /** Add or take away the admin section (a title alone would still show if it were only hidden). */
  private showAdmin(allowed: boolean): void {
    const shown = this.widgets.includes(this.admin);
    if (allowed && !shown) {
      this.addWidget(this.admin);
    } else if (!allowed && shown) {
      this.admin.parent = null;
    }
  }

  dispose(): void {
    // not disposed with the panel while it is out of the accordion
    this.admin.dispose();
    super.dispose();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.store.visible = false;
  }

  readonly list: SandboxList;
  readonly form: CreateForm;
  readonly oneShots: OneShotList;
  readonly admin: AdminSandboxList;
  readonly keys: ApiKeyList;
  readonly volumes: VolumeList;
}
