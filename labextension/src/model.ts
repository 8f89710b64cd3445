/**
 * The extension's model code: the REST shapes, wire event -> nbformat output conversion,
 * and display formatting. No JupyterLab runtime imports here (types only), so the unit
 * tests run it under plain node.
 */
import type * as nbformat from '@jupyterlab/nbformat';

/** A sandbox as GET sandbox/api/sandboxes returns it (jupyter_sandbox.models.SandboxModel). */
export interface ISandbox {
  id: string;
  name: string;
  owner: string;
  status: string;
  backend: string;
  spec: {
    image: string | null;
    memory: number;
    cpus: number;
    pids: number;
    disk: number;
    network: boolean;
    [key: string]: unknown;
  };
  created: number;
  last_activity: number;
  contexts: { id: string; language: string; cwd: string }[];
  isolation?: string;
  e2b_url?: string | null;
}

export interface IStats {
  cpu_percent: number;
  memory_used: number;
  memory_limit: number;
  pids: number;
}

/** One entry of GET sandboxes/{id}/files for a directory (the backends' list_files). */
export interface IFileEntry {
  name: string;
  path: string;
  /** "dir", "file" or "symlink" */
  type: string;
  size: number;
  modified: number;
}

/** Whether an entry is a folder to browse into rather than a file to download. */
export function isDirectory(entry: IFileEntry): boolean {
  return entry.type === 'dir';
}

/** The name a downloaded file is saved under: the path's last part ("/home/user/a.txt" -> "a.txt"). */
export function downloadName(path: string): string {
  const base = path.replace(/\/+$/, '').split('/').pop() ?? '';
  return base && base !== '.' && base !== '..' ? base : 'download';
}

/** A one-shot execution (python-executor's ExecutionResult). */
export interface IOneShot {
  execution_id: string;
  status: string;
  duration_ms?: number | null;
  started_at?: string | null;
  finished_at?: string | null;
  exit_code?: number | null;
  error?: string | null;
}

/** One decoded NDJSON line of POST sandboxes/{id}/execute. */
export interface IWireEvent {
  type: string;
  [key: string]: any;
}

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
  javascript: 'application/javascript'
};

/** The MIME bundle carried by a `result` or `update_display` event. */
export function resultBundle(event: IWireEvent): nbformat.IMimeBundle {
  const data: nbformat.IMimeBundle = {};
  for (const [field, mime] of Object.entries(FIELD_MIMES)) {
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
  | { op: 'add'; output: nbformat.IOutput }
  | { op: 'set'; index: number; output: nbformat.IOutput }
  | { op: 'clear' };

/**
 * Folds wire events into nbformat outputs, and says for each event how the cell's output
 * list changes (so a cell shows outputs as they arrive without re-rendering them all).
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
      case 'number_of_executions': {
        this.executionCount = event.execution_count ?? null;
        const ops: OutputOp[] = [];
        this.outputs.forEach((output, index) => {
          if (output.output_type === 'execute_result') {
            ops.push(this.set(index, { ...output, execution_count: this.executionCount }));
          }
        });
        return ops;
      }
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
      return { output_type: 'execute_result', data, metadata: {}, execution_count: this.executionCount };
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

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 536870912 -> "512 MiB", 1610612736 -> "1.5 GiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes) || bytes < 0) {
    return '-';
  }
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, '')} ${UNITS[unit]}`;
}

/** Seconds -> "42s", "3m 05s", "2h 03m", "1d 04h". */
export function formatUptime(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) {
    return '-';
  }
  const s = Math.floor(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** Milliseconds -> "120 ms", "1.5 s", "2m 03s"; "-" when unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !isFinite(ms) || ms < 0) {
    return '-';
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  if (ms < 60000) {
    return `${(ms / 1000).toFixed(1)} s`;
  }
  return formatUptime(ms / 1000);
}

/** "12.345" -> "12.3%". */
export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined || !isFinite(value)) {
    return '-';
  }
  return `${value.toFixed(1)}%`;
}

/** FNV-1a, 32 bits, as 8 hex digits: a short stable tag for a notebook path. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * The sandbox a notebook runs cells in: "nb-<file stem>-<hash of the path>", valid for the
 * server's name rule (1-63 of [A-Za-z0-9_.-], starting with a letter or digit). The hash
 * keeps two notebooks of the same file name in different folders apart.
 */
export function sandboxNameForPath(path: string): string {
  const base = path.split('/').pop() ?? '';
  const stem = base.replace(/\.ipynb$/i, '');
  const slug = stem
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/-+$/, '')
    .slice(0, 40);
  return `nb-${slug ? slug + '-' : ''}${hash(path)}`;
}

/** The server's error message from an error response body ({message, reason} JSON). */
export function errorMessage(status: number, body: string): string {
  try {
    const data = JSON.parse(body);
    if (data && typeof data === 'object' && (data.message || data.reason)) {
      return String(data.message || data.reason);
    }
  } catch {
    // not JSON: fall through to the text itself
  }
  const text = body.trim();
  return text ? `${text.slice(0, 300)} (HTTP ${status})` : `HTTP ${status}`;
}

/** GET .../v1/executions may answer a list or {executions: [...]}. */
export function oneShotList(data: unknown): IOneShot[] {
  const list = Array.isArray(data) ? data : (data as any)?.executions;
  return Array.isArray(list) ? (list as IOneShot[]) : [];
}

/** A one-shot's duration: the server's once finished, else the time since it started. */
export function oneShotDuration(e: IOneShot, nowMs: number): number | null {
  if (e.duration_ms !== null && e.duration_ms !== undefined) {
    return e.duration_ms;
  }
  const started = e.started_at ? Date.parse(e.started_at) : NaN;
  return isNaN(started) ? null : Math.max(0, nowMs - started);
}

export const ACTIVE_ONE_SHOT = new Set(['pending', 'running']);

export interface ICreateForm {
  name: string;
  image: string;
  memory: string;
  cpus: string;
  network: boolean;
}

/** The POST sandboxes body from the create form; blank fields are left to the server's defaults. */
export function createBody(form: ICreateForm): { [key: string]: unknown } {
  const body: { [key: string]: unknown } = { network: form.network };
  if (form.name.trim()) {
    body.name = form.name.trim();
  }
  if (form.image.trim()) {
    body.image = form.image.trim();
  }
  if (form.memory.trim()) {
    // "512M" stays a string (the server parses sizes); a bare number is bytes
    const memory = form.memory.trim();
    body.memory = /^\d+$/.test(memory) ? Number(memory) : memory;
  }
  if (form.cpus.trim()) {
    const cpus = Number(form.cpus.trim());
    // a non-number goes as typed so that the server's message names the field
    body.cpus = isNaN(cpus) ? form.cpus.trim() : cpus;
  }
  return body;
}
