// Unit tests of the default sandbox's name.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { isSandboxedSpec, kernelSandboxName, notebookSandboxName } from '../src/notebooksandbox';

describe('notebookSandboxName', () => {
  it("is the magics' name: notebook- and the first 12 characters of the kernel id", () => {
    // jupyter_sandbox/magics.py: f"notebook-{kernel[:12]}" from kernel-<id>.json
    assert.equal(notebookSandboxName('0f8e7d6c-5b4a-4321-9876-543210fedcba'), 'notebook-0f8e7d6c-5b4');
    assert.match(notebookSandboxName('0f8e7d6c-5b4a-4321-9876-543210fedcba'), /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/);
  });
});

describe('a sandboxed kernel', () => {
  it('is told by the provisioner its kernelspec names (jupyter_sandbox/kernel/kernelspec/kernel.json)', () => {
    const spec = { kernel_provisioner: { provisioner_name: 'jupyter-sandbox-provisioner', config: {} } };
    assert.equal(isSandboxedSpec(spec), true);
    assert.equal(isSandboxedSpec({ kernel_provisioner: { provisioner_name: 'local-provisioner' } }), false);
    assert.equal(isSandboxedSpec({ debugger: true }), false);
    assert.equal(isSandboxedSpec(undefined), false);
  });

  it("runs in the sandbox the provisioner names kernel-<kernel id>: the notebook's sandbox", () => {
    // jupyter_sandbox/kernel/provisioner.py: host.create(f"kernel-{self.kernel_id}", ...)
    assert.equal(kernelSandboxName('0f8e7d6c-5b4a'), 'kernel-0f8e7d6c-5b4a');
  });
});
