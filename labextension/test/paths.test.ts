// Unit tests of paths in a sandbox.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { downloadName, isDirectory, relativePath, uploadLimit, uploadPath, workspaceTarget } from '../src/paths';
import type { IFileEntry, ISandbox, IServerConfig } from '../src/wire';

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

  it("copies a sandbox's file beside its notebook, else into the file browser's folder", () => {
    assert.equal(workspaceTarget('out/result.csv', 'work/nb.ipynb', 'elsewhere'), 'work/result.csv');
    assert.equal(workspaceTarget('result.csv', 'nb.ipynb', 'elsewhere'), 'result.csv');
    assert.equal(workspaceTarget('/home/user/a.txt', null, 'data/'), 'data/a.txt');
    assert.equal(workspaceTarget('a.txt', null, ''), 'a.txt');
    assert.equal(workspaceTarget('a.txt', null, null), 'a.txt');
  });
});
