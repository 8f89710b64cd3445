// Unit tests of how server events change the panel's list.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { applySandboxEvent, droppedSandboxes } from '../src/events';
import type { ISandbox, ISandboxEvent } from '../src/wire';

const sandbox = (id: string, status = 'running') =>
  ({ id, name: `n-${id}`, status, contexts: [] }) as unknown as ISandbox;
const event = (action: ISandboxEvent['action'], id: string, status = 'running', executing = 0): ISandboxEvent => ({
  action,
  sandbox_id: id,
  name: `n-${id}`,
  status,
  executing
});

describe('applySandboxEvent', () => {
  it('asks for the list when an unknown sandbox appears, and adds nothing itself', () => {
    const out = applySandboxEvent([sandbox('a')], new Map(), event('created', 'b', 'starting'));
    assert.deepEqual(
      out.sandboxes.map(s => s.id),
      ['a']
    );
    assert.equal(out.refresh, true);
  });

  it('removes at once and forgets the busy count', () => {
    const out = applySandboxEvent([sandbox('a'), sandbox('b')], new Map([['a', 1]]), event('removed', 'a', 'removing'));
    assert.deepEqual(
      out.sandboxes.map(s => s.id),
      ['b']
    );
    assert.equal(out.executing.has('a'), false);
    assert.equal(out.refresh, false);
  });

  it('tracks executions and status of known sandboxes without a fetch', () => {
    const list = [sandbox('a')];
    const started = applySandboxEvent(list, new Map(), event('execution_started', 'a', 'running', 2));
    assert.equal(started.executing.get('a'), 2);
    assert.equal(started.refresh, false);
    const restarting = applySandboxEvent(started.sandboxes, started.executing, event('status', 'a', 'restarting'));
    assert.equal(restarting.sandboxes[0].status, 'restarting');
    assert.equal(restarting.refresh, true); // a restart may bring new contexts
    assert.equal(list[0].status, 'running'); // inputs untouched
  });
});

describe('droppedSandboxes', () => {
  it('says which sandboxes a newer list no longer holds, whatever else changed', () => {
    const before = [sandbox('a'), sandbox('b'), sandbox('c')];
    const after = [sandbox('c', 'exited'), sandbox('a'), sandbox('d')];
    assert.deepEqual(
      droppedSandboxes(before, after).map(s => s.id),
      ['b']
    );
    assert.deepEqual(droppedSandboxes(after, after), []);
    assert.deepEqual(droppedSandboxes([], after), []);
  });
});
