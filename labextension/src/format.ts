/** How numbers are shown in the panel. Pure code. */

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

const SIZE_UNITS: { [unit: string]: number } = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** The server's size syntax (models.parse_size): "512M", "1g", "2GiB", "1048576"; null if not one. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  return m ? Math.floor(parseFloat(m[1]) * SIZE_UNITS[m[2].toLowerCase()]) : null;
}

/** Bytes in the server's own syntax, as a placeholder to type: 1073741824 -> "1G" (models.format_size). */
export function formatSize(bytes: number): string {
  for (const unit of ['G', 'M', 'K']) {
    const scale = SIZE_UNITS[unit.toLowerCase()];
    if (bytes % scale === 0) {
      return `${bytes / scale}${unit}`;
    }
  }
  return String(bytes);
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

/** The part of a sandbox's spec that says where it may connect (jupyter_sandbox.models.SandboxSpec). */
export interface INetworkSpec {
  network: boolean;
  /** {allow, deny}; null: unfiltered */
  egress?: { [key: string]: string[] } | null;
}

/** A sandbox's network in a few words: "none", "yes", or its allow-list (issue 23). */
export function networkText(spec: INetworkSpec): string {
  if (!spec.network) {
    return 'none';
  }
  if (!spec.egress) {
    return 'yes';
  }
  const allowed = spec.egress.allow ?? [];
  const denied = spec.egress.deny ?? [];
  const allow = allowed.length ? allowed.join(', ') : 'nothing';
  return denied.length ? `only ${allow}; not ${denied.join(', ')}` : `only ${allow}`;
}

/** The panel's tooltip on it: how the allow-list is enforced, and where refusals show. */
export function networkTitle(spec: INetworkSpec): string {
  if (!spec.network) {
    return 'No network at all';
  }
  if (!spec.egress) {
    return 'The fenced sandbox network: no host services, no cloud metadata address';
  }
  return "Through a filtering proxy of its own, by name only (never a raw IP); what it refuses is in the sandbox's logs";
}
