/**
 * The whole story in a real browser against a real server (Docker backend): open a
 * notebook, create its sandbox from the panel (a bad size marks the field), run cells in it
 * (shortcut and toolbar button: the cells become sandbox cells), see the output with the
 * plot and the panel update, browse the files tree and download one, kill a one-shot
 * execution, remove the sandbox.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'fs';

import { notebookSandbox, openLab, openPanel, rest, shot, URL, TOKEN } from './helpers';

// what cell 1 writes to hello.txt (CELL_PLOT in tests/test_labextension_ui.py)
const GREETING = 'hi from the sandbox';

test('create a sandbox, run cells in it, see outputs and the panel, remove it', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));

  await openLab(page, process.env.NOTEBOOK ?? 'sandbox-ui.ipynb');
  const cells = page.locator('.jp-NotebookPanel .jp-CodeCell');
  await expect(cells).toHaveCount(2);

  // The status bar names the notebook's sandbox (from its kernel); it does not exist yet.
  const status = page.locator('.jp-SandboxStatus');
  await expect(status).toContainText('not created');
  const name = await notebookSandbox(page);

  // The create form: a size under the minimum marks the memory field with the server's message.
  const panel = await openPanel(page);
  await panel.getByRole('button', { name: 'New sandbox' }).click();
  const form = panel.locator('.jp-SandboxCreate-form');
  await form.locator('input[name="name"]').fill(name);
  await form.locator('input[name="memory"]').fill('1M');
  await form.getByRole('button', { name: 'Create sandbox' }).click();
  const memoryField = form.locator('[data-field="memory"]');
  await expect(memoryField).toHaveClass(/jp-mod-error/);
  await expect(memoryField.getByRole('alert')).toHaveText('memory must be at least 32M');
  await expect(form.locator('input[name="memory"]')).toHaveAttribute('aria-invalid', 'true');
  // the placeholder is the server's real default (the test server's default_memory)
  await expect(form.locator('input[name="memory"]')).toHaveAttribute('placeholder', '512M');
  await shot(page, '01-field-error');

  // Create it for real.
  await form.locator('input[name="memory"]').fill('512M');
  await form.locator('input[name="cpus"]').fill('1');
  await form.getByRole('button', { name: 'Create sandbox' }).click();
  const item = panel.locator(`.jp-SandboxItem[data-name="${name}"]`);
  await expect(item).toHaveAttribute('data-status', 'running', { timeout: 120_000 });
  await expect(status).toContainText(`${name} · running`);
  // the new sandbox is shown expanded
  await expect(item.locator('.jp-SandboxItem-header')).toHaveAttribute('aria-expanded', 'true');
  await shot(page, '02-created');

  // The status-bar item is a button: it opens the panel at the notebook's sandbox.
  await item.locator('.jp-SandboxItem-header').click(); // collapse it first
  await expect(item.locator('.jp-SandboxItem-header')).toHaveAttribute('aria-expanded', 'false');
  await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]').click();
  await expect(panel).toBeHidden();
  await status.click();
  await expect(panel).toBeVisible();
  await expect(item.locator('.jp-SandboxItem-header')).toHaveAttribute('aria-expanded', 'true');

  // Run cell 1 (print + matplotlib plot) with the keyboard shortcut, from command mode.
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Alt+Enter');
  const out1 = cells.nth(0).locator('.jp-OutputArea-output');
  await expect(out1.filter({ hasText: 'hello from the sandbox in /home/user' })).toHaveCount(1, { timeout: 120_000 });
  const img = cells.nth(0).locator('.jp-OutputArea-output img');
  await expect(img).toBeVisible();
  expect(await img.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBeGreaterThan(100);
  // now a sandbox cell: marked, its sandbox count on the badge, the kernel's prompt left empty
  await expect(cells.nth(0)).toHaveClass(/jp-SandboxCell/);
  await expect(cells.nth(0).locator('.jp-SandboxCell-badge')).toHaveText(/^sandbox \[\d+\]$/);
  await expect(cells.nth(0).locator('.jp-InputArea-prompt')).toHaveText('[ ]:');
  await shot(page, '03-cell-output');

  // Run cell 2 (an exception) with the toolbar button: an error output in the cell.
  await cells.nth(1).locator('.jp-InputArea-prompt').click();
  await page.locator('.jp-NotebookPanel-toolbar .jp-SandboxRunButton').click();
  await expect(cells.nth(1).locator('.jp-OutputArea-output')).toContainText('ZeroDivisionError', { timeout: 60_000 });

  // The commands are in the cell context menu and the command palette.
  await cells.nth(0).locator('.jp-InputArea-prompt').click({ button: 'right' });
  await expect(page.locator('.lm-Menu .lm-Menu-itemLabel', { hasText: 'Run Cell in Sandbox' })).toBeVisible();
  await expect(page.locator('.lm-Menu .lm-Menu-itemLabel', { hasText: 'Remove Sandbox Mark' })).toBeVisible();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Shift+C');
  await page.keyboard.type('sandbox');
  for (const label of [
    'Run Cell in Sandbox',
    'Run All Cells in Sandbox',
    'Create Sandbox…',
    "Remove This Notebook's Sandbox",
    "Interrupt This Notebook's Sandbox",
    "Restart This Notebook's Sandbox",
    'Show Sandboxes Panel',
    'Upload Files to Sandbox…'
  ]) {
    await expect(page.locator('.lm-CommandPalette-item', { hasText: label }).first()).toBeVisible();
  }
  await page.keyboard.press('Escape');

  // The item shows details (stats polled while the panel shows), contexts and files.
  await expect(item.locator('[data-field="memory"]')).toHaveText(/\d.* \/ 512 MiB/);
  await expect(item.locator('[data-field="cpu"]')).toHaveText(/% of 1$/);
  await expect(item.locator('[data-field="contexts"]')).toContainText('python');
  const entry = (path: string) => item.locator(`.jp-SandboxFiles-entry[data-path="${path}"]`);
  await expect(entry('hello.txt')).toContainText(`${GREETING.length} B`);
  await shot(page, '04-panel-updated');

  // Files: a folder opens in place (paths relative to /home/user), a file downloads.
  await entry('out').click();
  await expect(entry('out/data.csv')).toContainText('7 B');
  const [download] = await Promise.all([page.waitForEvent('download'), entry('hello.txt').click()]);
  expect(download.suggestedFilename()).toBe('hello.txt');
  expect(await fs.promises.readFile(await download.path(), 'utf8')).toBe(GREETING);
  await shot(page, '04-files-download');

  // A file gone since the listing: the server's message as a notification.
  const gone = await page.request.delete(`${URL}sandbox/api/sandboxes/${name}/files?path=hello.txt`, {
    headers: { Authorization: `token ${TOKEN}` }
  });
  expect(gone.status()).toBe(204);
  await entry('hello.txt').click();
  await expect(page.getByText(/^Download \/home\/user\/hello\.txt from notebook-\S+: no such/).first()).toBeVisible();

  // A one-shot execution (submitted by the pytest side) is listed while it runs; kill it.
  const oneShot = panel.locator(`.jp-SandboxOneShot[data-id="${process.env.ONESHOT_ID}"]`);
  await expect(oneShot).toContainText('running');
  await oneShot.getByRole('button', { name: /^Kill / }).click();
  await expect(oneShot).toContainText('killed');
  await expect(oneShot.getByRole('button', { name: /^Kill / })).toHaveCount(0);

  // Remove it from its item: gone from the panel at once, and the status bar says so.
  await item.getByRole('button', { name: `Remove ${name}`, exact: true }).click();
  await expect(item).toHaveCount(0, { timeout: 60_000 });
  await expect(status).toContainText('not created');
  await shot(page, '05-removed');
  expect((await rest(page, 'GET', 'sandboxes')).map((s: { name: string }) => s.name)).not.toContain(name);

  // Help › Sandboxes Documentation opens the docs (the bundled README) in a tab.
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Help$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Sandboxes Documentation' }).click();
  await expect(page.locator('.jp-SandboxDocs h1').first()).toHaveText(/jupyter-sandbox/);
  await expect(page.locator('.jp-SandboxDocs')).toContainText('Run Cell in Sandbox');
  await shot(page, '06-docs');

  expect(browserErrors).toEqual([]);
});
