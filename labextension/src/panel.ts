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
  formatBytes,
  formatDuration,
  formatPercent,
  formatUptime,
  IFileEntry,
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

  /** Lists one directory of a sandbox; directories are links into themselves. */
  private async browse(s: ISandbox, path: string): Promise<void> {
    const entries: IFileEntry[] = await api.files(s.id, path);
    const close = h('button', { class: 'jp-SandboxPanel-action' }, 'Close');
    close.onclick = () => {
      this.browsing = null;
      this.files.replaceChildren();
    };
    this.browsing = s.name;
    const up = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) || '.' : null;
    const row = (label: string, entry: IFileEntry | null, target: string | null) => {
      const li = h('li', { class: `jp-SandboxPanel-file jp-mod-${entry?.type ?? 'directory'}` }, label);
      if (target !== null) {
        li.classList.add('jp-mod-link');
        li.onclick = () => void report(`Files in ${s.name}`, () => this.browse(s, target));
      }
      if (entry && entry.type !== 'directory') {
        li.append(h('span', { class: 'jp-SandboxPanel-size' }, ` ${formatBytes(entry.size)}`));
      }
      return li;
    };
    this.files.replaceChildren(
      h('div', { class: 'jp-SandboxPanel-title' }, h('strong', {}, `${s.name}:${path}`), close),
      h(
        'ul',
        {},
        up !== null && path !== '.' ? row('..', null, up) : null,
        ...entries.map(e => row(e.type === 'directory' ? `${e.name}/` : e.name, e, e.type === 'directory' ? e.path : null))
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
