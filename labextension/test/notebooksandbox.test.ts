// Unit tests of the default sandbox's name.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { notebookSandboxName } from '../src/notebooksandbox';

describe('notebookSandboxName', () => {
  it("is the magics' name: notebook- and the first 12 characters of the kernel id", () => {
    // jupyter_sandbox/magics.py: f"notebook-{kernel[:12]}" from kernel-<id>.json
    assert.equal(notebookSandboxName('0f8e7d6c-5b4a-4321-9876-543210fedcba'), 'notebook-0f8e7d6c-5b4');
    assert.match(notebookSandboxName('0f8e7d6c-5b4a-4321-9876-543210fedcba'), /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/);
  });
});
