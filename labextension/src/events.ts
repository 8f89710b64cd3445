/**
 * How a sandbox event from the user's event stream changes the panel's list. Events are
 * hints: the list only ever holds what GET sandboxes returned (which checks the owner), so
 * an event about an unknown sandbox asks for a fresh list instead of adding anything.
 * Pure code.
 */
import type { ISandbox, ISandboxEvent } from './wire';

export interface IApplied {
  sandboxes: ISandbox[];
  /** Sandbox id -> executions running or queued, as last announced. */
  executing: Map<string, number>;
  /** Whether the list should be fetched again (something appeared that it does not hold). */
  refresh: boolean;
}

export function applySandboxEvent(
  sandboxes: ISandbox[],
  executing: Map<string, number>,
  event: ISandboxEvent
): IApplied {
  const known = sandboxes.find(s => s.id === event.sandbox_id);
  const busy = new Map(executing);
  if (event.action === 'removed') {
    busy.delete(event.sandbox_id);
    return { sandboxes: sandboxes.filter(s => s.id !== event.sandbox_id), executing: busy, refresh: false };
  }
  if (typeof event.executing === 'number') {
    busy.set(event.sandbox_id, event.executing);
  }
  if (!known) {
    return { sandboxes, executing: busy, refresh: true };
  }
  const updated = sandboxes.map(s => (s.id === event.sandbox_id ? { ...s, status: event.status } : s));
  // a status change may come with new contexts (restart): the list has them
  return { sandboxes: updated, executing: busy, refresh: event.action === 'status' };
}

/** The sandboxes of `before` that `after` no longer holds (removed, however the list learnt it). */
export function droppedSandboxes(before: ISandbox[], after: ISandbox[]): ISandbox[] {
  const ids = new Set(after.map(s => s.id));
  return before.filter(s => !ids.has(s.id));
}
