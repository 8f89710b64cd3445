/**
 * The panel as issue 15 asks to see it: two sandboxes, one expanded to its files, in the
 * light and dark themes, with the state badge's contrast computed from the rendered
 * colours; a sandbox created through the REST API appears without a refresh click; a 5 MB
 * upload through the panel reads back inside the sandbox with the same checksum; the log
 * view shows the kernel's log.
 */
import { expect, test } from '@playwright/test';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { ARTIFACTS, openLab, openPanel, rest, sandboxEval, setSettings, setTheme, shot, textContrast } from './helpers';

test.afterEach(async ({ page }) => {
  // leave the theme and the settings as the other specs expect them
  await setTheme(page, 'JupyterLab Light');
  await setSettings(page, {});
});

test('two sandboxes in light and dark, live appearance, upload, logs', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  // Stats would be polled only every 10 minutes: a sandbox that shows up sooner came by event.
  await setSettings(page, { refreshInterval: 600 });
  await setTheme(page, 'JupyterLab Light');

  const alpha = await rest(page, 'POST', 'sandboxes', { name: 'alpha' });
  await sandboxEval(
    page,
    'alpha',
    "import os\nos.makedirs('results', exist_ok=True)\nopen('results/table.csv', 'w').write('a,b\\n1,2\\n')\nopen('notes.txt', 'w').write('hello')"
  );
  await openLab(page);
  const panel = await openPanel(page);
  const item = (name: string) => panel.locator(`.jp-SandboxItem[data-name="${name}"]`);
  await expect(item('alpha')).toHaveAttribute('data-status', 'running');

  // Created through REST while the panel is open: shown without a refresh click.
  // (the POST answers once the sandbox runs; its "created" and "status" events come before)
  const beta = await rest(page, 'POST', 'sandboxes', { name: 'beta', memory: '256M' });
  const created = Date.now();
  await expect(item('beta')).toHaveAttribute('data-status', 'running', { timeout: 30_000 });
  const shownAfter = Date.now() - created;
  console.log(`beta created through REST: shown running in the panel ${shownAfter} ms after the POST answered`);
  expect(shownAfter).toBeLessThan(1000);

  // alpha expanded to its files, both themes; the badge's contrast from rendered colours.
  await item('alpha').locator('.jp-SandboxItem-header').click();
  await item('alpha').locator('.jp-SandboxFiles-entry[data-path="results"]').click();
  await expect(item('alpha').locator('.jp-SandboxFiles-entry[data-path="results/table.csv"]')).toBeVisible();
  await panel.getByRole('button', { name: 'Refresh sandboxes, stats and one-shot executions' }).click();
  await expect(item('alpha').locator('[data-field="memory"]')).toHaveText(/\d.* \/ /);
  const contrasts: { [theme: string]: number[] } = {};
  for (const theme of ['JupyterLab Light', 'JupyterLab Dark'] as const) {
    if (theme === 'JupyterLab Dark') {
      await setTheme(page, theme);
      await openLab(page);
      await openPanel(page);
      await item('alpha').locator('.jp-SandboxItem-header').click();
      await item('alpha').locator('.jp-SandboxFiles-entry[data-path="results"]').click();
      await expect(item('alpha').locator('.jp-SandboxFiles-entry[data-path="results/table.csv"]')).toBeVisible();
      await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
      await panel.getByRole('button', { name: 'Refresh sandboxes, stats and one-shot executions' }).click();
      await expect(item('alpha').locator('[data-field="memory"]')).toHaveText(/\d.* \/ /);
    }
    const texts = [
      item('alpha').locator('.jp-SandboxItem-badge'),
      item('beta').locator('.jp-SandboxItem-badge'),
      item('alpha').locator('.jp-SandboxItem-label'),
      item('alpha').locator('.jp-SandboxItem-detail'),
      item('alpha').locator('.jp-SandboxFiles-name').first(),
      item('alpha').locator('.jp-SandboxItem-details dt').first()
    ];
    contrasts[theme] = [];
    for (const text of texts) {
      contrasts[theme].push(await textContrast(text));
    }
    const slug = theme === 'JupyterLab Light' ? 'light' : 'dark';
    await panel.screenshot({ path: path.join(ARTIFACTS, `labextension-panel-${slug}.png`) });
    await shot(page, `10-panel-${slug}`);
  }
  console.log(
    `contrast (badge alpha, badge beta, label, uptime, file name, detail label): ${JSON.stringify(contrasts)}`
  );
  for (const ratios of Object.values(contrasts)) {
    for (const ratio of ratios) {
      expect(ratio).toBeGreaterThanOrEqual(4.5);
    }
  }

  // Upload 5 MB through the panel: progress shown, the same bytes inside the sandbox.
  const data = randomBytes(5 * 1024 * 1024);
  const file = path.join(ARTIFACTS, 'upload-5MB.bin');
  fs.writeFileSync(file, data);
  const [chooser] = await Promise.all([
    page.waitForEvent('filechooser'),
    item('alpha').getByRole('button', { name: 'Upload' }).click()
  ]);
  await chooser.setFiles(file);
  await expect(page.getByText('Uploaded upload-5MB.bin to alpha').first()).toBeVisible({ timeout: 120_000 });
  await expect(item('alpha').locator('.jp-SandboxFiles-entry[data-path="upload-5MB.bin"]')).toContainText('5 MiB');
  const digest = await sandboxEval(
    page,
    'alpha',
    "import hashlib\nhashlib.sha256(open('upload-5MB.bin', 'rb').read()).hexdigest()"
  );
  expect(digest).toBe(`'${createHash('sha256').update(data).digest('hex')}'`);
  fs.unlinkSync(file);

  // The log view shows the kernel's log (what GET logs returns for its context).
  await sandboxEval(page, 'alpha', "import os\nos.write(2, b'a line for the kernel log\\n')");
  await item('alpha').getByRole('button', { name: 'Logs' }).click();
  const kernelLog = item('alpha').locator('.jp-SandboxLogs-section[data-log^="kernel-"] pre');
  await expect(kernelLog).toContainText('--existing /tmp/.jsbx/ipc/k-'); // the launcher keeps it in the sandbox
  await expect(kernelLog).toContainText('a line for the kernel log');
  const logs = await rest(page, 'GET', `sandboxes/${alpha.id}/logs`);
  expect(await kernelLog.textContent()).toBe(logs.contexts[0].kernel_log);
  await kernelLog.scrollIntoViewIfNeeded();
  await shot(page, '11-logs');

  // Removed through REST: gone from the panel without a click either.
  await rest(page, 'DELETE', `sandboxes/${alpha.id}`);
  await rest(page, 'DELETE', `sandboxes/${beta.id}`);
  await expect(panel.locator('.jp-SandboxItem')).toHaveCount(0, { timeout: 5_000 });
  expect(browserErrors).toEqual([]);
});
