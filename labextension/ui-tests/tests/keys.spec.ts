/**
 * The panel's "API keys" section (issue 22): a key minted from the panel's toolbar is shown
 * once with its export lines, listed by its prefix, reaches E2B's lifecycle API, and after it is
 * revoked in the panel (with the confirm dialog) that API refuses it. Run by its own test in
 * tests/test_labextension_ui.py (--grep @keys).
 */
import { expect, request, test } from '@playwright/test';

import { openLab, openPanel, setTheme, shot, textContrast, URL } from './helpers';

/** GET E2B's sandbox list with `key` alone: a fresh request context, without the page's login cookie. */
async function e2bList(key: string): Promise<number> {
  const context = await request.newContext();
  try {
    const response = await context.get(`${URL}sandbox/e2b/api/sandboxes`, { headers: { 'X-API-KEY': key } });
    return response.status();
  } finally {
    await context.dispose();
  }
}

test.afterEach(async ({ page }) => {
  await setTheme(page, 'JupyterLab Light');
});

test('@keys mint an API key in the panel, use it with E2B, revoke it', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await setTheme(page, 'JupyterLab Dark');
  await openLab(page);
  const panel = await openPanel(page);
  await expect(panel.getByText('API keys', { exact: true })).toBeVisible();

  // the panel toolbar's key button (it runs the palette's "New API Key" command)
  await panel.getByRole('button', { name: "New API key for E2B's SDKs" }).click();
  const nameDialog = page.locator('.jp-Dialog');
  await expect(nameDialog).toContainText('New API key');
  await nameDialog.locator('input').fill('playwright');
  await nameDialog.getByRole('button', { name: 'Create' }).click();

  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('shown only this once');
  const key = ((await dialog.locator('[data-field="key"]').textContent()) ?? '').trim();
  expect(key.length).toBeGreaterThan(20);
  const exports = (await dialog.locator('[data-field="exports"]').textContent()) ?? '';
  expect(exports.split('\n')).toEqual([
    `export E2B_API_URL=${URL}sandbox/e2b/api`,
    `export E2B_SANDBOX_URL=${URL}sandbox/e2b/plane`,
    `export E2B_API_KEY=${key}`
  ]);
  // the dark theme: the secret readable on its background (WCAG AA, 4.5)
  const ratio = await textContrast(dialog.locator('[data-field="key"]'));
  console.log(`minted key, dark theme: text contrast ${ratio.toFixed(2)}`);
  expect(ratio).toBeGreaterThanOrEqual(4.5);
  await shot(page, '70-key-minted-dark');
  await dialog.getByRole('button', { name: 'Done' }).click();
  await expect(dialog).toHaveCount(0);

  // listed by its prefix and name, never with the secret
  const row = panel.locator('.jp-SandboxKey').filter({ hasText: 'playwright' });
  await expect(row).toHaveCount(1);
  const prefix = (await row.getAttribute('data-prefix')) ?? '';
  expect(prefix.length).toBeGreaterThan(0);
  expect(key.startsWith(prefix)).toBe(true);
  await expect(panel.locator('.jp-SandboxKeys')).not.toContainText(key);

  expect(await e2bList(key)).toBe(200);

  await row.locator('.jp-SandboxKey-revoke').click();
  const confirm = page.locator('.jp-Dialog');
  await expect(confirm).toContainText(`Revoke the API key ${prefix}`);
  await confirm.getByRole('button', { name: 'Revoke' }).click();
  await expect(row).toHaveCount(0);
  await shot(page, '71-key-revoked-dark');

  expect(await e2bList(key)).toBe(401);
  expect(browserErrors).toEqual([]);
});
