/**
 * Removing a sandbox that a notebook's kernel lives in leaves every page with that notebook in a
 * clear state (issue 26), tagged @removal and run by tests/test_labextension_deaths.py, which writes
 * removal.ipynb (on "Python 3 (sandboxed)"). Page A and page B (another browser window, with its
 * own cookies and workspace) open it: one session, one kernel, one sandbox. B, in JupyterLab Dark,
 * asks to remove the sandbox and cancels; A, in the light theme, removes it. Both notebooks then
 * have no kernel and show the dialog offering a new one: A's because it removed the sandbox, B's
 * from the user's sandbox events. B takes it, and a cell runs again in a new sandbox. A sandbox
 * removed outside JupyterLab (DELETE, as the CLI and the admin panel do) is offered the same way;
 * one whose kernel the page shuts down itself (Shut Down Kernel) is offered nothing.
 * Screenshots of the confirmation and of the restart dialog, in the light and the dark theme.
 */
import { expect, Page, test } from '@playwright/test';

import { openPanel, palette, rest, setTheme, shot, textContrast, TOKEN, URL } from './helpers';

const NOTEBOOK = 'removal.ipynb';
const KERNEL = 'Python 3 (sandboxed)';

async function openNotebook(page: Page): Promise<void> {
  await page.goto(`${URL}lab/tree/${NOTEBOOK}?reset&token=${TOKEN}`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
  // a cell run before the session has a kernel is dropped: wait until it is idle
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: `${KERNEL} | Idle` })).toBeVisible({
    timeout: 180_000
  });
}

/** Run cell `index` of the notebook; its output area. */
async function run(page: Page, index: number) {
  const cell = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell').nth(index);
  await cell.locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Shift+Enter');
  return cell.locator('.jp-OutputArea-output');
}

/** The × of the kernel's sandbox in the Sandboxes panel. */
async function removeButton(page: Page, sandboxId: string) {
  const panel = await openPanel(page);
  const item = panel.locator(`.jp-SandboxItem[data-id="${sandboxId}"]`);
  await expect(item).toHaveAttribute('data-status', 'running', { timeout: 60_000 });
  return item.getByRole('button', { name: /^Shut down the notebook kernel of / });
}

async function kernelSandboxes(page: Page) {
  return (await rest(page, 'GET', 'sandboxes')).filter((s: { kind: string }) => s.kind === 'kernel');
}

test.afterEach(async ({ page }) => {
  await setTheme(page, 'JupyterLab Light');
  for (const sandbox of await kernelSandboxes(page)) {
    await page.request.delete(`${URL}api/kernels/${sandbox.kernel_id}`, {
      headers: { Authorization: `token ${TOKEN}` }
    });
  }
});

