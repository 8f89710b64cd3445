/**
 * The left-sidebar "Sandboxes" panel: create form, the user's sandboxes with live stats and
 * actions, a file browser, and the one-shot executions.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { api } from './api';
import {
  ACTIVE_ONE_SHOT,
  createBody,
  downloadName,
  formatBytes,
  formatDuration,
  formatPercent,
  formatUptime,
  IFileEntry,
  isDirectory,
  ISandbox,
  oneShotDuration
} from './model';
import { SandboxStore } from './store';

type Child = Node | string | null | undefined | false;

function h(tag: string, attrs: { [key: string]: string } = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    el.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child);
    }
  }
  return el;
}

/** Runs an action, reporting failure as a notification with the server's message. */
export async function report<T>(what: string, action: () => Promise<T>): Promise<T | undefined> {
  try {
    return await action();
  } catch (error) {
    Notification.error(`${what}: ${(error as Error).message}`, { autoClose: 8000 });
    return undefined;
  }
}

/** Hands a blob to the browser as a download named `name`. */
function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: '' });
  document.body.append(a);
  a.click();
  a.remove();
  // after the browser has taken the download over
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export class SandboxPanel extends Widget {
  constructor(private store: SandboxStore) {
    super();
    this.id = 'jupyter-sandbox-panel';
    this.addClass('jp-SandboxPanel');
    this.title.caption = 'Sandboxes';

    this.form = this.buildForm();
    this.list = h('ul', { class: 'jp-SandboxPanel-list' });
    this.files = h('div', { class: 'jp-SandboxPanel-files' });
    this.oneShots = h('ul', { class: 'jp-SandboxPanel-oneshots' });
    const refresh = h('button', { class: 'jp-SandboxPanel-refresh', title: 'Refresh' }, 'Refresh');
    refresh.onclick = () => void this.store.refresh();
    this.node.append(
      h('header', { class: 'jp-SandboxPanel-header' }, h('h2', {}, 'Sandboxes'), refresh),
      this.form,
      this.list,
      this.files,
      h('h3', {}, 'One-shot executions'),
      this.oneShots
    );
    store.changed.connect(this.render, this);
    this.render();
  }

  private buildForm(): HTMLElement {
    const field = (label: string, input: HTMLElement) =>
      h('label', { class: 'jp-SandboxPanel-field' }, h('span', {}, label), input);
    const input = (name: string, placeholder: string) =>
      h('input', { name, placeholder, class: 'jp-mod-styled' }) as HTMLInputElement;
    const name = input('name', 'optional');
    const image = input('image', 'server default');
    const memory = input('memory', '512M');
    const cpus = input('cpus', '1');
    const network = h('input', { type: 'checkbox', name: 'network' }) as HTMLInputElement;
    const submit = h('button', { type: 'submit', class: 'jp-mod-styled jp-mod-accept' }, 'Create sandbox');
    const form = h(
      'form',
      { class: 'jp-SandboxPanel-create' },
      field('Name', name),
      field('Image', image),
      field('Memory', memory),
      field('CPUs', cpus),
      field('Network', network),
      submit
    ) as HTMLFormElement;
    form.onsubmit = async event => {
      event.preventDefault();
      submit.setAttribute('disabled', '');
      const body = createBody({
        name: name.value,
        image: image.value,
        memory: memory.value,
        cpus: cpus.value,
        network: network.checked
      });
      const made = await report('Create sandbox', () => api.create(body));
      submit.removeAttribute('disabled');
      if (made) {
        name.value = '';
        Notification.success(`Sandbox ${made.name} created`, { autoClose: 3000 });
        await this.store.refresh();
      }
    };
    return form;
  }

  private render(): void {
    const now = Date.now() / 1000;
    if (this.browsing && !this.store.find(this.browsing)) {
      // the sandbox whose files are shown is gone
      this.browsing = null;
      this.files.replaceChildren();
    }
    this.list.replaceChildren(
      ...(this.store.sandboxes.length
        ? this.store.sandboxes.map(s => this.renderSandbox(s, now))
        : [h('li', { class: 'jp-SandboxPanel-empty' }, 'No sandboxes')])
    );
    this.oneShots.replaceChildren(
      ...(this.store.oneShots.length
        ? this.store.oneShots.map(e => {
            const kill = h('button', { class: 'jp-SandboxPanel-kill' }, 'Kill');
            kill.onclick = () => void report('Kill', () => api.killOneShot(e.execution_id)).then(() => this.store.refresh());
            return h(
              'li',
              { class: 'jp-SandboxPanel-oneshot', 'data-id': e.execution_id },
              h('code', {}, e.execution_id),
              ` ${e.status} · ${formatDuration(oneShotDuration(e, Date.now()))} `,
              ACTIVE_ONE_SHOT.has(e.status) && kill
            );
          })
        : [h('li', { class: 'jp-SandboxPanel-empty' }, 'None')])
    );
  }

  private renderSandbox(s: ISandbox, now: number): HTMLElement {
    const stats = this.store.stats.get(s.id);
    const status = this.store.busy.has(s.name) ? `${s.status}, busy` : s.status;
    const button = (label: string, action: () => Promise<unknown>) => {
      const b = h('button', { class: 'jp-SandboxPanel-action', 'data-action': label.toLowerCase() }, label);
      b.onclick = async () => {
        b.setAttribute('disabled', '');
        await report(`${label} ${s.name}`, action);
        b.removeAttribute('disabled');
        await this.store.refresh();
      };
      return b;
    };
    const contexts = s.contexts.map(c => c.language).join(', ') || 'none';
    return h(
      'li',
      { class: 'jp-SandboxPanel-item', 'data-name': s.name, 'data-status': s.status },
      h('div', { class: 'jp-SandboxPanel-title' }, h('strong', {}, s.name), h('span', { class: `jp-SandboxPanel-status jp-mod-${s.status}` }, status)),
      h(
        'dl',
        { class: 'jp-SandboxPanel-details' },
        h('dt', {}, 'Image'),
        h('dd', {}, s.spec.image ?? 'default'),
        h('dt', {}, 'Uptime'),
        h('dd', { 'data-field': 'uptime' }, formatUptime(now - s.created)),
        h('dt', {}, 'CPU'),
        h('dd', { 'data-field': 'cpu' }, stats ? formatPercent(stats.cpu_percent) : '-'),
        h('dt', {}, 'Memory'),
        h(
          'dd',
          { 'data-field': 'memory' },
          stats ? `${formatBytes(stats.memory_used)} / ${formatBytes(stats.memory_limit)}` : `- / ${formatBytes(s.spec.memory)}`
        ),
        h('dt', {}, 'Contexts'),
        h('dd', { 'data-field': 'contexts' }, `${s.contexts.length} (${contexts})`)
      ),
      h(
        'div',
        { class: 'jp-SandboxPanel-actions' },
        button('Interrupt', () => api.interrupt(s.id)),
        button('Restart', () => api.restart(s.id)),
        button('Files', () => this.browse(s, '.')),
        button('Remove', () => api.remove(s.id))
      )
    );
  }

  /**
   * Lists one directory of a sandbox: a directory opens its listing, a file downloads.
   * `trail` is the directories above, for "..".
   */
  private async browse(s: ISandbox, path: string, trail: string[] = []): Promise<void> {
    const entries: IFileEntry[] = await api.files(s.id, path);
    const close = h('button', { class: 'jp-SandboxPanel-action' }, 'Close');
    close.onclick = () => {
      this.browsing = null;
      this.files.replaceChildren();
    };
    this.browsing = s.name;
    const row = (label: string, entry: IFileEntry | null, open: () => Promise<void>) => {
      const li = h('li', { class: `jp-SandboxPanel-file jp-mod-link jp-mod-${entry?.type ?? 'dir'}` }, label);
      const file = entry !== null && !isDirectory(entry);
      li.onclick = () => void report(file ? `Download ${entry.path} from ${s.name}` : `Files in ${s.name}`, open);
      if (file) {
        li.title = `Download ${entry.path}`;
        li.append(h('span', { class: 'jp-SandboxPanel-size' }, ` ${formatBytes(entry.size)}`));
      }
      return li;
    };
    const entryRow = (e: IFileEntry) =>
      isDirectory(e)
        ? row(`${e.name}/`, e, () => this.browse(s, e.path, [...trail, path]))
        : row(e.name, e, async () => saveBlob(await api.fileBlob(s.id, e.path), downloadName(e.path)));
    this.files.replaceChildren(
      h('div', { class: 'jp-SandboxPanel-title' }, h('strong', {}, `${s.name}:${path}`), close),
      h(
        'ul',
        {},
        trail.length > 0 && row('..', null, () => this.browse(s, trail[trail.length - 1], trail.slice(0, -1))),
        ...entries.map(entryRow)
      )
    );
  }

  dispose(): void {
    this.store.changed.disconnect(this.render, this);
    super.dispose();
  }

  private browsing: string | null = null;
  private form: HTMLElement;
  private list: HTMLElement;
  private files: HTMLElement;
  private oneShots: HTMLElement;
}
