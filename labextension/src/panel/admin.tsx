/**
 * "All users' sandboxes": the panel's section for admins (the admin scope; behind JupyterHub
 * custom:sandbox:admin). The panel shows it only while the admin route answers 200; the model
 * and its rules are in ../admin.ts.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { ReactWidget, stopIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import React from 'react';

import { AdminSandboxes, adminRowText } from '../admin';
import { api } from '../api';
import type { IAdminSandbox } from '../wire';

/** Ask before stopping another user's sandbox: their kernel and files go with it. */
async function confirmStop(s: IAdminSandbox): Promise<boolean> {
  const result = await showDialog({
    title: `Stop ${s.name} of ${s.owner}?`,
    body: `${s.owner}'s ${s.kind === 'kernel' ? 'notebook kernel' : 'sandbox'} ${s.name} (${s.id}) is removed, with its files and variables.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
  });
  return result.button.accept;
}

export class AdminSandboxList extends ReactWidget {
  constructor(onAllowedChanged: (allowed: boolean) => void) {
    super();
    this.addClass('jp-SandboxAdmin');
    this.title.label = "All users' sandboxes";
    this.model = new AdminSandboxes(
      { list: api.adminList, stop: api.adminStop },
      { confirmStop, error: message => Notification.error(message, { autoClose: 8000 }) },
      () => {
        onAllowedChanged(this.model.allowed);
        this.update();
      }
    );
  }

  /** Ask the admin route again: the rows, and whether the section is shown at all. */
  refresh(): Promise<void> {
    return this.model.refresh();
  }

  render(): JSX.Element {
    const { rows } = this.model;
    if (!rows.length) {
      return <div className="jp-SandboxPanel-empty">No sandboxes of any user.</div>;
    }
    return (
      <table className="jp-SandboxAdmin-table">
        <thead>
          <tr>
            <th scope="col">Owner</th>
            <th scope="col">Sandbox</th>
            <th scope="col">Status</th>
            <th scope="col">Age</th>
            <th scope="col">Memory</th>
            <th scope="col">CPU</th>
            <th scope="col">
              <span className="jp-SandboxAdmin-hidden">Stop</span>
            </th>
          </tr>
        </thead>
        <tbody>{rows.map(s => this.renderRow(s))}</tbody>
      </table>
    );
  }

  private renderRow(s: IAdminSandbox): JSX.Element {
    const text = adminRowText(s);
    return (
      <tr key={s.id} className="jp-SandboxAdmin-row" data-id={s.id} data-owner={s.owner} data-name={s.name}>
        <td data-field="owner">{text.owner}</td>
        <td data-field="name" title={`${s.name} (${s.id})${s.kind === 'kernel' ? ', a notebook kernel' : ''}`}>
          {text.name}
        </td>
        <td>
          <span className="jp-SandboxItem-badge" data-state={s.status}>
            {text.status}
          </span>
        </td>
        <td data-field="age">{text.age}</td>
        <td data-field="memory" title={`${s.cpus} CPUs`}>
          {text.memory}
        </td>
        <td data-field="cpu">{text.cpu}</td>
        <td>
          <ToolbarButtonComponent
            className="jp-SandboxAdmin-stop"
            icon={stopIcon}
            tooltip={`Stop ${s.name} of ${s.owner}`}
            onClick={() => void this.model.stop(s)}
          />
        </td>
      </tr>
    );
  }

  readonly model: AdminSandboxes;
}
