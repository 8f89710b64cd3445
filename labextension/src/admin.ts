/**
 * The admin section of the panel, without its widgets: every user's sandboxes from
 * GET sandbox/api/admin/sandboxes, shown only to whom that route answers 200, and stopping one
 * after the admin confirms. Pure code: the requests, the confirmation and the error report are
 * passed in, so node tests drive it without a browser.
 */
import { formatBytes, formatPercent, formatUptime } from './format';
import type { IAdminSandbox } from './wire';

/** The admin routes (api.ts in the extension, a fake server in tests). */
export interface IAdminClient {
  list(): Promise<IAdminSandbox[]>;
  stop(id: string): Promise<void>;
}

/** What the section asks of the user interface. */
export interface IAdminUI {
  /** Whether the admin really wants to stop this sandbox (a dialog). */
  confirmStop(sandbox: IAdminSandbox): Promise<boolean>;
  /** Report a failure (a notification). */
  error(message: string): void;
}

/** A row as the table shows it. */
export interface IAdminRowText {
  owner: string;
  name: string;
  status: string;
  age: string;
  memory: string;
  cpu: string;
}

export function adminRowText(s: IAdminSandbox): IAdminRowText {
  return {
    owner: s.owner,
    name: s.name,
    status: s.status,
    age: formatUptime(s.age),
    memory: `${formatBytes(s.memory_used)} / ${formatBytes(s.memory_limit)}`,
    cpu: formatPercent(s.cpu_percent)
  };
}

/**
 * The answers that mean "this section is not for this user" rather than a failure: 403 (not an
 * admin), 404 (a server without the admin routes).
 */
const NOT_FOR_THIS_USER = new Set([403, 404]);

function httpStatus(error: unknown): number | null {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : null;
}

export class AdminSandboxes {
  constructor(
    private client: IAdminClient,
    private ui: IAdminUI,
    /** Called after every change of `allowed` or `rows`. */
    private onChange: () => void = () => undefined
  ) {}

  /** Whether the admin route answered 200 last time: the section is shown only then. */
  allowed = false;
  rows: IAdminSandbox[] = [];

  /** Ask the admin route again (on panel open and on the panel's refresh). */
  async refresh(): Promise<void> {
    const asked = ++this.asked;
    let rows: IAdminSandbox[] = [];
    let allowed = true;
    try {
      rows = await this.client.list();
    } catch (error) {
      allowed = false;
      if (!NOT_FOR_THIS_USER.has(httpStatus(error) ?? 0)) {
        this.ui.error(`All users' sandboxes: ${(error as Error).message}`);
        // a failing request says nothing new about who may see the section
        allowed = this.allowed;
        rows = this.rows;
      }
    }
    if (asked !== this.asked) {
      return; // a later refresh was started: its answer wins
    }
    this.allowed = allowed;
    this.rows = rows;
    this.onChange();
  }

  /** Stop one sandbox after the admin confirms; true if it was stopped. */
  async stop(sandbox: IAdminSandbox): Promise<boolean> {
    if (!(await this.ui.confirmStop(sandbox))) {
      return false;
    }
    let stopped = true;
    try {
      await this.client.stop(sandbox.id);
    } catch (error) {
      stopped = false;
      this.ui.error(`Stop ${sandbox.name} of ${sandbox.owner}: ${(error as Error).message}`);
    }
    await this.refresh();
    return stopped;
  }

  private asked = 0;
}
