// Unit tests of names and paths.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  downloadName,
  errorField,
  errorMessage,
  isDirectory,
  notebookSandboxName,
  oneShotDuration,
  oneShotList,
  relativePath,
  uploadLimit,
  uploadPath
} from '../src/names';
import type { IFileEntry, IOneShot, ISandbox, IServerConfig } from '../src/wire';

describe('notebookSandboxName', () => {
  it("is the magics' name: notebook- and the first 12 characters of the kernel id", () => {
    // jupyter_sandbox/magics.py: f"notebook-{kernel[:12]}" from kernel-<id>.json
    assert.equal(notebookSandboxName('0f8e7d6c-5b4a-4321-9876-543210fedcba'), 'notebook-0f8e7d6c-5b4');
    assert.match(notebookSandboxName('0f8e7d6c-5b4a-4321-9876-543210fedcba'), /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/);
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
    assert.equal(downloadName('/home/user/.bashrc'), '.bashrc');
    assert.equal(downloadName('/home/user/dir/'), 'dir');
    assert.equal(downloadName('/home/user/a b (1).txt'), 'a b (1).txt');
    assert.equal(downloadName(''), 'download');
    assert.equal(downloadName('/'), 'download');
    assert.equal(downloadName('..'), 'download');
  });

  it('shows every path relative to the working directory, the root as "."', () => {
    assert.equal(relativePath('/home/user'), '.');
    assert.equal(relativePath('/home/user/'), '.');
    assert.equal(relativePath('/home/user/out'), 'out');
    assert.equal(relativePath('/home/user/out/data.csv'), 'out/data.csv');
    assert.equal(relativePath('/home/username/x'), '/home/username/x');
  });

  it("holds an upload to the server's request limit and the sandbox's disk, whichever is smaller", () => {
    const sandbox = { spec: { disk: 100 } } as ISandbox;
    assert.equal(uploadLimit(sandbox, { max_upload_size: 1000 } as IServerConfig), 100);
    assert.equal(uploadLimit(sandbox, { max_upload_size: 10 } as IServerConfig), 10);
    assert.equal(uploadLimit(sandbox, null), 100);
  });

  it('puts an upload into the folder it was dropped on', () => {
    assert.equal(uploadPath('/home/user', 'a.bin'), 'a.bin');
    assert.equal(uploadPath('/home/user/out', 'a.bin'), 'out/a.bin');
    assert.equal(uploadPath('/home/user/out/deep/', 'a b.txt'), 'out/deep/a b.txt');
  });
});

describe('errors', () => {
  it("prefers the server's message, then its reason, then the body", () => {
    const body = '{"message": "memory must be at least 32M", "reason": "Bad Request", "field": "memory"}';
    assert.equal(errorMessage(400, body), 'memory must be at least 32M');
    assert.equal(errorMessage(404, '{"reason": "Not Found"}'), 'Not Found');
    assert.equal(errorMessage(502, 'Bad gateway'), 'Bad gateway (HTTP 502)');
    assert.equal(errorMessage(500, ''), 'HTTP 500');
  });

  it('reads the field an error names', () => {
    assert.equal(errorField('{"message": "m", "field": "memory"}'), 'memory');
    assert.equal(errorField('{"message": "m"}'), null);
    assert.equal(errorField('<html>'), null);
  });
});

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
