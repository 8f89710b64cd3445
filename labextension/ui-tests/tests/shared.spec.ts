/**
 * One sandbox per notebook (issue 11): `%%sandbox` in the notebook's kernel and "Run cell in
 * sandbox" share it (named after the kernel), also after the notebook is renamed.
 */
import { expect, test } from '@playwright/test';

import { notebookSandbox, openLab, rest, shot } from './helpers';

test('%%sandbox and Run cell in sandbox share variables, also after a rename', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await openLab(page, 'shared.ipynb');
  const cells = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
  await expect(cells).toHaveCount(3);
  const name = await notebookSandbox(page);

  // %load_ext, then %%sandbox sets `shared = 41` in the kernel's default sandbox.
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.press('Shift+Enter');
  await expect(cells.nth(1).locator('.jp-InputArea-prompt')).toHaveText(/^\[\d+\]:$/, { timeout: 120_000 });
  await expect(
    cells.nth(1).locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
  ).toHaveCount(0);

  // "Run cell in sandbox" on `shared + 1`: the same sandbox, so 42.
  await cells.nth(2).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Control+Alt+Enter');
  await expect(cells.nth(2).locator('.jp-OutputArea-output')).toHaveText('42', { timeout: 120_000 });
  const named = async () => (await rest(page, 'GET', 'sandboxes')).filter((s: { name: string }) => s.name === name);
  expect(await named()).toHaveLength(1);
  await shot(page, '30-shared');

  // Rename the notebook: its kernel, so its sandbox, stays.
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^File$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Rename Notebook…' }).click();
  const input = page.locator('.jp-Dialog input');
  await input.fill('renamed.ipynb');
  await page.keyboard.press('Enter');
  await expect(page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')).toContainText('renamed.ipynb');
  expect(await notebookSandbox(page)).toBe(name);

  // Change the cell to `shared + 2` and run it in the sandbox again: 43, same sandbox.
  await cells.nth(2).locator('.cm-content').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('shared + 2');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Alt+Enter');
  await expect(cells.nth(2).locator('.jp-OutputArea-output')).toHaveText('43', { timeout: 120_000 });
  expect(await named()).toHaveLength(1);
  await shot(page, '31-shared-after-rename');

  await rest(page, 'DELETE', `sandboxes/${name}`);
  expect(browserErrors).toEqual([]);
});
