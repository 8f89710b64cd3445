// Unit tests of the admin section: shown only on a 200, its rows, stopping after confirmation.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { AdminSandboxes, adminRowText, IAdminClient, IAdminUI } from '../src/admin';
import type { IAdminSandbox } from '../src/wire';

const GIB = 1024 ** 3;

function row(over: Partial<IAdminSandbox> = {}): IAdminSandbox {
  return {
    id: 'sb-1',
    name: 'analysis',
    owner: 'bob',
    status: 'running',
    kind: 'sandbox',
    created: 1_700_000_000,
    age: 185,
    last_activity: 1_700_000_100,
    memory_limit: GIB,
    cpus: 1,
    memory_used: 256 * 1024 ** 2,
    cpu_percent: 12.345,
    ...over
  };
}

/** An error as api.ts throws it: a message and the HTTP status. */
function httpError(status: number, message: string): Error {
  return Object.assign(new Error(message), { status });
}

/** A fake admin route: what GET answers, and every call made. */
class FakeServer implements IAdminClient {
  constructor(public answer: IAdminSandbox[] | Error) {}
  calls: string[] = [];
  async list(): Promise<IAdminSandbox[]> {
    this.calls.push('GET');
    if (this.answer instanceof Error) {
      throw this.answer;
    }
    return this.answer;
  }
  async stop(id: string): Promise<void> {
    this.calls.push(`DELETE ${id}`);
    if (this.stopError) {
      throw this.stopError;
    }
    if (Array.isArray(this.answer)) {
      this.answer = this.answer.filter(s => s.id !== id);
    }
  }
  stopError: Error | null = null;
}

class FakeUI implements IAdminUI {
  constructor(public answer: boolean) {}
  asked: string[] = [];
  errors: string[] = [];
  async confirmStop(sandbox: IAdminSandbox): Promise<boolean> {
    this.asked.push(sandbox.id);
    return this.answer;
  }
  error(message: string): void {
    this.errors.push(message);
  }
}

describe('AdminSandboxes', () => {
  it('is hidden, with no error, when the admin route answers 403', async () => {
    const ui = new FakeUI(true);
    let changes = 0;
    const admin = new AdminSandboxes(new FakeServer(httpError(403, 'admin scope needed')), ui, () => changes++);
    await admin.refresh();
    assert.equal(admin.allowed, false);
    assert.deepEqual(admin.rows, []);
    assert.deepEqual(ui.errors, []);
    assert.equal(changes, 1);
  });

  it('is shown with the rows of a 200, and hidden again after a later 403', async () => {
    const server = new FakeServer([row(), row({ id: 'sb-2', owner: 'carol', name: 'k', kind: 'kernel' })]);
    const admin = new AdminSandboxes(server, new FakeUI(true));
    await admin.refresh();
    assert.equal(admin.allowed, true);
    assert.deepEqual(
      admin.rows.map(s => [s.owner, s.id]),
      [
        ['bob', 'sb-1'],
        ['carol', 'sb-2']
      ]
    );
    server.answer = httpError(403, 'admin scope needed');
    await admin.refresh();
    assert.equal(admin.allowed, false);
    assert.deepEqual(admin.rows, []);
  });

  it('reports any other failure and keeps what it showed', async () => {
    const server = new FakeServer([row()]);
    const ui = new FakeUI(true);
    const admin = new AdminSandboxes(server, ui);
    await admin.refresh();
    server.answer = httpError(502, 'the sandbox service did not answer');
    await admin.refresh();
    assert.equal(admin.allowed, true);
    assert.equal(admin.rows.length, 1);
    assert.deepEqual(ui.errors, ["All users' sandboxes: the sandbox service did not answer"]);
  });

  it('stops a sandbox with DELETE after the admin confirms, then lists again', async () => {
    const server = new FakeServer([row(), row({ id: 'sb-2', owner: 'carol' })]);
    const ui = new FakeUI(true);
    const admin = new AdminSandboxes(server, ui);
    await admin.refresh();
    assert.equal(await admin.stop(admin.rows[1]), true);
    assert.deepEqual(ui.asked, ['sb-2']);
    assert.deepEqual(server.calls, ['GET', 'DELETE sb-2', 'GET']);
    assert.deepEqual(
      admin.rows.map(s => s.id),
      ['sb-1']
    );
  });

  it('sends no DELETE when the admin cancels', async () => {
    const server = new FakeServer([row()]);
    const ui = new FakeUI(false);
    const admin = new AdminSandboxes(server, ui);
    await admin.refresh();
    assert.equal(await admin.stop(admin.rows[0]), false);
    assert.deepEqual(ui.asked, ['sb-1']);
    assert.deepEqual(server.calls, ['GET']);
  });

  it("reports a failed stop with the server's message", async () => {
    const server = new FakeServer([row()]);
    server.stopError = httpError(404, "no sandbox 'sb-1'");
    const ui = new FakeUI(true);
    const admin = new AdminSandboxes(server, ui);
    await admin.refresh();
    assert.equal(await admin.stop(admin.rows[0]), false);
    assert.deepEqual(ui.errors, ["Stop analysis of bob: no sandbox 'sb-1'"]);
  });
});

describe('adminRowText', () => {
  it('shows age, memory used / limit and CPU % with the panel formatters', () => {
    assert.deepEqual(adminRowText(row()), {
      owner: 'bob',
      name: 'analysis',
      status: 'running',
      age: '3m 05s',
      memory: '256 MiB / 1 GiB',
      cpu: '12.3%'
    });
  });

  it('shows "-" for what a stopped sandbox does not report', () => {
    const text = adminRowText(row({ status: 'exited', memory_used: null, cpu_percent: null }));
    assert.equal(text.memory, '- / 1 GiB');
    assert.equal(text.cpu, '-');
  });
});
