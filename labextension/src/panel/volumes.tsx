/**
 * "Volumes": the panel's section for the user's persistent volumes (issue 23). Lists them with
 * their usage (a bar and "used of limit"), where they are mounted, makes one (name and size) and
 * removes one after a confirmation. The model and its rules are in ../volumes.ts.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { closeIcon, ReactWidget, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import React from 'react';

import { api } from '../api';
import { mountText, usagePercent, usageText, Volumes } from '../volumes';
import type { IVolume } from '../wire';

/** The new volume's name and size, asked in one dialog. */
class NewVolumeBody extends ReactWidget implements Dialog.IBodyWidget<{ name: string; size: string }> {
  getValue(): { name: string; size: string } {
    const field = (name: string) => (this.node.querySelector(`input[name="${name}"]`) as HTMLInputElement).value;
    return { name: field('name'), size: field('size') };
  }

  render(): JSX.Element {
    return (
      <div className="jp-SandboxVolumes-new">
        <label>
          Name
          <input className="jp-mod-styled" name="name" placeholder="e.g. data" autoFocus />
        </label>
        <label>
          Size (its limit)
          <input className="jp-mod-styled" name="size" placeholder="the server's default, e.g. 1G" />
        </label>
      </div>
    );
  }
}

async function askNew(): Promise<{ name: string; size: string } | null> {
  const result = await showDialog({
    title: 'New volume',
    body: new NewVolumeBody(),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create' })]
  });
  return result.button.accept ? result.value : null;
}

async function confirmRemove(volume: IVolume): Promise<boolean> {
  const result = await showDialog({
    title: `Remove the volume ${volume.name}?`,
    body: `Its files (${usageText(volume)}) are deleted. This cannot be undone.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
  });
  return result.button.accept;
}

export class VolumeList extends ReactWidget {
  constructor() {
    super();
    this.addClass('jp-SandboxVolumes');
    this.title.label = 'Volumes';
    this.model = new Volumes(
      { list: api.volumes, create: api.createVolume, remove: api.removeVolume },
      { askNew, confirmRemove, error: (title, error) => void showErrorMessage(title, error as Error) },
      () => this.update()
    );
  }

  refresh(): Promise<void> {
    return this.model.refresh();
  }

  render(): JSX.Element {
    const { volumes, loaded } = this.model;
    return (
      <div className="jp-SandboxVolumes-body">
        <p className="jp-SandboxKeys-help">
          Files that outlive sandboxes: a sandbox made with a volume sees it at its mount path.
        </p>
        {volumes.length ? (
          <ul className="jp-SandboxList-items">{volumes.map(volume => this.renderVolume(volume))}</ul>
        ) : (
          <div className="jp-SandboxPanel-empty">{loaded ? 'No volumes.' : 'Loading…'}</div>
        )}
        <button
          type="button"
          className="jp-mod-styled jp-mod-accept jp-SandboxVolumes-create"
          onClick={() => void this.model.create()}
        >
          New volume
        </button>
      </div>
    );
  }

  private renderVolume(volume: IVolume): JSX.Element {
    return (
      <li key={volume.id} className="jp-SandboxVolume" data-name={volume.name} title={mountText(volume)}>
        <span className="jp-SandboxItem-label">{volume.name}</span>
        <meter className="jp-SandboxVolume-meter" min={0} max={100} high={90} value={usagePercent(volume)} />
        <span className="jp-SandboxItem-detail jp-SandboxVolume-usage">{usageText(volume)}</span>
        <ToolbarButtonComponent
          className="jp-SandboxVolume-remove"
          icon={closeIcon}
          tooltip={`Remove ${volume.name} and its files`}
          onClick={() => void this.model.remove(volume)}
        />
      </li>
    );
  }

  readonly model: Volumes;
}
