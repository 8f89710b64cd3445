// Unit tests of the order of kernel and sandbox cells in one notebook.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { Dropped, ExecutionQueue, Where } from '../src/queue';

/** A run that logs its start and finishes when told to. */
function controlled(log: string[], name: string, ok = true) {
  let finish!: () => void;
  const done = new Promise<void>(resolve => (finish = resolve));
  const run = async () => {
    log.push(`start ${name}`);
    await done;
    log.push(`end ${name}`);
    return ok;
  };
  return { run, finish };
}

const tick = () => new Promise(resolve => setTimeout(resolve, 0));

describe('ExecutionQueue', () => {
  it('hands consecutive kernel cells over together (the kernel orders them)', async () => {
    const q = new ExecutionQueue();
    const log: string[] = [];
    const a = controlled(log, 'a');
    const b = controlled(log, 'b');
    const pa = q.enqueue('kernel', a.run);
    const pb = q.enqueue('kernel', b.run);
    await tick();
    assert.deepEqual(log, ['start a', 'start b']);
    a.finish();
    b.finish();
    assert.deepEqual(await Promise.all([pa, pb]), [true, true]);
    assert.equal(q.pending, 0);
  });

  it('runs a sandbox cell after the cells before it, and kernel cells after it', async () => {
    const q = new ExecutionQueue();
    const log: string[] = [];
    const runs: [Where, ReturnType<typeof controlled>][] = [
      ['kernel', controlled(log, 'k1')],
      ['sandbox', controlled(log, 's1')],
      ['kernel', controlled(log, 'k2')],
      ['kernel', controlled(log, 'k3')]
    ];
    const results = runs.map(([where, r]) => q.enqueue(where, r.run));
    await tick();
    assert.deepEqual(log, ['start k1']);
    runs[0][1].finish();
    await tick();
    assert.deepEqual(log.slice(-2), ['end k1', 'start s1']);
    runs[1][1].finish();
    await tick();
    assert.deepEqual(log.slice(-3), ['end s1', 'start k2', 'start k3']);
    runs[2][1].finish();
    runs[3][1].finish();
    assert.deepEqual(await Promise.all(results), [true, true, true, true]);
  });

  it('drops the cells waiting behind a failure, then starts afresh', async () => {
    const q = new ExecutionQueue();
    const log: string[] = [];
    const s1 = controlled(log, 's1', false);
    const p1 = q.enqueue('sandbox', s1.run);
    const p2 = q.enqueue('kernel', controlled(log, 'k1').run);
    const p3 = q.enqueue('sandbox', controlled(log, 's2').run);
    s1.finish();
    assert.equal(await p1, false);
    await assert.rejects(p2, Dropped);
    await assert.rejects(p3, Dropped);
    assert.deepEqual(log, ['start s1', 'end s1']);
    await tick();
    assert.equal(q.pending, 0);
    const later = controlled(log, 'later');
    const p4 = q.enqueue('sandbox', later.run);
    later.finish();
    assert.equal(await p4, true);
  });

  it('counts a thrown error as a failure and passes it on', async () => {
    const q = new ExecutionQueue();
    const boom = new Error('KernelReplyNotOK');
    const p1 = q.enqueue('kernel', () => Promise.reject(boom));
    const p2 = q.enqueue('sandbox', async () => true);
    await assert.rejects(p1, boom);
    await assert.rejects(p2, Dropped);
  });
});
