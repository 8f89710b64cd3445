/** Which sandbox a notebook uses by default (the `%%sandbox` magic's rule). Pure code. */

/**
 * The default sandbox of a notebook: tied to its kernel, not its path, so that the
 * `%%sandbox` magic (which names it the same way, from the kernel's connection file) and
 * "Run cell in sandbox" share it, and a rename keeps it. The server removes it when that
 * kernel shuts down.
 */
export function notebookSandboxName(kernelId: string): string {
  return `notebook-${kernelId.slice(0, 12)}`;
}
