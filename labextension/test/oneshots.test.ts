// Unit tests of one-shot execution lists.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { oneShotDuration, oneShotList } from '../src/oneshots';
import type { IOneShot } from '../src/wire';

describe('one-shot executions', () => {
  it('reads the list in either shape', () => {
    const e = { execution_id: 'exe_1', status: 'running' };
    assert.deepEqual(oneShotList([e]), [e]);
    assert.deepEqual(oneShotList({ executions: [e] }), [e]);
    assert.deepEqual(oneShotList({}), []);
    assert.deepEqual(oneShotList(null), []);
  });

  it("gives a one-shot's duration, running ones counted from their start", () => {
    const oneShot = (fields: Partial<IOneShot>): IOneShot => ({
      execution_id: 'x',
      status: 'pending',
      stdout: null,
      stderr: null,
      exit_code: null,
      error: null,
      started_at: null,
      finished_at: null,
      duration_ms: null,
      result: null,
      code: '',
      ...fields
    });
    const started = '2026-01-01T00:00:00Z';
    const now = Date.parse(started) + 2500;
    assert.equal(
      oneShotDuration(oneShot({ execution_id: 'a', status: 'completed', duration_ms: 120, started_at: started }), now),
      120
    );
    assert.equal(oneShotDuration(oneShot({ execution_id: 'b', status: 'running', started_at: started }), now), 2500);
    assert.equal(oneShotDuration(oneShot({ execution_id: 'c' }), now), null);
  });
});
