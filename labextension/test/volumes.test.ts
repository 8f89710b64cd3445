// Unit tests of the Volumes section: listing with usage (used / limit), making one, removing one
// after confirmation, errors reported.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { IVolumesClient, IVolumesUI, mountText, usagePercent, usageText, Volumes } from '../src/volumes';
import type { IVolume } from '../src/wire';

const MiB = 1024 ** 2;

function volume(over: Partial<IVolume> = {}): IVolume {
  return {
    id: 'vol_1',
    name: 'data',
    owner: 'alice',
    size: 1024 * MiB,
    used: 3 * MiB,
    capacity: 1000 * MiB,
    mount_path: '/home/user/persist',
    created: 1_700_000_000,
    sandboxes: [],
    ...over
  };
}

class FakeServer implements IVolumesClient {
  volumes: IVolume[] = [];
  calls: string[] = [];
  fail: { [call: string]: Error } = {};
  async list(): Promise<IVolume[]> {
    this.calls.push('GET');
    if (this.fail.GET) {
      throw this.fail.GET;
    }
    return [...this.volumes];
  }
  async create(name: string, size: string | null): Promise<IVolume> {
    this.calls.push(`POST ${name} ${size}`);
    if (this.fail.POST) {
      throw this.fail.POST;
    }
    const made = volume({ id: `vol_${name}`, name, used: 0 });
    this.volumes.push(made);
    return made;
  }
  async remove(name: string): Promise<void> {
    this.calls.push(`DELETE ${name}`);
    if (this.fail.DELETE) {
      throw this.fail.DELETE;
    }
    this.volumes = this.volumes.filter(v => v.name !== name);
  }
}

class FakeUI implements IVolumesUI {
  answer: { name: string; size: string } | null = { name: ' work ', size: '' };
  confirm = true;
  errors: string[] = [];
  async askNew(): Promise<{ name: string; size: string } | null> {
    return this.answer;
  }
  async confirmRemove(): Promise<boolean> {
    return this.confirm;
  }
  error(title: string): void {
    this.errors.push(title);
  }
}

describe('volumes', () => {
  it('says usage as used of limit, the limit being what the filesystem holds', () => {
    assert.equal(usageText(volume()), '3 MiB of 1000 MiB used');
    assert.equal(usageText(volume({ capacity: 0 })), '3 MiB of 1 GiB used'); // not measured: its size
    assert.equal(usagePercent(volume({ used: 500 * MiB })), 50);
    assert.equal(usagePercent(volume({ used: 2000 * MiB })), 100);
    assert.equal(usagePercent(volume({ capacity: 0, size: 0 })), 0);
    assert.match(mountText(volume({ sandboxes: ['sbx_1'] })), /\/home\/user\/persist .*mounted in sbx_1/);
    assert.match(mountText(volume()), /not mounted now/);
  });

  it('lists, makes (name trimmed, default size) and removes after confirming', async () => {
    const server = new FakeServer();
    const ui = new FakeUI();
    let changes = 0;
    const model = new Volumes(server, ui, () => changes++);
    await model.refresh();
    assert.equal(model.loaded, true);
    assert.equal(model.volumes.length, 0);
    const made = await model.create();
    assert.equal(made?.name, 'work');
    assert.deepEqual(server.calls, ['GET', 'POST work null', 'GET']);
    assert.deepEqual(
      model.volumes.map(v => v.name),
      ['work']
    );
    ui.confirm = false;
    assert.equal(await model.remove(model.volumes[0]), false);
    ui.confirm = true;
    assert.equal(await model.remove(model.volumes[0]), true);
    assert.equal(model.volumes.length, 0);
    assert.ok(changes >= 3);
    ui.answer = null;
    assert.equal(await model.create(), null);
    assert.deepEqual(ui.errors, []);
  });

  it('reports failures and keeps the list', async () => {
    const server = new FakeServer();
    server.volumes = [volume()];
    const ui = new FakeUI();
    const model = new Volumes(server, ui);
    await model.refresh();
    server.fail.DELETE = new Error('volume data is mounted in sandbox sbx_1');
    assert.equal(await model.remove(model.volumes[0]), false);
    server.fail.POST = new Error('no persistent volumes');
    assert.equal(await model.create(), null);
    server.fail.GET = new Error('down');
    await model.refresh();
    assert.deepEqual(ui.errors, [
      'Could not remove the volume data',
      'Could not make a volume',
      'Could not list your volumes'
    ]);
    assert.equal(model.volumes.length, 1);
  });
});
