/** One-shot executions as the server lists them: the list's shapes, durations, which are active. Pure code. */
import type { IOneShot } from './wire';

/** GET .../v1/executions may answer a list or {executions: [...]}. */
export function oneShotList(data: unknown): IOneShot[] {
  const list = Array.isArray(data) ? data : (data as { executions?: unknown } | null)?.executions;
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
