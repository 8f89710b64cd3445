/**
 * The mark that makes a code cell a sandbox cell, kept in the cell's metadata so that it
 * is saved with the notebook: `"jupyter_sandbox": {"run_in_sandbox": true,
 * "execution_count": 3}`. Pure code over the part of ICellModel it uses.
 */

export const METADATA_KEY = 'jupyter_sandbox';

/** What the mark needs of a cell model (ICellModel has these). */
export interface IMetadataHolder {
  getMetadata(key: string): unknown;
  setMetadata(key: string, value: unknown): void;
  deleteMetadata(key: string): unknown;
}

interface IMark {
  run_in_sandbox?: boolean;
  execution_count?: number | null;
}

function read(cell: IMetadataHolder): IMark {
  const value = cell.getMetadata(METADATA_KEY);
  return value && typeof value === 'object' ? (value as IMark) : {};
}

export function isMarked(cell: IMetadataHolder): boolean {
  return read(cell).run_in_sandbox === true;
}

export function mark(cell: IMetadataHolder): void {
  if (!isMarked(cell)) {
    cell.setMetadata(METADATA_KEY, { ...read(cell), run_in_sandbox: true });
  }
}

export function unmark(cell: IMetadataHolder): void {
  if (cell.getMetadata(METADATA_KEY) !== undefined) {
    cell.deleteMetadata(METADATA_KEY);
  }
}

/** The sandbox's execution count of the cell's last run there (kept apart from the kernel's). */
export function sandboxCount(cell: IMetadataHolder): number | null {
  const count = read(cell).execution_count;
  return typeof count === 'number' ? count : null;
}

export function setSandboxCount(cell: IMetadataHolder, count: number | null): void {
  cell.setMetadata(METADATA_KEY, { ...read(cell), run_in_sandbox: true, execution_count: count });
}
