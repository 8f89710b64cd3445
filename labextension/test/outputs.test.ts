// Unit tests of wire events -> cell outputs, run by node's own test runner (`npm test`).
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { LineSplitter, OutputBuilder, resultBundle } from '../src/outputs';

describe('resultBundle', () => {
  it('maps every result field back to its MIME type, extra included', () => {
    const bundle = resultBundle({
      type: 'result',
      text: "'x'",
      html: '<b>x</b>',
      markdown: '*x*',
      svg: '<svg/>',
      png: 'iVBOR',
      jpeg: '/9j/',
      pdf: 'JVBER',
      latex: '$x$',
      json: { a: 1 },
      javascript: 'alert(1)',
      extra: { 'application/vnd.custom+json': { b: 2 } },
      is_main_result: true
    });
    assert.deepEqual(bundle, {
      'text/plain': "'x'",
      'text/html': '<b>x</b>',
      'text/markdown': '*x*',
      'image/svg+xml': '<svg/>',
      'image/png': 'iVBOR',
      'image/jpeg': '/9j/',
      'application/pdf': 'JVBER',
      'text/latex': '$x$',
      'application/json': { a: 1 },
      'application/javascript': 'alert(1)',
      'application/vnd.custom+json': { b: 2 }
    });
  });

  it("leaves out E2B's data and chart: objects nbformat refuses under their MIME types", () => {
    assert.deepEqual(
      resultBundle({ type: 'result', text: 'df', data: { a: [1] }, chart: { type: 'pie' }, is_main_result: true }),
      { 'text/plain': 'df' }
    );
  });

  it('leaves out absent and null fields and the event bookkeeping', () => {
    assert.deepEqual(resultBundle({ type: 'result', text: '1', html: null, is_main_result: false }), {
      'text/plain': '1'
    });
  });
});

describe('OutputBuilder', () => {
  it('turns a run into nbformat outputs: streams merged, results, execution count', () => {
    const b = new OutputBuilder();
    const ops = [
      { type: 'number_of_executions', execution_count: 3 },
      { type: 'stdout', text: 'a\n', timestamp: 1 },
      { type: 'stdout', text: 'b\n', timestamp: 2 },
      { type: 'stderr', text: 'warn\n', timestamp: 3 },
      { type: 'result', png: 'iVBOR', text: '<Figure>', is_main_result: false },
      { type: 'keepalive' },
      { type: 'result', text: '42', is_main_result: true },
      { type: 'end_of_execution' }
    ].flatMap(e => b.apply(e));
    assert.deepEqual(b.outputs, [
      { output_type: 'stream', name: 'stdout', text: 'a\nb\n' },
      { output_type: 'stream', name: 'stderr', text: 'warn\n' },
      { output_type: 'display_data', data: { 'image/png': 'iVBOR', 'text/plain': '<Figure>' }, metadata: {} },
      { output_type: 'execute_result', data: { 'text/plain': '42' }, metadata: {}, execution_count: null }
    ]);
    assert.equal(b.executionCount, 3);
    assert.equal(b.done, true);
    assert.equal(b.error, null);
    // the second stdout chunk rewrites output 0 instead of adding one
    assert.deepEqual(
      ops.map(o => o.op + ('index' in o ? o.index : '')),
      ['add', 'set0', 'add', 'add', 'add']
    );
  });

  it('replays its ops into a list equal to its outputs', () => {
    const b = new OutputBuilder();
    const shown: unknown[] = [];
    const events = [
      { type: 'stdout', text: 'x' },
      { type: 'result', text: '1', is_main_result: true },
      { type: 'stdout', text: 'y' },
      { type: 'stdout', text: 'z' },
      { type: 'number_of_executions', execution_count: 7 },
      { type: 'update_display', index: 0, text: '2', is_main_result: false }
    ];
    for (const e of events) {
      for (const op of b.apply(e)) {
        if (op.op === 'add') {
          shown.push(op.output);
        } else if (op.op === 'set') {
          shown[op.index] = op.output;
        } else {
          shown.length = 0;
        }
      }
    }
    assert.deepEqual(shown, b.outputs);
    assert.deepEqual(b.outputs[1], { output_type: 'display_data', data: { 'text/plain': '2' }, metadata: {} });
    assert.deepEqual(b.outputs[2], { output_type: 'stream', name: 'stdout', text: 'yz' });
  });

  it('makes an error output with the traceback as lines', () => {
    const b = new OutputBuilder();
    const [op] = b.apply({
      type: 'error',
      name: 'ZeroDivisionError',
      value: 'division by zero',
      traceback: 'Traceback (most recent call last):\n  line 1\nZeroDivisionError: division by zero'
    });
    assert.deepEqual(op, {
      op: 'add',
      output: {
        output_type: 'error',
        ename: 'ZeroDivisionError',
        evalue: 'division by zero',
        traceback: ['Traceback (most recent call last):', '  line 1', 'ZeroDivisionError: division by zero']
      }
    });
    assert.deepEqual(b.error, { name: 'ZeroDivisionError', value: 'division by zero' });
  });

  it('clears on clear_output and ignores update_display for an unknown index', () => {
    const b = new OutputBuilder();
    b.apply({ type: 'stdout', text: 'old' });
    b.apply({ type: 'result', text: 'r', is_main_result: false });
    assert.deepEqual(b.apply({ type: 'clear_output' }), [{ op: 'clear' }]);
    assert.deepEqual(b.outputs, []);
    assert.deepEqual(b.apply({ type: 'update_display', index: 0, text: 'gone' }), []);
    b.apply({ type: 'stdout', text: 'new' });
    assert.deepEqual(b.outputs, [{ output_type: 'stream', name: 'stdout', text: 'new' }]);
  });
});

describe('LineSplitter', () => {
  it('frames NDJSON split anywhere across chunks', () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push('{"a":1}\n{"b"'), ['{"a":1}']);
    assert.deepEqual(s.push(':2}\n\n{"c":3'), ['{"b":2}']);
    assert.deepEqual(s.flush(), ['{"c":3']);
    assert.deepEqual(s.flush(), []);
  });
});
