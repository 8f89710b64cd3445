/**
 * Issue 23: a sandbox row's right-click menu pauses and resumes it; a paused row says so in its
 * badge (its tooltip: what was kept), and the server agrees.
 */
import { expect, test } from '@playwright/test';

import { openLab, openPanel, rest, shot } from './helpers';

test('@pause a row menu pauses a sandbox, its badge says paused, and resumes it', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  const sandbox = await rest(page, 'POST', 'sandboxes', { name: 'menu-pause' });
  await rest(page, 'POST', `sandboxes/${sandbox.id}/execute`, { code: "open('kept.txt', 'w').write('kept')" });
  await openLab(page);
  const panel = await openPanel(page);
  const item = panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"]`);
  const row = item.locator('.jp-SandboxItem-header');
  const badge = item.locator('.jp-SandboxItem-badge');
  await expect(row).toBeVisible({ timeout: 60_000 });

  await row.click({ button: 'right' });
  const menu = page.locator('.lm-Menu').last();
  for (const label of ['Pause Sandbox', 'Take Snapshot of Files…', 'Fork Sandbox']) {
    await expect(menu.locator('.lm-Menu-itemLabel', { hasText: label })).toBeVisible();
  }
  await expect(menu.locator('.lm-Menu-itemLabel', { hasText: 'Resume Sandbox' })).toBeHidden();
  await menu.locator('.lm-Menu-itemLabel', { hasText: 'Pause Sandbox' }).click();
  await expect(badge).toHaveAttribute('data-state', 'paused', { timeout: 60_000 });
  await expect(badge).toHaveAttribute('title', /files are kept/);
  expect((await rest(page, 'GET', `sandboxes/${sandbox.id}`)).paused).toBe(true);
  await shot(page, '90-paused-light');

  await row.click({ button: 'right' });
  await expect(menu.locator('.lm-Menu-itemLabel', { hasText: 'Pause Sandbox' })).toBeHidden();
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Resume Sandbox' }).click();
  await expect(badge).toHaveAttribute('data-state', 'running', { timeout: 60_000 });
  const model = await rest(page, 'GET', `sandboxes/${sandbox.id}`);
  expect(model.paused).toBe(false);
  await rest(page, 'DELETE', `sandboxes/${sandbox.id}`);
  expect(browserErrors).toEqual([]);
});
