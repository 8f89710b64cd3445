/**
 * The whole story in a real browser against a real server (Docker backend): open
 * JupyterLab, create the notebook's sandbox from the panel, run cells in it with the
 * command (shortcut and toolbar button), see the output with the plot image and the panel
 * update, see a server error as a notification, browse files and download one, remove
 * the sandbox.
 */
import { expect, Page, test } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

const URL = process.env.JUPYTER_URL ?? 'http://127.0.0.1:8888/';
const TOKEN = process.env.JUPYTER_TOKEN ?? '';
const NOTEBOOK = process.env.NOTEBOOK ?? 'sandbox-ui.ipynb';
const ARTIFACTS = process.env.ARTIFACTS ?? path.resolve(__dirname, '..', '..', '..', 'test-artifacts');
// what cell 1 writes to hello.txt (CELL_PLOT in tests/test_labextension_ui.py)
const GREETING = 'hi from the sandbox';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `labextension-${name}.png`), fullPage: true });

test('create a sandbox, run cells in it, see outputs and the panel, remove it', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));

  await page.goto(`${URL}lab/tree/${NOTEBOOK}?token=${TOKEN}`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
  const cells = page.locator('.jp-NotebookPanel .jp-CodeCell');
  await expect(cells).toHaveCount(2);

  // The status bar names the notebook's sandbox; it does not exist yet.
  const status = page.locator('.jp-SandboxStatus');
  await expect(status).toContainText('not created');
  const name = /Sandbox: (\S+)/.exec((await status.textContent()) ?? '')![1];
  expect(name).toMatch(/^nb-sandbox-ui-[0-9a-f]{8}$/);

  // The panel: a bad size comes back as a notification with the server's own message.
  await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-sandbox-panel"]').click();
  const panel = page.locator('#jupyter-sandbox-panel');
  await expect(panel).toBeVisible();
  await panel.locator('input[name="name"]').fill(name);
  await panel.locator('input[name="memory"]').fill('1M');
  await panel.getByRole('button', { name: 'Create sandbox' }).click();
  await expect(page.getByText('memory must be at least 32M').first()).toBeVisible();
  await shot(page, '01-error-notification');

  // Create it for real.
  await panel.locator('input[name="memory"]').fill('512M');
  await panel.locator('input[name="cpus"]').fill('1');
  await panel.getByRole('button', { name: 'Create sandbox' }).click();
  const item = panel.locator(`.jp-SandboxPanel-item[data-name="${name}"]`);
  await expect(item).toHaveAttribute('data-status', 'running', { timeout: 120_000 });
  await expect(status).toContainText(`${name} · running`);
  await shot(page, '02-created');

  // Run cell 1 (print + matplotlib plot) with the keyboard shortcut, from command mode.
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Alt+Enter');
  const out1 = cells.nth(0).locator('.jp-OutputArea-output');
  await expect(out1.filter({ hasText: 'hello from the sandbox in /home/user' })).toHaveCount(1, { timeout: 120_000 });
  const img = cells.nth(0).locator('.jp-OutputArea-output img');
  await expect(img).toBeVisible();
  expect(await img.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBeGreaterThan(100);
  await expect(cells.nth(0).locator('.jp-InputArea-prompt')).toHaveText(/\[\d+\]/);
  await shot(page, '03-cell-output');

  // Run cell 2 (an exception) with the toolbar button: an error output in the cell.
  await cells.nth(1).locator('.jp-InputArea-prompt').click();
  await page.locator('.jp-NotebookPanel-toolbar .jp-SandboxRunButton').click();
  await expect(cells.nth(1).locator('.jp-OutputArea-output')).toContainText('ZeroDivisionError', { timeout: 60_000 });

  // The command is also in the cell context menu and the command palette.
  await cells.nth(0).locator('.jp-InputArea-prompt').click({ button: 'right' });
  await expect(page.locator('.lm-Menu .lm-Menu-itemLabel', { hasText: 'Run cell in sandbox' })).toBeVisible();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Shift+C');
  await page.keyboard.type('Run cell in sandbox');
  await expect(page.locator('.lm-CommandPalette-item', { hasText: 'Run cell in sandbox' }).first()).toBeVisible();
  await page.keyboard.press('Escape');

  // The panel updates live: stats of the running sandbox, its kernel, the file written.
  await expect(item.locator('[data-field="memory"]')).toHaveText(/\d.* \/ 512 MiB/);
  await expect(item.locator('[data-field="cpu"]')).toHaveText(/%$/);
  await expect(item.locator('[data-field="contexts"]')).toContainText('python');
  await item.getByRole('button', { name: 'Files' }).click();
  const files = panel.locator('.jp-SandboxPanel-files');
  const entry = (text: RegExp) => files.locator('.jp-SandboxPanel-file').filter({ hasText: text });
  const hello = entry(/^hello\.txt /);
  await expect(hello).toHaveText(`hello.txt ${GREETING.length} B`);
  await shot(page, '04-panel-updated');

  // Files: a folder opens, ".." goes back, a file downloads (through the authenticated API).
  await entry(/^out\/$/).click();
  await expect(entry(/^data\.csv /)).toHaveText('data.csv 7 B');
  await entry(/^\.\.$/).click();
  await expect(hello).toBeVisible();
  const [download] = await Promise.all([page.waitForEvent('download'), hello.click()]);
  expect(download.suggestedFilename()).toBe('hello.txt');
  expect(await fs.promises.readFile(await download.path(), 'utf8')).toBe(GREETING);
  await shot(page, '04-files-download');

  // A file gone since the listing: the server's message as a notification.
  const gone = await page.request.delete(`${URL}sandbox/api/sandboxes/${name}/files?path=hello.txt`, {
    headers: { Authorization: `token ${TOKEN}` }
  });
  expect(gone.status()).toBe(204);
  await hello.click();
  await expect(page.getByText(/^Download \/home\/user\/hello\.txt from nb-\S+: no such/).first()).toBeVisible();

  // A one-shot execution (submitted by the pytest side) is listed while it runs; kill it.
  const oneShot = panel.locator(`.jp-SandboxPanel-oneshot[data-id="${process.env.ONESHOT_ID}"]`);
  await expect(oneShot).toContainText('running');
  await oneShot.getByRole('button', { name: 'Kill' }).click();
  await expect(oneShot).toContainText('killed');
  await expect(oneShot.getByRole('button', { name: 'Kill' })).toHaveCount(0);

  // Remove it: gone from the panel, and the status bar says so.
  await item.getByRole('button', { name: 'Remove' }).click();
  await expect(item).toHaveCount(0, { timeout: 60_000 });
  await expect(status).toContainText('not created');
  await expect(panel.locator('.jp-SandboxPanel-files')).toBeEmpty();
  await shot(page, '05-removed');

  expect(browserErrors).toEqual([]);
});
