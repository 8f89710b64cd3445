// Unit tests of what each kind of sandbox offers and how the panel names it.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  isNotebookKernel,
  kernelDeathText,
  kernelSessionPath,
  runningTitle,
  sandboxActions,
  sandboxLabel
} from '../src/kinds';
import type { ISandbox } from '../src/wire';

const sandbox = (
  kind: 'sandbox' | 'kernel',
  kernelId: string | null = null,
  name = kind === 'kernel' ? `kernel-${kernelId}` : 'demo',
  notebookPath: string | null = null
): ISandbox => ({ id: 'sb_1', name, kind, kernel_id: kernelId, notebook_path: notebookPath }) as ISandbox;

describe('kinds of sandbox', () => {
  it('offers a notebook kernel everything but restart (the server answers 409 to it)', () => {
    assert.deepEqual(sandboxActions(sandbox('sandbox')), ['interrupt', 'restart', 'upload', 'logs', 'terminal']);
    assert.deepEqual(sandboxActions(sandbox('kernel', 'k1')), ['interrupt', 'upload', 'logs', 'terminal']);
    assert.equal(isNotebookKernel(sandbox('kernel', 'k1')), true);
    assert.equal(isNotebookKernel(sandbox('sandbox', 'k1')), false); // a notebook's sandbox for its cells
  });

  it("finds a kernel's notebook through the session that has the kernel", () => {
    const sessions = [
      { path: 'other.ipynb', kernel: { id: 'k0' } },
      { path: 'work/analysis.ipynb', kernel: { id: 'k1' } },
      { path: 'no-kernel.ipynb', kernel: null }
    ];
    assert.equal(kernelSessionPath(sandbox('kernel', 'k1'), sessions), 'work/analysis.ipynb');
    assert.equal(kernelSessionPath(sandbox('kernel', 'k9'), sessions), null);
    // a notebook's sandbox for its cells, made for its kernel
    assert.equal(kernelSessionPath(sandbox('sandbox', 'k1'), sessions), 'work/analysis.ipynb');
    assert.equal(kernelSessionPath(sandbox('sandbox'), sessions), null);
  });

  it("finds the notebook of a %%sandbox sandbox by its name, else takes the server's path", () => {
    const kernelId = '0123456789abcdef-0000';
    const sessions = [{ path: 'renamed.ipynb', kernel: { id: kernelId } }];
    assert.equal(kernelSessionPath(sandbox('sandbox', null, 'notebook-0123456789ab'), sessions), 'renamed.ipynb');
    // a session this page has not seen yet: the server's answer
    assert.equal(
      kernelSessionPath(sandbox('sandbox', null, 'notebook-fedcba987654', 'a/b.ipynb'), sessions),
      'a/b.ipynb'
    );
    assert.equal(kernelSessionPath(sandbox('sandbox', null, 'notebook-fedcba987654'), sessions), null);
  });

  it("calls a notebook's sandbox by its notebook's file name, else by its own name", () => {
    assert.equal(sandboxLabel(sandbox('kernel', 'k1'), 'work/analysis.ipynb'), 'analysis.ipynb');
    assert.equal(sandboxLabel(sandbox('kernel', 'k1'), null), 'kernel-k1');
    assert.equal(sandboxLabel(sandbox('sandbox', null, 'notebook-0123456789ab'), 'work/a.ipynb'), 'a.ipynb');
    assert.equal(sandboxLabel(sandbox('sandbox'), null), 'demo');
  });

  it('tells in the Running panel what a sandbox is, its id and status', () => {
    const s = {
      ...sandbox('sandbox', null, 'notebook-0123456789ab'),
      status: 'exited',
      status_reason: 'out of memory'
    };
    assert.equal(
      runningTitle(s as ISandbox, 'work/a.ipynb'),
      'Sandbox notebook-0123456789ab of work/a.ipynb\nId: sb_1\nStatus: exited (out of memory)'
    );
    const k = { ...sandbox('kernel', 'k1'), status: 'running', status_reason: null };
    assert.equal(runningTitle(k as ISandbox, null), 'Notebook kernel sandbox kernel-k1\nId: sb_1\nStatus: running');
  });
});

describe("a sandboxed kernel's death", () => {
  it("says the server's reason, one sentence, then that the kernel restarts without its variables", () => {
    const reason =
      'The kernel died: it was killed (SIGKILL), most likely out of memory (the sandbox has 1 GiB of memory plus 512 MiB of disk).';
    assert.equal(
      kernelDeathText('work/a.ipynb', reason),
      `${reason} The kernel of work/a.ipynb restarts automatically in its sandbox; its variables are lost.`
    );
    assert.equal(
      kernelDeathText('a.ipynb', "The kernel's sandbox was removed "),
      "The kernel's sandbox was removed. The kernel of a.ipynb restarts automatically in its sandbox; its variables are lost."
    );
  });
});
