/**
 * The server's REST API, and nothing else: sandbox/api/ (sandboxes, config, API keys, volumes) and
 * sandbox/api/v1/ (one-shot executions). Errors carry the server's message and the field
 * it names.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { errorField, errorMessage } from './errors';
import { oneShotList } from './oneshots';
import { LineSplitter } from './outputs';
import type {
  IAdminSandbox,
  IApiKey,
  IFileEntry,
  ILogs,
  IMintedKey,
  ISandbox,
  IServerConfig,
  ISnapshot,
  IStats,
  IVolume,
  IWireEvent
} from './wire';

export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The request field the server blamed (e.g. "memory"), if any. */
    readonly field: string | null = null
  ) {
    super(message);
  }
}

const settings = () => ServerConnection.makeSettings();
const url = (path: string) => URLExt.join(settings().baseUrl, 'sandbox/api', path);

async function fetchAPI(path: string, init: RequestInit = {}): Promise<Response> {
  const s = settings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(URLExt.join(s.baseUrl, 'sandbox/api', path), init, s);
  } catch (error) {
    throw new APIError(0, `Jupyter server unreachable: ${error}`);
  }
  if (!response.ok) {
    const body = await response.text();
    throw new APIError(response.status, errorMessage(response.status, body), errorField(body));
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

/** The `_xsrf` cookie (jupyter_server wants it back as a header on cookie-authenticated writes). */
function xsrfCookie(): string | undefined {
  const prefix = '_xsrf=';
  let value: string | undefined;
  for (const part of document.cookie.split(';')) {
    if (part.trim().startsWith(prefix)) {
      value = part.trim().slice(prefix.length);
    }
  }
  return value;
}

export const api = {
  config: () => json<IServerConfig>('config'),
  list: () => json<ISandbox[]>('sandboxes'),
  get: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}`),
  create: (body: { [key: string]: unknown }) => json<ISandbox>('sandboxes', post(body)),
  remove: (id: string) => json<void>(`sandboxes/${enc(id)}`, { method: 'DELETE' }),
  restart: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}/restart`, post()),
  // pause, resume, snapshots and fork (issue 23; src/pause.ts)
  pause: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}/pause`, post()),
  resume: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}/resume`, post()),
  fork: (id: string) => json<ISandbox>(`sandboxes/${enc(id)}/fork`, post({})),
  snapshot: (id: string, name: string) => json<ISnapshot>(`sandboxes/${enc(id)}/snapshots`, post({ name })),
  interrupt: (id: string) => json<void>(`sandboxes/${enc(id)}/interrupt`, post()),
  stats: (id: string) => json<IStats>(`sandboxes/${enc(id)}/stats`),
  logs: (id: string) => json<ILogs>(`sandboxes/${enc(id)}/logs`),
  /** A folder's entries (type=dir: a file there is a 400, not its bytes). */
  files: (id: string, path: string) => json<IFileEntry[]>(`sandboxes/${enc(id)}/files?path=${enc(path)}&type=dir`),
  /** A file's bytes. */
  fileBlob: async (id: string, path: string) =>
    (await fetchAPI(`sandboxes/${enc(id)}/files?path=${enc(path)}&type=file`)).blob(),
  oneShots: async () => oneShotList(await json<unknown>('v1/executions')),
  killOneShot: (id: string) => json<void>(`v1/executions/${enc(id)}`, { method: 'DELETE' }),
  /** Every user's sandboxes: for holders of the admin scope, 403 for everyone else. */
  adminList: () => json<IAdminSandbox[]>('admin/sandboxes'),
  /** Stop any user's sandbox (the admin scope). */
  adminStop: (id: string) => json<void>(`admin/sandboxes/${enc(id)}`, { method: 'DELETE' }),
  /** The user's API keys for E2B's SDKs (prefixes, never secrets). */
  keys: () => json<IApiKey[]>('keys'),
  /** Mint a key: the answer carries its secret, this once. */
  mintKey: (name: string) => json<IMintedKey>('keys', post({ name })),
  revokeKey: (id: string) => json<void>(`keys/${enc(id)}`, { method: 'DELETE' }),
  /** The user's persistent volumes, with their usage. */
  volumes: () => json<IVolume[]>('volumes'),
  createVolume: (name: string, size: string | null) => json<IVolume>('volumes', post(size ? { name, size } : { name })),
  removeVolume: (name: string) => json<void>(`volumes/${enc(name)}`, { method: 'DELETE' }),

  /**
   * PUT a file's bytes at `path` (relative to the working directory). XMLHttpRequest, not
   * fetch: only it reports upload progress (`onProgress` gets 0..1).
   */
  upload(id: string, path: string, data: Blob, onProgress: (fraction: number) => void): Promise<void> {
    const s = settings();
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', url(`sandboxes/${enc(id)}/files?path=${enc(path)}`));
      if (s.token) {
        xhr.setRequestHeader('Authorization', `token ${s.token}`);
      }
      const xsrf = xsrfCookie();
      if (xsrf !== undefined) {
        xhr.setRequestHeader('X-XSRFToken', xsrf);
      }
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = event => {
        if (event.lengthComputable) {
          onProgress(event.loaded / event.total);
        }
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve();
        } else {
          const body = xhr.responseText;
          reject(new APIError(xhr.status, errorMessage(xhr.status, body), errorField(body)));
        }
      };
      xhr.onerror = () => reject(new APIError(0, 'Jupyter server unreachable during the upload'));
      xhr.send(data);
    });
  },

  /** Run code; `onEvent` gets each NDJSON event as it arrives. */
  async execute(id: string, code: string, onEvent: (event: IWireEvent) => void, signal?: AbortSignal): Promise<void> {
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

/**
 * The sandbox called `name`, made on first use with `body`. A 409 on create means another
 * client (a `%%sandbox` cell, another tab) made it first: that one is used.
 */
export async function ensureSandbox(name: string, body: { [key: string]: unknown } = {}): Promise<ISandbox> {
  try {
    return await api.get(name);
  } catch (error) {
    if (!(error instanceof APIError) || error.status !== 404) {
      throw error;
    }
  }
  try {
    return await api.create({ ...body, name });
  } catch (error) {
    if (error instanceof APIError && error.status === 409) {
      return api.get(name);
    }
    throw error;
  }
}
