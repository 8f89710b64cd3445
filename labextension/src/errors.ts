/** What an error response says: its message and the field it names. Pure code. */

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

/** The field an error body names, if any. */
export function errorField(body: string): string | null {
  try {
    const data = JSON.parse(body);
    return data && typeof data.field === 'string' ? data.field : null;
  } catch {
    return null;
  }
}
