/**
 * Deaths and denials explained where they happen (issue 26), tagged @deaths and run by
 * tests/test_labextension_deaths.py, which writes the two notebooks:
 * - deaths-kernel.ipynb, on "Python 3 (sandboxed)": a fetch (the sandbox has no network, and the
 *   cell says so under the error), then `bytearray(10**10)`: the cell that died says it ran out of
 *   memory, with the limit as set (the sandbox's `limit`: "512 MiB of memory plus 512 MiB of disk"),
 *   and the notebook's one dialog about the restart says that too, not "appears to have died";
 * - deaths-magic.ipynb, on Python 3: the same two in `%%sandbox` cells (with --memory 256M).
 * Screenshots in the light and the dark theme.
 */
import { expect, Locator, Page, test } from '@playwright/test';

import { rest, setTheme, shot, textContrast, TOKEN, URL } from './helpers';

const NO_NETWORK = 'this sandbox has no network';

async function openNotebook(page: Page, notebook: string, kernel: string): Promise<Locator> {
  await page.goto(`${URL}lab/tree/${notebook}?reset&token=${TOKEN}`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
  // a cell run before the session has a kernel is dropped: wait until it is idle
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: `${kernel} | Idle` })).toBeVisible({
    timeout: 180_000
  });
  return page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
}

async function run(page: Page, cell: Locator): Promise<void> {
  await cell.locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Shift+Enter');
}

const errorOf = (cell: Locator) =>
  cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');

async function shots(page: Page, name: string): Promise<void> {
  await shot(page, `${name}-light`);
  // saved, so the reload in the dark theme shows the same outputs
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+s');
  await expect(page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current.jp-mod-dirty')).toHaveCount(0, {
    timeout: 30_000
  });
  await setTheme(page, 'JupyterLab Dark');
  await page.reload();
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
  await expect(page.locator('.jp-OutputArea-output', { hasText: 'out of memory' }).first()).toBeVisible({
    timeout: 60_000
  });
  await shot(page, `${name}-dark`);
  await setTheme(page, 'JupyterLab Light');
}

/**
 * The dialog the notebook shows when its sandboxed kernel dies (deaths.ts): JupyterLab's title, the
 * server's reason (out of memory, with the limit as set) instead of "appears to have died", and no
 * other dialog beside or after it.
 */
async function restartDialog(page: Page, limit: string, name: string): Promise<void> {
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Kernel Restarting', { timeout: 120_000 });
  await expect(dialog).toHaveCount(1);
  await expect(dialog).toContainText('out of memory');
  await expect(dialog).toContainText(`the sandbox has ${limit}`);
  await expect(dialog).toContainText('restarts automatically in its sandbox; its variables are lost');
  await expect(dialog).not.toContainText('appears to have died');
  const contrast = await textContrast(dialog.locator('.jp-Dialog-body'));
  console.log(`${name}: contrast ${contrast.toFixed(1)}`);
  expect(contrast).toBeGreaterThanOrEqual(4.5);
  await shot(page, name);
  await dialog.getByRole('button', { name: 'Ok' }).click();
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: 'Python 3 (sandboxed) | Idle' })).toBeVisible({
    timeout: 180_000
  });
  await expect(dialog).toHaveCount(0); // JupyterLab's own would have waited behind it
}

test.afterEach(async ({ page }) => {
  // after a failure too: no kernel or sandbox of these notebooks is left for the next specs
  for (const sandbox of await rest(page, 'GET', 'sandboxes')) {
    if (sandbox.kind === 'kernel' && sandbox.kernel_id) {
      await page.request.delete(`${URL}api/kernels/${sandbox.kernel_id}`, {
        headers: { Authorization: `token ${TOKEN}` }
      });
    }
  }
  for (const session of await (
    await page.request.get(`${URL}api/sessions`, { headers: { Authorization: `token ${TOKEN}` } })
  ).json()) {
    await page.request.delete(`${URL}api/sessions/${session.id}`, { headers: { Authorization: `token ${TOKEN}` } });
  }
});

test('@deaths a sandboxed kernel says no network, and out of memory in the cell that died', async ({ page }) => {
  test.setTimeout(480_000); // two deaths and restarts, a reload, on a loaded machine
  const cells = await openNotebook(page, 'deaths-kernel.ipynb', 'Python 3 (sandboxed)');
  await expect(cells).toHaveCount(2);

  await run(page, cells.nth(0));
  await expect(errorOf(cells.nth(0))).toContainText(/URLError|gaierror/, { timeout: 120_000 });
  await expect(cells.nth(0).locator('.jp-OutputArea-output', { hasText: NO_NETWORK })).toBeVisible();

  await run(page, cells.nth(1));
  const died = cells.nth(1).locator('.jp-OutputArea-output', { hasText: 'out of memory' });
  await expect(died).toBeVisible({ timeout: 180_000 });
  await expect(died).toContainText('KernelDied');
  // the limit as the sandbox's model says it (the panel's), in the words of limit_text
  const kernels = (await rest(page, 'GET', 'sandboxes')).filter((s: { kind: string }) => s.kind === 'kernel');
  expect(kernels).toHaveLength(1);
  expect(kernels[0].limit).toMatch(/^\d+(\.\d+)? [MG]iB of memory plus \d+(\.\d+)? [MG]iB of disk$/);
  await expect(died).toContainText(`the sandbox has ${kernels[0].limit}`);
  // the notebook's one dialog about the restart says the same (JupyterLab's generic one is replaced)
  await restartDialog(page, kernels[0].limit, '62-oom-dialog-light');
  await expect(died).toBeVisible();
  await shots(page, '60-oom-kernel');

  // again in the dark theme (the page is dark after the screenshots' reload): its dialog is readable
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: 'Python 3 (sandboxed) | Idle' })).toBeVisible({
    timeout: 180_000
  });
  await run(page, cells.nth(1));
  await restartDialog(page, kernels[0].limit, '62-oom-dialog-dark');
});

test('@deaths %%sandbox cells say no network, and out of memory with the limit set', async ({ page }) => {
  const cells = await openNotebook(page, 'deaths-magic.ipynb', 'Python 3 (ipykernel)');
  await expect(cells).toHaveCount(3);

  await run(page, cells.nth(0)); // %load_ext
  await run(page, cells.nth(1));
  await expect(cells.nth(1).locator('.jp-OutputArea-output', { hasText: NO_NETWORK })).toBeVisible({
    timeout: 180_000
  });
  await expect(
    cells
      .nth(1)
      .locator('.jp-OutputArea-output', { hasText: /URLError|gaierror/ })
      .first()
  ).toBeVisible();

  await run(page, cells.nth(2));
  const died = cells.nth(2).locator('.jp-OutputArea-output', { hasText: 'out of memory' });
  await expect(died).toBeVisible({ timeout: 180_000 });
  await expect(died).toContainText('KernelDied');
  await expect(died).toContainText('the sandbox has 256 MiB of memory plus 512 MiB of disk');
  await shots(page, '61-oom-magic');
});
