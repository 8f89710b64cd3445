// Unit tests of the model code, run by node's own test runner (`npm test`).
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  createBody,
  downloadName,
  errorMessage,
  formatBytes,
  formatDuration,
  formatPercent,
  formatUptime,
  IFileEntry,
  isDirectory,
  LineSplitter,
  oneShotDuration,
  oneShotList,
  OutputBuilder,
  resultBundle,
  sandboxNameForPath
} from '../src/model';

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
      { output_type: 'execute_result', data: { 'text/plain': '42' }, metadata: {}, execution_count: 3 }
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
        if (op.op === 'add') shown.push(op.output);
        else if (op.op === 'set') shown[op.index] = op.output;
        else shown.length = 0;
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

describe('formatting', () => {
  it('formats sizes in binary units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1 KiB');
    assert.equal(formatBytes(512 * 1024 ** 2), '512 MiB');
    assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5 GiB');
    assert.equal(formatBytes(50.25 * 1024 ** 2), '50.3 MiB');
    assert.equal(formatBytes(null), '-');
    assert.equal(formatBytes(-1), '-');
  });

  it('formats uptime and durations', () => {
    assert.equal(formatUptime(0), '0s');
    assert.equal(formatUptime(59.9), '59s');
    assert.equal(formatUptime(185), '3m 05s');
    assert.equal(formatUptime(2 * 3600 + 3 * 60 + 9), '2h 03m');
    assert.equal(formatUptime(86400 + 4 * 3600), '1d 04h');
    assert.equal(formatUptime(-5), '-');
    assert.equal(formatDuration(120), '120 ms');
    assert.equal(formatDuration(1500), '1.5 s');
    assert.equal(formatDuration(123000), '2m 03s');
    assert.equal(formatDuration(undefined), '-');
    assert.equal(formatPercent(12.345), '12.3%');
    assert.equal(formatPercent(null), '-');
  });
});

describe('file entries', () => {
  const entry = (type: string): IFileEntry => ({ name: 'x', path: '/home/user/x', type, size: 0, modified: 0 });

  it('tells folders (the backends say "dir") from files and symlinks', () => {
    assert.equal(isDirectory(entry('dir')), true);
    assert.equal(isDirectory(entry('file')), false);
    assert.equal(isDirectory(entry('symlink')), false);
  });

  it('names a download after the last part of its path', () => {
    assert.equal(downloadName('/home/user/hello.txt'), 'hello.txt');
    assert.equal(downloadName('out/data.csv'), 'data.csv');
    assert.equal(downloadName('notes.md'), 'notes.md');
    assert.equal(downloadName('/home/user/.bashrc'), '.bashrc');
    assert.equal(downloadName('/home/user/dir/'), 'dir');
    assert.equal(downloadName('/home/user/a b (1).txt'), 'a b (1).txt');
    assert.equal(downloadName(''), 'download');
    assert.equal(downloadName('/'), 'download');
    assert.equal(downloadName('..'), 'download');
  });
});

describe('sandboxNameForPath', () => {
  const valid = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

  it('is stable, valid for the server, and tells folders apart', () => {
    const a = sandboxNameForPath('work/Untitled.ipynb');
    assert.equal(a, sandboxNameForPath('work/Untitled.ipynb'));
    assert.match(a, /^nb-Untitled-[0-9a-f]{8}$/);
    assert.notEqual(a, sandboxNameForPath('other/Untitled.ipynb'));
    for (const path of ['Ünïcode näme (copy 2).ipynb', '---.ipynb', 'x'.repeat(200) + '.ipynb', '']) {
      assert.match(sandboxNameForPath(path), valid, path);
    }
  });
});

describe('errorMessage', () => {
  it("prefers the server's message, then its reason, then the body", () => {
    assert.equal(errorMessage(400, '{"message": "memory must be at least 32M", "reason": "Bad Request", "field": "memory"}'), 'memory must be at least 32M');
    assert.equal(errorMessage(404, '{"reason": "Not Found"}'), 'Not Found');
    assert.equal(errorMessage(502, 'Bad gateway'), 'Bad gateway (HTTP 502)');
    assert.equal(errorMessage(500, ''), 'HTTP 500');
  });
});

describe('request bodies and lists', () => {
  it('builds the create body, leaving blanks to the server', () => {
    assert.deepEqual(createBody({ name: '', image: ' ', memory: '', cpus: '', network: false }), { network: false });
    assert.deepEqual(createBody({ name: ' s1 ', image: 'jupyter-sandbox:latest', memory: '1G', cpus: '0.5', network: true }), {
      name: 's1',
      image: 'jupyter-sandbox:latest',
      memory: '1G',
      cpus: 0.5,
      network: true
    });
    assert.deepEqual(createBody({ name: '', image: '', memory: '1048576', cpus: 'lots', network: false }), {
      network: false,
      memory: 1048576,
      cpus: 'lots'
    });
  });

  it('reads the one-shot list in either shape', () => {
    const e = { execution_id: 'exe_1', status: 'running' };
    assert.deepEqual(oneShotList([e]), [e]);
    assert.deepEqual(oneShotList({ executions: [e] }), [e]);
    assert.deepEqual(oneShotList({}), []);
  });

  it("gives a one-shot's duration, running ones counted from their start", () => {
    const started = '2026-01-01T00:00:00Z';
    const now = Date.parse(started) + 2500;
    assert.equal(oneShotDuration({ execution_id: 'a', status: 'completed', duration_ms: 120, started_at: started }, now), 120);
    assert.equal(oneShotDuration({ execution_id: 'b', status: 'running', duration_ms: null, started_at: started }, now), 2500);
    assert.equal(oneShotDuration({ execution_id: 'c', status: 'pending' }, now), null);
  });
});
