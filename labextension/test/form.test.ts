// Unit tests of the create form's body and checks.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { checkForm, createBody, ICreateForm } from '../src/form';
import type { IServerConfig } from '../src/wire';

const GiB = 1024 ** 3;
const config: IServerConfig = {
  backend: 'docker',
  isolation: 'Docker container',
  images: ['jupyter-sandbox:latest', 'other:1'],
  defaults: {
    image: 'jupyter-sandbox:latest',
    memory: GiB,
    cpus: 1,
    disk: GiB,
    pids: 256,
    timeout: 300,
    network: false
  },
  maximums: {
    memory: 4 * GiB,
    cpus: 2,
    disk: 4 * GiB,
    pids: 1024,
    timeout: 3600,
    sandboxes_per_user: 8,
    contexts_per_sandbox: 8
  },
  allow_network: false,
  max_upload_size: 64 * 1024 ** 2,
  mode: 'server',
  network_allow_max: []
};
const form = (over: Partial<ICreateForm>): ICreateForm => ({
  name: '',
  image: '',
  memory: '',
  cpus: '',
  network: false,
  volume: '',
  ...over
});

describe('createBody', () => {
  it('leaves blanks to the server', () => {
    assert.deepEqual(createBody(form({ image: ' ' })), { network: false });
    assert.deepEqual(
      createBody(form({ name: ' s1 ', image: 'jupyter-sandbox:latest', memory: '1G', cpus: '0.5', network: true })),
      {
        name: 's1',
        image: 'jupyter-sandbox:latest',
        memory: '1G',
        cpus: 0.5,
        network: true
      }
    );
    assert.deepEqual(createBody(form({ memory: '1048576', cpus: 'lots' })), {
      network: false,
      memory: 1048576,
      cpus: 'lots'
    });
  });
});

describe('the volume field (issue 23)', () => {
  it('sends a volume by name, none when blank, and checks the name', () => {
    assert.deepEqual(createBody(form({ volume: ' data ' })), { network: false, volume: 'data' });
    assert.deepEqual(createBody(form({ volume: '  ' })), { network: false });
    assert.deepEqual(checkForm(form({ volume: 'data.v2' }), null), {});
    assert.match(checkForm(form({ volume: '../x' }), null).volume, /volume's name/);
  });
});

describe('checkForm', () => {
  it('accepts what the server allows', () => {
    assert.deepEqual(checkForm(form({ name: 'a-1', memory: '4G', cpus: '2', image: 'other:1' }), config), {});
    assert.deepEqual(checkForm(form({}), config), {});
  });

  it('names each field over the maximum or malformed, with the limit', () => {
    const errors = checkForm(form({ name: '-x', memory: '5G', cpus: '3', network: true, image: 'evil' }), config);
    assert.deepEqual(Object.keys(errors).sort(), ['cpus', 'image', 'memory', 'name', 'network']);
    assert.match(errors.memory, /at most 4 GiB/);
    assert.match(errors.cpus, /at most 2/);
    assert.match(errors.image, /jupyter-sandbox:latest, other:1/);
    assert.match(checkForm(form({ memory: 'lots', cpus: '-1' }), config).memory, /512M/);
  });

  it('checks only the syntax before the config has arrived', () => {
    assert.deepEqual(checkForm(form({ memory: '99G', network: true }), null), {});
    assert.ok(checkForm(form({ memory: 'x' }), null).memory);
  });
});
