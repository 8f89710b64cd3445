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

/** The kernel provisioner of "Python 3 (sandboxed)" (its kernelspec's metadata names it). */
export const SANDBOX_PROVISIONER = 'jupyter-sandbox-provisioner';

/** Whether a kernelspec's kernel runs in a sandbox of its own (its provisioner is this project's). */
export function isSandboxedSpec(metadata: { [key: string]: unknown } | undefined): boolean {
  const provisioner = metadata?.kernel_provisioner as { provisioner_name?: unknown } | undefined;
  return provisioner?.provisioner_name === SANDBOX_PROVISIONER;
}

/**
 * The sandbox a sandboxed kernel runs in (the provisioner names it so): for such a notebook it
 * is the notebook's sandbox, where "Run cell in sandbox" runs and the terminal opens.
 */
export function kernelSandboxName(kernelId: string): string {
  return `kernel-${kernelId}`;
}
