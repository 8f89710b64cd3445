/**
 * Wire events -> nbformat outputs: how a cell shows what a sandbox execution produced, as it
 * arrives. Pure code (types only from JupyterLab), so the unit tests run it under node.
 */
import type * as nbformat from '@jupyterlab/nbformat';

import type { IWireEvent } from './wire';

/** Result field -> MIME type; the inverse of MIME_FIELDS in jupyter_sandbox/models.py. */
export const FIELD_MIMES: { [field: string]: string } = {
  text: 'text/plain',
  html: 'text/html',
  markdown: 'text/markdown',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpeg: 'image/jpeg',
  pdf: 'application/pdf',
  latex: 'text/latex',
  json: 'application/json',
  javascript: 'application/javascript',
  data: 'e2b/data',
  chart: 'e2b/chart'
};

/**
 * Result fields for the API only (API_ONLY_FIELDS in jupyter_sandbox/models.py): E2B's objects,
 * under MIME types nbformat allows only text for, never go into a cell's outputs.
 */
export const API_ONLY_FIELDS = new Set(['data', 'chart']);

/** The MIME bundle carried by a `result` or `update_display` event, as a cell shows it. */
export function resultBundle(event: IWireEvent): nbformat.IMimeBundle {
  const data: nbformat.IMimeBundle = {};
  for (const [field, mime] of Object.entries(FIELD_MIMES)) {
    if (API_ONLY_FIELDS.has(field)) {
      continue;
    }
    if (event[field] !== undefined && event[field] !== null) {
      data[mime] = event[field];
    }
  }
  if (event.extra && typeof event.extra === 'object') {
    Object.assign(data, event.extra);
  }
  return data;
}

export type OutputOp =
  { op: 'add'; output: nbformat.IOutput } | { op: 'set'; index: number; output: nbformat.IOutput } | { op: 'clear' };

/**
 * Folds wire events into nbformat outputs, and says for each event how the cell's output
 * list changes (so a cell shows outputs as they arrive without re-rendering them all).
 *
 * `execute_result` outputs carry no execution count: the sandbox numbers its executions
 * apart from the notebook's kernel, and mixing the two would mislead (the count is shown
 * on the cell's sandbox badge instead).
 */
export class OutputBuilder {
  readonly outputs: nbformat.IOutput[] = [];
  executionCount: number | null = null;
  error: { name: string; value: string } | null = null;
  done = false;
  /** Output index of each result, in the order the server numbers them (update_display's index). */
  private resultIndex: number[] = [];

  apply(event: IWireEvent): OutputOp[] {
    switch (event.type) {
      case 'stdout':
      case 'stderr':
        return this.stream(event.type, String(event.text ?? ''));
      case 'result': {
        this.resultIndex.push(this.outputs.length);
        return [this.add(this.resultOutput(event))];
      }
      case 'update_display': {
        const index = this.resultIndex[event.index];
        if (index === undefined) {
          return [];
        }
        return [this.set(index, this.resultOutput(event))];
      }
      case 'clear_output':
        this.outputs.length = 0;
        this.resultIndex = [];
        return [{ op: 'clear' }];
      case 'error': {
        this.error = { name: event.name, value: event.value };
        const tb = event.traceback;
        const traceback = Array.isArray(tb) ? tb : tb ? String(tb).split('\n') : [];
        return [
          this.add({
            output_type: 'error',
            ename: String(event.name ?? 'Error'),
            evalue: String(event.value ?? ''),
            traceback
          })
        ];
      }
      case 'number_of_executions':
        this.executionCount = event.execution_count ?? null;
        return [];
      case 'end_of_execution':
        this.done = true;
        return [];
      default:
        // keepalive lines and event types this version does not know
        return [];
    }
  }

  private stream(name: string, text: string): OutputOp[] {
    const last = this.outputs[this.outputs.length - 1];
    if (last && last.output_type === 'stream' && last.name === name) {
      return [this.set(this.outputs.length - 1, { ...last, text: String(last.text) + text })];
    }
    return [this.add({ output_type: 'stream', name, text } as nbformat.IStream)];
  }

  private resultOutput(event: IWireEvent): nbformat.IOutput {
    const data = resultBundle(event);
    if (event.is_main_result) {
      return { output_type: 'execute_result', data, metadata: {}, execution_count: null };
    }
    return { output_type: 'display_data', data, metadata: {} };
  }

  private add(output: nbformat.IOutput): OutputOp {
    this.outputs.push(output);
    return { op: 'add', output };
  }

  private set(index: number, output: nbformat.IOutput): OutputOp {
    this.outputs[index] = output;
    return { op: 'set', index, output };
  }
}

/** Splits a byte stream's decoded text into complete lines (NDJSON framing). */
export class LineSplitter {
  private buffer = '';

  push(chunk: string): string[] {
    this.buffer += chunk;
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop() ?? '';
    return lines.filter(line => line.trim() !== '');
  }

  flush(): string[] {
    const rest = this.buffer;
    this.buffer = '';
    return rest.trim() ? [rest] : [];
  }
}
