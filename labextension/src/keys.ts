/**
 * The panel's "API keys" section, without its widgets: the user's keys for E2B's SDKs from
 * sandbox/api/keys, minting one (its secret shown once) and revoking one after the user
 * confirms. Pure code: the requests and the dialogs are passed in, so node tests drive it.
 */
import type { IApiKey, IMintedKey } from './wire';

/** The key routes (api.ts in the extension, a fake server in tests). */
export interface IKeysClient {
  list(): Promise<IApiKey[]>;
  mint(name: string): Promise<IMintedKey>;
  revoke(id: string): Promise<void>;
}

/** What the section asks of the user interface. */
export interface IKeysUI {
  /** A name for the new key (null: the user cancelled). */
  askName(): Promise<string | null>;
  /** Show the new key's secret and its export lines: the only time it is shown. */
  showSecret(key: IMintedKey): Promise<void>;
  /** Whether the user really wants to revoke this key (a dialog). */
  confirmRevoke(key: IApiKey): Promise<boolean>;
  /** Report a failure. */
  error(title: string, error: unknown): void;
}

/** Characters a POSIX shell takes literally (Python's shlex.quote leaves these unquoted; ASCII \w). */
const SHELL_SAFE = /^[\w@%+=:,./-]+$/;

/** A word quoted for a POSIX shell as Python's shlex.quote does (the CLI's `e2b-env` uses it). */
export function shellQuote(value: string): string {
  if (!value) {
    return "''";
  }
  if (SHELL_SAFE.test(value)) {
    return value;
  }
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/**
 * The export lines `jupyter sandbox e2b-env` prints, for the server at `serverUrl` (its origin
 * and base URL) and `key`: after `eval` of them, an unmodified E2B program reaches this server.
 */
export function e2bEnvLines(serverUrl: string, key: string): string {
  const base = serverUrl.replace(/\/+$/, '') + '/sandbox/e2b';
  return [
    ['E2B_API_URL', `${base}/api`],
    ['E2B_SANDBOX_URL', `${base}/plane`],
    ['E2B_API_KEY', key]
  ]
    .map(([name, value]) => `export ${name}=${shellQuote(value)}`)
    .join('\n');
}

/** A key as the list shows it: its prefix, then its name or, if unnamed, nothing more. */
export function keyLabel(key: IApiKey): string {
  return key.name ? `${key.prefix}… ${key.name}` : `${key.prefix}…`;
}

export class ApiKeys {
  constructor(
    private client: IKeysClient,
    private ui: IKeysUI,
    /** Called after every change of `keys` or `loaded`. */
    private onChange: () => void = () => undefined
  ) {}

  keys: IApiKey[] = [];
  /** Whether the list has been read once. */
  loaded = false;

  async refresh(): Promise<void> {
    const asked = ++this.asked;
    let keys: IApiKey[];
    try {
      keys = await this.client.list();
    } catch (error) {
      this.ui.error('Could not list your API keys', error);
      return;
    }
    if (asked !== this.asked) {
      return; // a later refresh was started: its answer wins
    }
    this.keys = keys;
    this.loaded = true;
    this.onChange();
  }

  /** Ask for a name, mint the key, show its secret once; the key, or null if none was made. */
  async mint(): Promise<IMintedKey | null> {
    const name = await this.ui.askName();
    if (name === null) {
      return null;
    }
    let key: IMintedKey;
    try {
      key = await this.client.mint(name.trim());
    } catch (error) {
      this.ui.error('Could not make an API key', error);
      return null;
    }
    await this.refresh();
    await this.ui.showSecret(key);
    return key;
  }

  /** Revoke a key after the user confirms; true if it was revoked. */
  async revoke(key: IApiKey): Promise<boolean> {
    if (!(await this.ui.confirmRevoke(key))) {
      return false;
    }
    let revoked = true;
    try {
      await this.client.revoke(key.id);
    } catch (error) {
      revoked = false;
      this.ui.error(`Could not revoke the API key ${key.prefix}…`, error);
    }
    await this.refresh();
    return revoked;
  }

  private asked = 0;
}
