// Unit tests of what each kind of sandbox offers and how the panel names it.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { isNotebookKernel, kernelSessionPath, sandboxActions, sandboxLabel } from '../src/kinds';
import type { ISandbox } from '../src/wire';

const sandbox = (kind: 'sandbox' | 'kernel', kernelId: string | null = null): ISandbox =>
  ({ id: 'sb_1', name: kind === 'kernel' ? `kernel-${kernelId}` : 'demo', kind, kernel_id: kernelId }) as ISandbox;

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
    // only kernels' sandboxes are named after a notebook
    assert.equal(kernelSessionPath(sandbox('sandbox', 'k1'), sessions), null);
  });

  it("calls a kernel's sandbox by its notebook's file name, else by its own name", () => {
    assert.equal(sandboxLabel(sandbox('kernel', 'k1'), 'work/analysis.ipynb'), 'analysis.ipynb');
    assert.equal(sandboxLabel(sandbox('kernel', 'k1'), null), 'kernel-k1');
    assert.equal(sandboxLabel(sandbox('sandbox'), 'work/analysis.ipynb'), 'demo');
  });
});
