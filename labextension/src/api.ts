/**
 * The server's REST API, and nothing else: sandbox/api/ (sandboxes) and sandbox/api/v1/
 * (one-shot executions). Errors carry the server's own message.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  errorMessage,
  IFileEntry,
  ISandbox,
  IStats,
  IWireEvent,
  LineSplitter,
  oneShotList
} from './model';

export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

const settings = () => ServerConnection.makeSettings();

async function fetchAPI(path: string, init: RequestInit = {}): Promise<Response> {
  const s = settings();
  const url = URLExt.join(s.baseUrl, 'sandbox/api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, s);
  } catch (error) {
    throw new APIError(0, `Jupyter server unreachable: ${error}`);
  }
  if (!response.ok) {
    throw new APIError(response.status, errorMessage(response.status, await response.text()));
  }
  return response;
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetchAPI(path, init);
  if (response.status === 204) {
    return undefined as T;
  }
  return (await response.json()) as T;
}

const post = (body?: unknown): RequestInit => ({
  method: 'POST',
  body: body === undefined ? undefined : JSON.stringify(body)
});

const enc = encodeURIComponent;

export const api = {
  list: () => json<ISandbox[]>('sandboxes'),
  get: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}`),
  create: (body: { [key: string]: unknown }) => json<ISandbox>('sandboxes', post(body)),
  remove: (id: string) => json<void>(`sandboxes/${enc(id)}`, { method: 'DELETE' }),
  restart: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}/restart`, post()),
  interrupt: (id: string) => json<void>(`sandboxes/${enc(id)}/interrupt`, post()),
  stats: (id: string) => json<IStats>(`sandboxes/${enc(id)}/stats`),
  files: (id: string, path: string) =>
    json<IFileEntry[]>(`sandboxes/${enc(id)}/files?path=${enc(path)}`),
  /** A file's bytes (the same route answers a file's content instead of a listing). */
  fileBlob: async (id: string, path: string) =>
    (await fetchAPI(`sandboxes/${enc(id)}/files?path=${enc(path)}`)).blob(),
  oneShots: async () => oneShotList(await json<unknown>('v1/executions')),
  killOneShot: (id: string) => json<void>(`v1/executions/${enc(id)}`, { method: 'DELETE' }),

  /** Run code; `onEvent` gets each NDJSON event as it arrives. */
  async execute(
    id: string,
    code: string,
    onEvent: (event: IWireEvent) => void,
    signal?: AbortSignal
  ): Promise<void> {
    const response = await fetchAPI(`sandboxes/${enc(id)}/execute`, { ...post({ code }), signal });
    if (!response.body) {
      throw new APIError(0, 'the browser gave no response stream');
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const lines = new LineSplitter();
    const emit = (line: string) => onEvent(JSON.parse(line) as IWireEvent);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      lines.push(decoder.decode(value, { stream: true })).forEach(emit);
    }
    lines.push(decoder.decode()).forEach(emit);
    lines.flush().forEach(emit);
  }
};

/** The sandbox called `name`, made on first use. */
export async function ensureSandbox(name: string): Promise<ISandbox> {
  try {
    return await api.get(name);
  } catch (error) {
    if (!(error instanceof APIError) || error.status !== 404) {
      throw error;
    }
  }
  try {
    return await api.create({ name });
  } catch (error) {
    // another tab or run made it in the meantime
    if (error instanceof APIError && error.status === 409) {
      return api.get(name);
    }
    throw error;
  }
}
