// Unit tests of the API keys section: listing, minting (the secret shown once), revoking after
// confirmation, errors reported; and the export lines as `jupyter sandbox e2b-env` prints them.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { ApiKeys, e2bEnvLines, IKeysClient, IKeysUI, keyLabel, shellQuote } from '../src/keys';
import type { IApiKey, IMintedKey } from '../src/wire';

function key(over: Partial<IApiKey> = {}): IApiKey {
  return { id: 'k1', prefix: 'jsbx_ab12', created: 1_700_000_000, name: 'laptop', ...over };
}

function httpError(status: number, message: string): Error {
  return Object.assign(new Error(message), { status });
}

/** A fake key store behind the routes: every call made, and the failures to give. */
class FakeServer implements IKeysClient {
  keys: IApiKey[] = [];
  calls: string[] = [];
  fail: { [call: string]: Error } = {};
  private made = 0;
  async list(): Promise<IApiKey[]> {
    this.calls.push('GET');
    if (this.fail.GET) {
      throw this.fail.GET;
    }
    return [...this.keys];
  }
  async mint(name: string): Promise<IMintedKey> {
    this.calls.push(`POST ${name}`);
    if (this.fail.POST) {
      throw this.fail.POST;
    }
    const made = key({ id: `k${++this.made}`, prefix: `jsbx_${this.made}`, name });
    this.keys.push(made);
    return { ...made, key: `${made.prefix}secret` };
  }
  async revoke(id: string): Promise<void> {
    this.calls.push(`DELETE ${id}`);
    if (this.fail.DELETE) {
      throw this.fail.DELETE;
    }
    this.keys = this.keys.filter(k => k.id !== id);
  }
}

class FakeUI implements IKeysUI {
  name: string | null = 'ci';
  confirm = true;
  shown: IMintedKey[] = [];
  asked: string[] = [];
  errors: string[] = [];
  async askName(): Promise<string | null> {
    return this.name;
  }
  async showSecret(minted: IMintedKey): Promise<void> {
    this.shown.push(minted);
  }
  async confirmRevoke(k: IApiKey): Promise<boolean> {
    this.asked.push(k.id);
    return this.confirm;
  }
  error(title: string, error: unknown): void {
    this.errors.push(`${title}: ${(error as Error).message}`);
  }
}