test('@removal removing a kernel’s sandbox in one page offers a restart in every page with its notebook', async ({
  page,
  browser
}) => {
  test.setTimeout(600_000);
  const errors: string[] = [];
  page.on('pageerror', error => errors.push(`A: ${error}`));
  await openNotebook(page);
  await expect(await run(page, 0)).toHaveText(/^ready in sandbox\s*$/, { timeout: 120_000 });
  const [sandbox] = await kernelSandboxes(page);
  expect(sandbox?.kernel_id).toBeTruthy();

  // Page B: another window on the same notebook, so on the same kernel (it sees A's variable).
  const other = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const pageB = await other.newPage();
  pageB.on('pageerror', error => errors.push(`B: ${error}`));
  try {
    await openNotebook(pageB);
    await expect(await run(pageB, 1)).toHaveText(/^42\s*$/, { timeout: 120_000 });
    await palette(pageB, 'Use Theme: JupyterLab Dark');
    await expect(pageB.locator('body')).toHaveAttribute('data-jp-theme-light', 'false', { timeout: 30_000 });

    // B asks to remove the sandbox (the confirmation, dark and readable) and cancels: nothing goes.
    const dialogB = pageB.locator('.jp-Dialog');
    await (await removeButton(pageB, sandbox.id)).click();
    await expect(dialogB).toContainText('Remove the kernel’s sandbox?');
    await expect(dialogB).toContainText(NOTEBOOK);
    console.log(`confirmation, dark: contrast ${(await textContrast(dialogB.locator('.jp-Dialog-body'))).toFixed(1)}`);
    expect(await textContrast(dialogB.locator('.jp-Dialog-body'))).toBeGreaterThanOrEqual(4.5);
    await shot(pageB, '90-confirm-remove-dark');
    await dialogB.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialogB).toHaveCount(0);

    // A removes it (the confirmation in the light theme).
    const dialogA = page.locator('.jp-Dialog');
    await (await removeButton(page, sandbox.id)).click();
    await expect(dialogA).toContainText('Remove the kernel’s sandbox?');
    await shot(page, '90-confirm-remove-light');
    await dialogA.getByRole('button', { name: 'Remove' }).click();
    await expect.poll(async () => (await kernelSandboxes(page)).length, { timeout: 60_000 }).toBe(0);

    // Each page: no kernel, and one dialog offering a new one (B's: from the user's sandbox events).
    for (const [p, dialog] of [
      [page, dialogA],
      [pageB, dialogB]
    ] as const) {
      await expect(dialog).toContainText('Kernel shut down', { timeout: 60_000 });
      await expect(dialog).toContainText(`The sandbox of ${NOTEBOOK} was removed`);
      await expect(dialog).toHaveCount(1);
      await expect(p.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName')).toHaveText('No Kernel');
    }
    await shot(page, '91-offer-restart-light');
    console.log(`restart offer, dark: contrast ${(await textContrast(dialogB.locator('.jp-Dialog-body'))).toFixed(1)}`);
    expect(await textContrast(dialogB.locator('.jp-Dialog-body'))).toBeGreaterThanOrEqual(4.5);
    await shot(pageB, '91-offer-restart-other-page-dark');

    // A lets it be; B takes a new kernel: a new sandbox, fresh variables.
    await dialogA.getByRole('button', { name: 'Not Now' }).click();
    await dialogB.getByRole('button', { name: 'Restart Kernel' }).click();
    await expect(pageB.locator('.jp-StatusBar-TextItem', { hasText: `${KERNEL} | Idle` })).toBeVisible({
      timeout: 180_000
    });
    await expect(await run(pageB, 2)).toHaveText(/^False\s*$/, { timeout: 120_000 });
    const again = await kernelSandboxes(page);
    expect(again).toHaveLength(1);
    expect(again[0].id).not.toBe(sandbox.id);
    // and no other dialog came up on either page (JupyterLab's "Kernel Restarting", say)
    await expect(dialogA).toHaveCount(0);
    await expect(dialogB).toHaveCount(0);
    expect(errors).toEqual([]);
  } finally {
    await other.close();
  }
});

test('@removal a kernel’s sandbox removed outside JupyterLab (the CLI, an admin) offers a restart, and only that', async ({
  page
}) => {
  const errors: string[] = [];
  page.on('pageerror', error => errors.push(String(error)));
  await openNotebook(page);
  await expect(await run(page, 0)).toHaveText(/^ready in sandbox\s*$/, { timeout: 120_000 });
  const [sandbox] = await kernelSandboxes(page);

  // what `jupyter sandbox rm` and the admin panel do: DELETE the sandbox, not the kernel
  await rest(page, 'DELETE', `sandboxes/${sandbox.id}`);
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Kernel shut down', { timeout: 60_000 });
  await expect(dialog).toContainText(`The sandbox of ${NOTEBOOK} was removed`);
  await expect(dialog).toHaveCount(1);
  await expect(page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName')).toHaveText('No Kernel');
  await dialog.getByRole('button', { name: 'Restart Kernel' }).click();
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: `${KERNEL} | Idle` })).toBeVisible({
    timeout: 180_000
  });
  await expect(await run(page, 2)).toHaveText(/^False\s*$/, { timeout: 120_000 });
  // no second dialog (JupyterLab's "Kernel Restarting" or "Error Starting Kernel" for the old kernel)
  await expect(dialog).toHaveCount(0);
  const again = await kernelSandboxes(page);
  expect(again).toHaveLength(1);
  expect(again[0].id).not.toBe(sandbox.id);

  // The page's own Shut Down Kernel takes the sandbox too: that is no surprise, nothing is offered.
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Kernel$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Shut Down Kernel$/ }).click(); // (it does not ask)
  await expect.poll(async () => (await kernelSandboxes(page)).length, { timeout: 60_000 }).toBe(0);
  await expect(page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName')).toHaveText('No Kernel');
  await page.waitForTimeout(5000); // the removal's event has come by then (it came within a second above)
  await expect(dialog).toHaveCount(0);
  expect(errors).toEqual([]);
});
