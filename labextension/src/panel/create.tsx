/**
 * The create form: a section of the panel. It shows the server's real defaults (as
 * placeholders), maxima and allowed images from GET config, checks what it can before
 * asking, and marks the field an error names (its own check's or the server's).
 */
import { Notification } from '@jupyterlab/apputils';
import { errorIcon, HTMLSelect, ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import { api, APIError } from '../api';
import { checkForm, createBody, FieldErrors, ICreateForm } from '../form';
import { formatBytes, formatSize } from '../format';
import { SandboxStore } from '../store';
import type { ISandbox } from '../wire';

const EMPTY: ICreateForm = { name: '', image: '', memory: '', cpus: '', network: false, volume: '' };

export class CreateForm extends ReactWidget {
  constructor(
    private store: SandboxStore,
    private created: (sandbox: ISandbox) => void
  ) {
    super();
    this.addClass('jp-SandboxCreate');
    this.title.label = 'New sandbox';
    store.changed.connect(() => this.update(), this);
  }

  focus(): void {
    requestAnimationFrame(() => this.node.querySelector<HTMLInputElement>('input[name="name"]')?.focus());
  }

  render(): JSX.Element {
    const config = this.store.config;
    const set = (field: keyof ICreateForm, value: string | boolean) => {
      this.form = { ...this.form, [field]: value };
      delete this.errors[field];
      this.update();
    };
    const field = (name: keyof ICreateForm, label: string, input: JSX.Element, hint?: string) => (
      <div className={`jp-SandboxCreate-field${this.errors[name] ? ' jp-mod-error' : ''}`} data-field={name}>
        <label htmlFor={`jp-sandbox-create-${name}`}>{label}</label>
        {input}
        {this.errors[name] ? (
          <div className="jp-SandboxCreate-error" id={`jp-sandbox-create-${name}-error`} role="alert">
            <errorIcon.react tag="span" className="jp-SandboxCreate-errorIcon" />
            {this.errors[name]}
          </div>
        ) : (
          hint && <div className="jp-SandboxCreate-hint">{hint}</div>
        )}
      </div>
    );
    const text = (name: 'name' | 'memory' | 'cpus' | 'volume', placeholder: string) => (
      <input
        id={`jp-sandbox-create-${name}`}
        name={name}
        className="jp-mod-styled"
        placeholder={placeholder}
        value={this.form[name]}
        aria-invalid={this.errors[name] ? true : undefined}
        aria-describedby={this.errors[name] ? `jp-sandbox-create-${name}-error` : undefined}
        onChange={event => set(name, event.target.value)}
      />
    );
    const images = config?.images ?? [];
    return (
      <form
        className="jp-SandboxCreate-form"
        onSubmit={event => {
          event.preventDefault();
          void this.submit();
        }}
      >
        {field('name', 'Name', text('name', 'optional'))}
        {field(
          'image',
          'Image',
          <HTMLSelect
            id="jp-sandbox-create-image"
            name="image"
            value={this.form.image || config?.defaults.image || ''}
            onChange={event => set('image', event.target.value)}
            options={images.map(i => ({ label: i === config?.defaults.image ? `${i} (default)` : i, value: i }))}
          />,
          images.length === 1 ? 'the only image this server allows' : undefined
        )}
        {field(
          'memory',
          'Memory',
          text('memory', config ? formatSize(config.defaults.memory) : ''),
          config ? `default ${formatBytes(config.defaults.memory)}, at most ${formatBytes(config.maximums.memory)}` : ''
        )}
        {field(
          'cpus',
          'CPUs',
          text('cpus', config ? String(config.defaults.cpus) : ''),
          config ? `default ${config.defaults.cpus}, at most ${config.maximums.cpus}` : ''
        )}
        {field(
          'network',
          'Network',
          <input
            id="jp-sandbox-create-network"
            type="checkbox"
            name="network"
            checked={this.form.network}
            disabled={config !== null && !config.allow_network}
            onChange={event => set('network', event.target.checked)}
          />,
          config && !config.allow_network ? 'not allowed on this server' : 'off: no network at all'
        )}
        {field(
          'volume',
          'Volume',
          text('volume', 'none'),
          'one of your persistent volumes to mount (made if new; see Volumes)'
        )}
        <div className="jp-SandboxCreate-submit">
          <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={this.busy}>
            {this.busy ? 'Creating…' : 'Create sandbox'}
          </button>
        </div>
        {config && (
          <p className="jp-SandboxCreate-isolation">
            Backend <strong>{config.backend}</strong>: {config.isolation}
          </p>
        )}
      </form>
    );
  }

  private async submit(): Promise<void> {
    this.errors = checkForm(this.form, this.store.config);
    if (Object.keys(this.errors).length) {
      this.update();
      return;
    }
    this.busy = true;
    this.update();
    try {
      const made = await api.create(createBody(this.form));
      this.form = { ...EMPTY, image: this.form.image };
      Notification.success(`Sandbox ${made.name} created`, { autoClose: 3000 });
      await this.store.refresh();
      this.created(made);
    } catch (error) {
      const message = (error as Error).message;
      const field = error instanceof APIError ? error.field : null;
      if (field && field in EMPTY) {
        this.errors = { [field]: message };
      } else {
        Notification.error(`Create sandbox: ${message}`, { autoClose: 8000 });
      }
    } finally {
      this.busy = false;
      this.update();
    }
  }

  private form: ICreateForm = { ...EMPTY };
  private errors: FieldErrors = {};
  private busy = false;
}
