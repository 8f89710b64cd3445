/**
 * The sandboxed notebook kernel (issue 14): pick "Python 3 (sandboxed)" in the launcher, run a
 * cell (it runs in the container: its hostname, working directory and user are the sandbox's),
 * and see the kernel's sandbox in the panel, marked as a notebook kernel and named after the
 * notebook, offering what it accepts (interrupt, upload, logs; not restart). Its close button
 * asks first, then shuts the kernel down, which takes the sandbox with it, and the notebook is
 * offered a new kernel (issue 26).
 */
import { expect, test } from '@playwright/test';

import { openLab, openPanel, rest, shot, TOKEN, URL } from './helpers';

test.afterEach(async ({ page }) => {
  // after a failure too: the next specs expect no kernel sandbox (shutting a kernel down removes it)
  for (const sandbox of await rest(page, 'GET', 'sandboxes')) {
    if (sandbox.kind === 'kernel' && sandbox.kernel_id) {
      await page.request.delete(`${URL}api/kernels/${sandbox.kernel_id}`, {
        headers: { Authorization: `token ${TOKEN}` }
      });
    }
  }
});

test('a notebook on "Python 3 (sandboxed)" runs in a sandbox the panel shows as its kernel', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await openLab(page);

  // The launcher's card for the kernelspec the package installs.
  const card = page.locator('.jp-LauncherCard[data-category="Notebook"]', { hasText: 'Python 3 (sandboxed)' });
  await expect(card).toBeVisible({ timeout: 60_000 });
  await card.click();
  const notebook = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
  await expect(notebook.getByRole('button', { name: 'Python 3 (sandboxed)' })).toBeVisible({ timeout: 60_000 });
  // Its sandbox takes a second or two to start; JupyterLab drops a cell run before its session has
  // a kernel (it clears the cell and sends nothing), so wait until the kernel is connected and idle.
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: 'Python 3 (sandboxed) | Idle' })).toBeVisible({
    timeout: 120_000
  });
  const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current');
  const notebookName = ((await tab.textContent()) ?? '').trim();
  expect(notebookName).toMatch(/\.ipynb$/);

  // A cell: the kernel answers from inside the container (hostname "sandbox", /home/user, the
  // sandbox's own uid: not root, from c.DockerBackend.sandbox_uid_base).
  const cell = notebook.locator('.jp-CodeCell').first();
  await cell.locator('.cm-content').click();
  await page.keyboard.type("import os, socket; print('in', socket.gethostname(), os.getcwd(), os.getuid())");
  await page.keyboard.press('Shift+Enter');
  await expect(cell.locator('.jp-OutputArea-output')).toHaveText(/^in sandbox \/home\/user [1-9]\d*\s*$/, {
    timeout: 180_000
  });
  await expect(cell.locator('.jp-InputArea-prompt')).toHaveText('[1]:');

  // The server has one sandbox for this kernel, of kind "kernel".
  const kernels = (await rest(page, 'GET', 'sandboxes')).filter((s: { kind: string }) => s.kind === 'kernel');
  expect(kernels).toHaveLength(1);
  const sandbox = kernels[0];
  const sessions = await (
    await page.request.get(`${URL}api/sessions`, { headers: { Authorization: `token ${TOKEN}` } })
  ).json();
  const session = sessions.find((s: { path: string }) => s.path.endsWith(notebookName));
  expect(session?.kernel?.id).toBe(sandbox.kernel_id);

  // The panel lists it as the notebook's kernel: a notebook icon, the notebook's name, a "kernel" tag.
  const panel = await openPanel(page);
  const item = panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"]`);
  await expect(item).toHaveAttribute('data-kind', 'kernel');
  await expect(item).toHaveAttribute('data-status', 'running');
  await expect(item.locator('.jp-SandboxItem-label')).toHaveText(notebookName);
  await expect(item.locator('.jp-SandboxItem-kind')).toHaveText('kernel');
  await expect(item.locator('.jp-SandboxItem-kind')).toHaveAttribute('title', /notebook kernel/);
  await expect(item.locator('.jp-SandboxItem-icon svg')).toHaveCount(1);
  expect(await item.locator('.jp-SandboxItem-label').evaluate(el => el.clientWidth)).toBeGreaterThan(40);

  // Expanded: what it accepts is offered (no Restart: the notebook restarts its kernel).
  await item.locator('.jp-SandboxItem-header').click();
  const actions = item.locator('.jp-SandboxItem-actions');
  await expect(actions.getByRole('button', { name: 'Interrupt' })).toBeVisible();
  await expect(actions.getByRole('button', { name: 'Upload' })).toBeVisible();
  await expect(actions.getByRole('button', { name: 'Logs' })).toBeVisible();
  await expect(actions.getByRole('button', { name: 'Restart' })).toHaveCount(0);
  await expect(item.locator('[data-field="notebook"]')).toHaveText(session.path);
  // its logs work: the kernel's own log
  await actions.getByRole('button', { name: 'Logs' }).click();
  await expect(item.locator('.jp-SandboxLogs-section[data-log^="kernel-"] pre')).toBeVisible({ timeout: 30_000 });
  await shot(page, '40-sandboxed-kernel');

  // The close button asks first (issue 26): Cancel keeps the kernel and its sandbox.
  const dialog = page.locator('.jp-Dialog');
  await item.getByRole('button', { name: /^Shut down the notebook kernel of / }).click();
  await expect(dialog).toContainText('Remove the kernel’s sandbox?');
  await expect(dialog).toContainText(session.path);
  await shot(page, '41-confirm-remove-light');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(item).toHaveAttribute('data-status', 'running');

  // Remove: the kernel shuts down, its sandbox goes with it.
  await item.getByRole('button', { name: /^Shut down the notebook kernel of / }).click();
  await dialog.getByRole('button', { name: 'Remove' }).click();
  await expect(item).toHaveCount(0, { timeout: 60_000 });
  await expect
    .poll(async () => (await rest(page, 'GET', 'sandboxes')).filter((s: { kind: string }) => s.kind === 'kernel'))
    .toHaveLength(0);

  // The notebook is then offered a new kernel (not left "Disconnected"); taking it, a cell runs
  // again, in a new sandbox.
  await expect(dialog).toContainText('Kernel shut down', { timeout: 60_000 });
  await expect(dialog).toContainText(`The sandbox of ${session.path} was removed`);
  await shot(page, '42-offer-restart-light');
  await dialog.getByRole('button', { name: 'Restart Kernel' }).click();
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: 'Python 3 (sandboxed) | Idle' })).toBeVisible({
    timeout: 120_000
  });
  await cell.locator('.cm-content').click();
  await page.keyboard.press('Shift+Enter');
  await expect(cell.locator('.jp-OutputArea-output')).toHaveText(/^in sandbox \/home\/user [1-9]\d*\s*$/, {
    timeout: 180_000
  });
  await expect(cell.locator('.jp-InputArea-prompt')).toHaveText('[1]:');
  const again = (await rest(page, 'GET', 'sandboxes')).filter((s: { kind: string }) => s.kind === 'kernel');
  expect(again).toHaveLength(1);
  expect(again[0].id).not.toBe(sandbox.id);
  expect(browserErrors).toEqual([]);
});