describe('ApiKeys', () => {
  it('lists the keys GET answers and says when it has loaded', async () => {
    const server = new FakeServer();
    server.keys = [key(), key({ id: 'k2', prefix: 'jsbx_cd34', name: '' })];
    let changes = 0;
    const keys = new ApiKeys(server, new FakeUI(), () => changes++);
    assert.equal(keys.loaded, false);
    await keys.refresh();
    assert.equal(keys.loaded, true);
    assert.deepEqual(
      keys.keys.map(k => k.id),
      ['k1', 'k2']
    );
    assert.equal(changes, 1);
  });

  it('mints with the trimmed name, lists again, then shows the secret once', async () => {
    const server = new FakeServer();
    const ui = new FakeUI();
    ui.name = '  ci runner ';
    const keys = new ApiKeys(server, ui);
    const minted = await keys.mint();
    assert.equal(minted?.key, 'jsbx_1secret');
    assert.deepEqual(server.calls, ['POST ci runner', 'GET']);
    assert.deepEqual(
      ui.shown.map(k => k.key),
      ['jsbx_1secret']
    );
    assert.deepEqual(
      keys.keys.map(k => [k.id, k.name]),
      [['k1', 'ci runner']]
    );
    // the listing never carries the secret
    assert.equal('key' in keys.keys[0], false);
  });

  it('mints nothing when the user cancels the name dialog', async () => {
    const server = new FakeServer();
    const ui = new FakeUI();
    ui.name = null;
    assert.equal(await new ApiKeys(server, ui).mint(), null);
    assert.deepEqual(server.calls, []);
    assert.deepEqual(ui.shown, []);
  });

  it("reports a failed mint with the server's message and shows no secret", async () => {
    const server = new FakeServer();
    server.fail.POST = httpError(400, 'name: too long');
    const ui = new FakeUI();
    assert.equal(await new ApiKeys(server, ui).mint(), null);
    assert.deepEqual(ui.errors, ['Could not make an API key: name: too long']);
    assert.deepEqual(ui.shown, []);
  });

  it('revokes with DELETE after the user confirms, then lists again', async () => {
    const server = new FakeServer();
    server.keys = [key(), key({ id: 'k2' })];
    const ui = new FakeUI();
    const keys = new ApiKeys(server, ui);
    await keys.refresh();
    assert.equal(await keys.revoke(keys.keys[0]), true);
    assert.deepEqual(ui.asked, ['k1']);
    assert.deepEqual(server.calls, ['GET', 'DELETE k1', 'GET']);
    assert.deepEqual(
      keys.keys.map(k => k.id),
      ['k2']
    );
  });

  it('sends no DELETE when the user cancels', async () => {
    const server = new FakeServer();
    server.keys = [key()];
    const ui = new FakeUI();
    ui.confirm = false;
    const keys = new ApiKeys(server, ui);
    await keys.refresh();
    assert.equal(await keys.revoke(keys.keys[0]), false);
    assert.deepEqual(server.calls, ['GET']);
    assert.equal(keys.keys.length, 1);
  });

  it('reports failed revokes and lists, keeping what it showed', async () => {
    const server = new FakeServer();
    server.keys = [key()];
    const ui = new FakeUI();
    const keys = new ApiKeys(server, ui);
    await keys.refresh();
    server.fail.DELETE = httpError(404, "no API key 'k1'");
    server.fail.GET = httpError(0, 'Jupyter server unreachable');
    assert.equal(await keys.revoke(keys.keys[0]), false);
    assert.deepEqual(ui.errors, [
      "Could not revoke the API key jsbx_ab12…: no API key 'k1'",
      'Could not list your API keys: Jupyter server unreachable'
    ]);
    assert.deepEqual(
      keys.keys.map(k => k.id),
      ['k1']
    );
  });
});

describe('e2bEnvLines', () => {
  it('prints the three exports of `jupyter sandbox e2b-env` for the server and the key', () => {
    assert.equal(
      e2bEnvLines('http://127.0.0.1:8888/', 'jsbx_AbC-12_x'),
      [
        'export E2B_API_URL=http://127.0.0.1:8888/sandbox/e2b/api',
        'export E2B_SANDBOX_URL=http://127.0.0.1:8888/sandbox/e2b/plane',
        'export E2B_API_KEY=jsbx_AbC-12_x'
      ].join('\n')
    );
  });

  it('keeps a base URL path and quotes what the shell would split', () => {
    assert.equal(
      e2bEnvLines('https://hub.example/user/my lab', 'k'),
      [
        "export E2B_API_URL='https://hub.example/user/my lab/sandbox/e2b/api'",
        "export E2B_SANDBOX_URL='https://hub.example/user/my lab/sandbox/e2b/plane'",
        'export E2B_API_KEY=k'
      ].join('\n')
    );
  });
});

describe('shellQuote', () => {
  it("quotes as Python's shlex.quote does", () => {
    // the right-hand sides are what shlex.quote returns for each
    assert.equal(shellQuote(''), "''");
    assert.equal(shellQuote('sk_AbC-12_x'), 'sk_AbC-12_x');
    assert.equal(shellQuote("it's"), `'it'"'"'s'`);
    assert.equal(shellQuote('é'), "'é'");
    assert.equal(shellQuote('a$b'), "'a$b'");
  });
});

describe('keyLabel', () => {
  it('shows the prefix, and the name when there is one', () => {
    assert.equal(keyLabel(key()), 'jsbx_ab12… laptop');
    assert.equal(keyLabel(key({ name: '' })), 'jsbx_ab12…');
  });
});
