/**
 * Issue 26, JupyterLab's own places for sandboxes: the Running panel lists them beside kernels and
 * terminals (open, remove one, Shut Down All); a right-click on a sandbox row of the Sandboxes panel
 * opens its logs in a main-area tab; a `%%sandbox` sandbox is named by its notebook, also after a
 * rename, with its id in the tooltip. (The confirmation on a kernel's ×, and the restart it then
 * offers, are in kernel.spec.ts.) Screenshots in light and dark.
 */
import { expect, Page, test } from '@playwright/test';

import { notebookSandbox, openLab, openPanel, rest, setTheme, shot } from './helpers';

test.afterEach(async ({ page }) => {
  await setTheme(page, 'JupyterLab Light');
  for (const sandbox of await rest(page, 'GET', 'sandboxes')) {
    if (sandbox.kind === 'sandbox') {
      await rest(page, 'DELETE', `sandboxes/${sandbox.id}`);
    }
  }
});

async function openRunning(page: Page) {
  const running = page.locator('#jp-running-sessions');
  if (!(await running.isVisible())) {
    await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jp-running-sessions"]').click();
  }
  await expect(running).toBeVisible();
  return running;
}

test('@labrun the Running panel lists sandboxes, opens and removes them, and shuts them all down', async ({ page }) => {
  test.setTimeout(480_000); // three sandboxes and two reloads, on a loaded machine
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  const alpha = await rest(page, 'POST', 'sandboxes', { name: 'run-alpha' });
  const beta = await rest(page, 'POST', 'sandboxes', { name: 'run-beta' });
  const gamma = await rest(page, 'POST', 'sandboxes', { name: 'run-gamma' });
  await openLab(page);
  const running = await openRunning(page);

  const item = (id: string) =>
    running.locator('.jp-SandboxRunningItem').filter({ has: page.locator(`[title*="Id: ${id}"]`) });
  for (const s of [alpha, beta, gamma]) {
    await expect(item(s.id).locator('.jp-RunningSessions-itemLabel')).toHaveText(s.name, { timeout: 60_000 });
  }
  // the id and state are the detail, in the tooltip
  await expect(item(alpha.id).locator('.jp-RunningSessions-itemLabel')).toHaveAttribute(
    'title',
    `Sandbox run-alpha\nId: ${alpha.id}\nStatus: running`
  );
  await expect(item(alpha.id).locator('.jp-RunningSessions-itemDetail')).toHaveText('running');
  await shot(page, '80-running-light');
  await setTheme(page, 'JupyterLab Dark');
  await openLab(page);
  await openRunning(page);
  await expect(item(alpha.id)).toBeVisible({ timeout: 60_000 });
  await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
  await shot(page, '80-running-dark');
  await setTheme(page, 'JupyterLab Light');
  await openLab(page);
  await openRunning(page);

  // Opening an item shows it in the Sandboxes panel, expanded.
  await item(alpha.id).locator('.jp-RunningSessions-itemLabel').click();
  const panel = page.locator('#jupyter-sandbox-panel');
  await expect(panel.locator(`.jp-SandboxItem[data-id="${alpha.id}"]`)).toHaveClass(/jp-mod-expanded/);
  await openRunning(page);

  // Its shut-down button removes just that sandbox.
  // (JupyterLab shows it on hover)
  await item(alpha.id).hover();
  await item(alpha.id).locator('.jp-RunningSessions-itemShutdown').click();
  await expect(item(alpha.id)).toHaveCount(0, { timeout: 60_000 });
  await expect
    .poll(async () => (await rest(page, 'GET', 'sandboxes')).map((s: { name: string }) => s.name).sort())
    .toEqual(['run-beta', 'run-gamma']);

  // "Shut Down All" asks (JupyterLab's own dialog), then removes the rest.
  // (in the section's title bar, as for kernels and terminals)
  const title = running.locator('.lm-AccordionPanel-title', { hasText: 'Sandboxes' });
  await title.locator('.jp-RunningSessions-shutdownAll').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Remove all your sandboxes?');
  await expect(dialog.locator('.jp-mod-accept')).toHaveText('Shut Down All');
  await dialog.locator('.jp-mod-accept').click();
  await expect(running.locator('.jp-SandboxRunningItem')).toHaveCount(0, { timeout: 60_000 });
  await expect.poll(async () => (await rest(page, 'GET', 'sandboxes')).length, { timeout: 60_000 }).toBe(0);
  expect(browserErrors).toEqual([]);
});

