/**
 * The panel's "Volumes" section (issue 23): a volume made in the panel is listed with its usage;
 * after a sandbox made with it in the create form writes 8 MiB there, a refresh shows that usage (used of limit, and
 * the bar); it is removed in the panel after the confirm dialog. Run by its own test in
 * tests/test_volumes_ui.py (--grep @volumes).
 */
import { expect, test } from '@playwright/test';

import { openLab, openPanel, rest, sandboxEval, shot } from './helpers';

test('@volumes make a volume in the panel, see its usage, remove it', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await openLab(page);
  const panel = await openPanel(page);
  const section = panel.locator('.jp-SandboxVolumes');
  await expect(panel.getByText('Volumes', { exact: true })).toBeVisible();
  await expect(section).toContainText('No volumes.');

  await section.getByRole('button', { name: 'New volume' }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('New volume');
  await dialog.locator('input[name="name"]').fill('pw-data');
  await dialog.locator('input[name="size"]').fill('32M');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog).toHaveCount(0);

  const row = section.locator('.jp-SandboxVolume[data-name="pw-data"]');
  await expect(row).toHaveCount(1);
  // a fresh ext4 filesystem: a few KiB of its own, out of what 32M holds (less its metadata)
  await expect(row.locator('.jp-SandboxVolume-usage')).toHaveText(/^\d+(\.\d)? KiB of \d+(\.\d)? MiB used$/);

  // a sandbox with the volume, from the panel's create form
  const form = panel.locator('.jp-SandboxCreate-form');
  await form.locator('input[name="name"]').fill('pw-vol-sbx');
  await form.locator('input[name="volume"]').fill('pw-data');
  await form.getByRole('button', { name: 'Create sandbox' }).click();
  await expect(panel.locator('.jp-SandboxItem[data-name="pw-vol-sbx"]')).toHaveCount(1, { timeout: 120_000 });
  await expect
    .poll(async () => (await rest(page, 'GET', 'sandboxes/pw-vol-sbx')).status, { timeout: 120_000 })
    .toBe('running');
  const sandbox = await rest(page, 'GET', 'sandboxes/pw-vol-sbx');
  expect(sandbox.spec.volume).toBe('pw-data');
  // made from the form, its item is open: its details name the volume
  const item = panel.locator('.jp-SandboxItem[data-name="pw-vol-sbx"]');
  await expect(item.locator('[data-field="volume"]')).toHaveText('pw-data');
  try {
    const code = "import os; n = open('/home/user/persist/blob', 'wb').write(b'x' * (8 << 20)); os.sync(); n";
    expect(await sandboxEval(page, sandbox.id, code)).toBe('8388608');
    await panel.getByRole('button', { name: /^Refresh sandboxes/ }).click();
    await expect(row.locator('.jp-SandboxVolume-usage')).toHaveText(/^8(\.\d)? MiB of \d+(\.\d)? MiB used$/);
    expect(Number(await row.locator('meter').getAttribute('value'))).toBeGreaterThanOrEqual(20);
    await expect(row).toHaveAttribute('title', new RegExp(`/home/user/persist .*mounted in ${sandbox.id}`));
    await shot(page, '80-volume-usage');
  } finally {
    await rest(page, 'DELETE', `sandboxes/${sandbox.id}`);
  }

  await panel.getByRole('button', { name: /^Refresh sandboxes/ }).click();
  await row.locator('.jp-SandboxVolume-remove').click();
  const confirm = page.locator('.jp-Dialog');
  await expect(confirm).toContainText('Remove the volume pw-data?');
  await confirm.getByRole('button', { name: 'Remove' }).click();
  await expect(row).toHaveCount(0);
  await expect(section).toContainText('No volumes.');
  expect((await rest(page, 'GET', 'volumes')).map((v: { name: string }) => v.name)).toEqual([]);
  expect(browserErrors).toEqual([]);
});
