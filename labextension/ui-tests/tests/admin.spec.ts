/**
 * The panel's "All users' sandboxes" section, as an admin: another user's sandbox is listed
 * with its owner, and stopping it (after the confirm dialog) removes it. Run by
 * tests/test_labextension_admin_ui.py, which starts a server where the browser's user is an
 * admin and makes bob's sandbox (ADMIN_OTHER_ID); skipped in the other runs.
 */
import { expect, test } from '@playwright/test';

import { openLab, openPanel, setTheme, shot, textContrast } from './helpers';

const OTHER_ID = process.env.ADMIN_OTHER_ID;
const OTHER_OWNER = process.env.ADMIN_OTHER_OWNER ?? 'bob';

test.afterEach(async ({ page }) => {
  await setTheme(page, 'JupyterLab Light');
});

test('@admin a user without the admin scope sees no admin section and no error', async ({ page }) => {
  test.skip(!OTHER_ID, 'needs the admin server of tests/test_labextension_admin_ui.py');
  // the test server's identity provider names the user by this header (tests/servers.py HeaderUsers)
  await page.setExtraHTTPHeaders({ 'X-Test-User': OTHER_OWNER });
  const adminProbe = page.waitForResponse(r => r.url().includes('/sandbox/api/admin/sandboxes'));
  await openLab(page);
  const panel = await openPanel(page);
  expect((await adminProbe).status()).toBe(403);
  // the user's own list is there: the panel has loaded and asked
  await expect(panel.locator(`.jp-SandboxItem[data-id="${OTHER_ID}"]`)).toBeVisible();
  await expect(panel.locator('.jp-SandboxAdmin')).toHaveCount(0);
  await expect(panel.getByText("All users' sandboxes")).toHaveCount(0);
  await expect(page.getByText(/All users' sandboxes:/)).toHaveCount(0);
});

test("@admin another user's sandbox in the admin section, stopped from it", async ({ page }) => {
  test.skip(!OTHER_ID, 'needs the admin server of tests/test_labextension_admin_ui.py');
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await openLab(page);
  const panel = await openPanel(page);

  const section = panel.locator('.jp-SandboxAdmin');
  const row = section.locator(`.jp-SandboxAdmin-row[data-id="${OTHER_ID}"]`);
  await expect(panel.getByText("All users' sandboxes")).toBeVisible();
  await expect(row).toBeVisible();
  await expect(row.locator('[data-field="owner"]')).toHaveText(OTHER_OWNER);
  await expect(row.locator('.jp-SandboxItem-badge')).toHaveText('running');
  await expect(row.locator('[data-field="memory"]')).toHaveText(/ \/ \d/);
  await shot(page, '60-admin');
  // the dark theme: the table's text readable on its background (WCAG AA, 4.5)
  await setTheme(page, 'JupyterLab Dark');
  await openLab(page);
  await openPanel(page);
  await expect(row).toBeVisible();
  for (const cell of ['owner', 'memory']) {
    const ratio = await textContrast(row.locator(`[data-field="${cell}"]`));
    console.log(`admin table, dark theme: ${cell} text contrast ${ratio.toFixed(2)}`);
    expect(ratio).toBeGreaterThanOrEqual(4.5);
  }
  await shot(page, '61-admin-dark');

  await row.locator('.jp-SandboxAdmin-stop').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText(`Stop ${await row.getAttribute('data-name')} of ${OTHER_OWNER}?`);
  await dialog.getByRole('button', { name: 'Stop' }).click();
  await expect(row).toHaveCount(0, { timeout: 60_000 });
  expect(browserErrors).toEqual([]);
});