test('@labrun a right-click on a sandbox row opens its logs in a main-area tab', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  const sandbox = await rest(page, 'POST', 'sandboxes', { name: 'menu-logs' });
  await rest(page, 'POST', `sandboxes/${sandbox.id}/execute`, { code: "print('hello from the logs test')" });
  await openLab(page);
  const panel = await openPanel(page);
  const row = panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"] .jp-SandboxItem-header`);
  await expect(row).toBeVisible({ timeout: 60_000 });

  await row.click({ button: 'right' });
  const menu = page.locator('.lm-Menu.lm-MenuBar-menu, .lm-Menu').last();
  for (const label of [
    'Show Sandbox Logs',
    'Copy Sandbox Id',
    'Interrupt Sandbox',
    'Restart Sandbox',
    'Upload Files to Sandbox…',
    'Remove Sandbox'
  ]) {
    await expect(menu.locator('.lm-Menu-itemLabel', { hasText: label })).toBeVisible();
  }
  await shot(page, '81-row-menu-light');
  await menu.locator('.lm-Menu-itemLabel', { hasText: 'Show Sandbox Logs' }).click();

  const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current');
  await expect(tab).toContainText('Logs: menu-logs');
  const view = page.locator(`#jupyter-sandbox-logs-${sandbox.id}`);
  const kernelLog = view.locator('.jp-SandboxLogs-section[data-log^="kernel-"] pre');
  await expect(kernelLog).toBeVisible({ timeout: 30_000 });
  const logs = await rest(page, 'GET', `sandboxes/${sandbox.id}/logs`);
  expect(await kernelLog.textContent()).toBe(logs.contexts[0].kernel_log || '(empty)');
  // It fetches again by itself: the time it says it fetched at moves on.
  const meta = view.locator('.jp-SandboxLogsView-meta');
  const first = await meta.textContent();
  await expect.poll(async () => meta.textContent(), { timeout: 30_000 }).not.toBe(first);
  await shot(page, '82-logs-tab-light');
  await setTheme(page, 'JupyterLab Dark');
  await openLab(page);
  await openPanel(page);
  await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
  await row.click({ button: 'right' });
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Show Sandbox Logs' }).click();
  await expect(page.locator(`#jupyter-sandbox-logs-${sandbox.id} .jp-SandboxLogs-section`).first()).toBeVisible({
    timeout: 30_000
  });
  await shot(page, '82-logs-tab-dark');

  // Remove from the same menu: gone from the panel and the server.
  await row.click({ button: 'right' });
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Remove Sandbox' }).click();
  await expect(panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"]`)).toHaveCount(0, { timeout: 60_000 });
  expect(browserErrors).toEqual([]);
});

test("@labrun a notebook's %%sandbox sandbox is named by the notebook, also after a rename", async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await openLab(page, 'labrun.ipynb');
  const name = await notebookSandbox(page);
  const cells = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.press('Shift+Enter');
  await expect(cells.nth(1).locator('.jp-OutputArea-output')).toHaveText('in the sandbox', { timeout: 120_000 });

  const [sandbox] = (await rest(page, 'GET', 'sandboxes')).filter((s: { name: string }) => s.name === name);
  expect(sandbox.notebook_path).toBe('labrun.ipynb');
  const panel = await openPanel(page);
  const label = panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"] .jp-SandboxItem-label`);
  await expect(label).toHaveText('labrun.ipynb', { timeout: 60_000 });
  await expect(label).toHaveAttribute('title', new RegExp(`sandbox ${name} of labrun\\.ipynb \\(${sandbox.id}\\)`));

  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^File$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Rename Notebook…' }).click();
  await page.locator('.jp-Dialog input').fill('a-much-longer-name-for-the-analysis-notebook.ipynb');
  await page.keyboard.press('Enter');
  await expect(label).toHaveText('a-much-longer-name-for-the-analysis-notebook.ipynb', { timeout: 60_000 });
  // cut off in the narrow side bar, but its whole name and the id are in the tooltip
  await expect(label).toHaveAttribute('title', /^a-much-longer-name-for-the-analysis-notebook\.ipynb: /);
  await expect
    .poll(async () => (await rest(page, 'GET', `sandboxes/${sandbox.id}`)).notebook_path)
    .toBe('a-much-longer-name-for-the-analysis-notebook.ipynb');
  await shot(page, '83-named-by-notebook-light');
  expect(browserErrors).toEqual([]);
});
