// Unit tests of the sandbox mark in cell metadata.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { IMetadataHolder, isMarked, mark, METADATA_KEY, sandboxCount, setSandboxCount, unmark } from '../src/cellmark';

class Cell implements IMetadataHolder {
  metadata: { [key: string]: unknown } = {};
  getMetadata(key: string) {
    return this.metadata[key];
  }
  setMetadata(key: string, value: unknown) {
    this.metadata[key] = value;
  }
  deleteMetadata(key: string) {
    const value = this.metadata[key];
    delete this.metadata[key];
    return value;
  }
}

describe('the sandbox mark', () => {
  it('is saved in the metadata, with the sandbox count apart from the kernel count', () => {
    const cell = new Cell();
    assert.equal(isMarked(cell), false);
    mark(cell);
    assert.deepEqual(cell.metadata, { [METADATA_KEY]: { run_in_sandbox: true } });
    setSandboxCount(cell, 3);
    assert.equal(sandboxCount(cell), 3);
    mark(cell); // marking again keeps the count
    assert.deepEqual(cell.metadata[METADATA_KEY], { run_in_sandbox: true, execution_count: 3 });
    unmark(cell);
    assert.deepEqual(cell.metadata, {});
    assert.equal(sandboxCount(cell), null);
  });

  it('ignores what is not a mark', () => {
    const cell = new Cell();
    cell.metadata[METADATA_KEY] = 'yes';
    assert.equal(isMarked(cell), false);
    cell.metadata[METADATA_KEY] = { run_in_sandbox: 'true' };
    assert.equal(isMarked(cell), false);
  });
});
