/**
 * "API keys": the panel's section for the user's keys for E2B's SDKs. Lists them (prefix, name,
 * date), mints one (its secret and the `jupyter sandbox e2b-env` export lines shown once, with
 * copy buttons) and revokes one after a confirmation. The model and its rules are in ../keys.ts.
 */
import { Clipboard, Dialog, InputDialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { closeIcon, copyIcon, ReactWidget, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import React from 'react';

import { api } from '../api';
import { ApiKeys, e2bEnvLines, keyLabel } from '../keys';
import type { IApiKey, IMintedKey } from '../wire';

async function askName(): Promise<string | null> {
  const result = await InputDialog.getText({
    title: 'New API key',
    label: 'A name, to remember what the key is for (optional):',
    placeholder: 'e.g. laptop scripts',
    okLabel: 'Create'
  });
  return result.button.accept ? (result.value ?? '') : null;
}

/** A text with a button that copies it. */
function Copyable(props: { text: string; what: string; field: string; block?: boolean }): JSX.Element {
  const Tag = props.block ? 'pre' : 'code';
  return (
    <div className="jp-SandboxKeys-copyable">
      <Tag className="jp-SandboxKeys-secret" data-field={props.field}>
        {props.text}
      </Tag>
      <ToolbarButtonComponent
        className="jp-SandboxKeys-copy"
        icon={copyIcon}
        tooltip={`Copy ${props.what}`}
        onClick={() => Clipboard.copyToSystem(props.text)}
      />
    </div>
  );
}

/**
 * The server E2B's SDKs reach: this one, or null behind JupyterHub, where the sandbox service
 * serves E2B's routes at a URL the page does not know (`jupyter sandbox e2b-env` does).
 */
async function e2bServer(): Promise<string | null> {
  try {
    return (await api.config()).mode === 'hub' ? null : PageConfig.getBaseUrl();
  } catch {
    return PageConfig.getBaseUrl();
  }
}

async function showSecret(key: IMintedKey): Promise<void> {
  const server = await e2bServer();
  await showDialog({
    title: `API key ${keyLabel(key)}`,
    body: (
      <div className="jp-SandboxKeys-minted">
        <p>Copy the key now: it is shown only this once.</p>
        <Copyable text={key.key} what="the key" field="key" />
        {server === null ? (
          <p>
            For E2B&apos;s SDKs: <code>export E2B_API_KEY=…</code> with this key; the URLs are in what{' '}
            <code>jupyter sandbox e2b-env</code> prints in a terminal of this server.
          </p>
        ) : (
          <>
            <p>
              For E2B&apos;s SDKs, in a shell (what <code>jupyter sandbox e2b-env</code> prints):
            </p>
            <Copyable text={e2bEnvLines(server, key.key)} what="the export lines" field="exports" block />
          </>
        )}
      </div>
    ),
    buttons: [Dialog.okButton({ label: 'Done' })]
  });
}

async function confirmRevoke(key: IApiKey): Promise<boolean> {
  const result = await showDialog({
    title: `Revoke the API key ${keyLabel(key)}?`,
    body: 'Programs that use it are refused from now on. This cannot be undone.',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Revoke' })]
  });
  return result.button.accept;
}

export class ApiKeyList extends ReactWidget {
  constructor() {
    super();
    this.addClass('jp-SandboxKeys');
    this.title.label = 'API keys';
    this.model = new ApiKeys(
      { list: api.keys, mint: api.mintKey, revoke: api.revokeKey },
      {
        askName,
        showSecret,
        confirmRevoke,
        error: (title, error) => void showErrorMessage(title, error as Error)
      },
      () => this.update()
    );
  }

  refresh(): Promise<void> {
    return this.model.refresh();
  }

  /** Mint a key (the palette's "New API Key" and the section's button). */
  mint(): Promise<IMintedKey | null> {
    return this.model.mint();
  }

  render(): JSX.Element {
    const { keys, loaded } = this.model;
    return (
      <div className="jp-SandboxKeys-body">
        <p className="jp-SandboxKeys-help">
          Keys for E2B&apos;s SDKs (<code>E2B_API_KEY</code>) that reach your sandboxes.
        </p>
        {keys.length ? (
          <ul className="jp-SandboxList-items">{keys.map(key => this.renderKey(key))}</ul>
        ) : (
          <div className="jp-SandboxPanel-empty">{loaded ? 'No API keys.' : 'Loading…'}</div>
        )}
        <button
          type="button"
          className="jp-mod-styled jp-mod-accept jp-SandboxKeys-new"
          onClick={() => void this.mint()}
        >
          New API key
        </button>
      </div>
    );
  }

  private renderKey(key: IApiKey): JSX.Element {
    const made = new Date(key.created * 1000);
    return (
      <li key={key.id} className="jp-SandboxKey" data-id={key.id} data-prefix={key.prefix}>
        <span className="jp-SandboxItem-label" title={`${key.id}, made ${made.toLocaleString()}`}>
          <code>{key.prefix}…</code> {key.name}
        </span>
        <span className="jp-SandboxItem-detail">{made.toLocaleDateString()}</span>
        <ToolbarButtonComponent
          className="jp-SandboxKey-revoke"
          icon={closeIcon}
          tooltip={`Revoke ${keyLabel(key)}`}
          onClick={() => void this.model.revoke(key)}
        />
      </li>
    );
  }

  readonly model: ApiKeys;
}
