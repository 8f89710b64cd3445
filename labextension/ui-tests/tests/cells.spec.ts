/**
 * Sandbox cells stay sandbox cells: "Run cell in sandbox" marks a cell, then Run All (Run
 * menu) runs it in the sandbox and never in the kernel; its count stays apart from the
 * kernel's; removing the mark makes it a kernel cell again; the notebook's Stop button
 * interrupts a sandbox cell that sleeps.
 */
import { expect, test } from '@playwright/test';

import { notebookSandbox, openLab, palette, rest, sandboxEval, shot } from './helpers';

test('a marked cell runs in the sandbox however it is run, and Stop interrupts it', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await openLab(page, 'cells.ipynb');
  const cells = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
  await expect(cells).toHaveCount(2);
  const name = await notebookSandbox(page);

  // "Run cell in sandbox" on cell 0 marks it (metadata, border, badge) and runs it there.
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Control+Alt+Enter');
  await expect(cells.nth(0)).toHaveClass(/jp-SandboxCell/);
  await expect(cells.nth(0).locator('.jp-SandboxCell-badge')).toHaveText('sandbox [1]', { timeout: 120_000 });

  // The Run menu has the sandbox commands; Run All runs cell 0 in the sandbox, cell 1 in the kernel.
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
  for (const label of ['Run Cell in Sandbox', 'Run All Cells in Sandbox', 'Remove Sandbox Mark']) {
    await expect(page.locator('.lm-Menu-itemLabel', { hasText: label })).toBeVisible();
  }
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
  await expect(cells.nth(1).locator('.jp-OutputArea-output')).toHaveText('local kernel has in_sandbox: False', {
    timeout: 60_000
  });
  await expect(cells.nth(0).locator('.jp-SandboxCell-badge')).toHaveText('sandbox [2]');
  // the kernel ran only cell 1, once: its count is 1, and the sandbox cell shows none of the kernel's
  await expect(cells.nth(1).locator('.jp-InputArea-prompt')).toHaveText('[1]:');
  await expect(cells.nth(0).locator('.jp-InputArea-prompt')).toHaveText('[ ]:');
  expect(await sandboxEval(page, name, 'in_sandbox')).toBe("'yes, in the sandbox'");
  await shot(page, '20-run-all-marked');

  // Removing the mark makes it a kernel cell again: now the kernel gets the variable.
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await palette(page, 'Remove Sandbox Mark');
  await expect(cells.nth(0)).not.toHaveClass(/jp-SandboxCell/);
  await expect(cells.nth(0).locator('.jp-SandboxCell-badge')).toHaveCount(0);
  await cells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.press('Shift+Enter');
  await expect(cells.nth(1).locator('.jp-OutputArea-output')).toHaveText('local kernel has in_sandbox: True', {
    timeout: 60_000
  });

  // Stop: a sandbox cell sleeping 600 s is interrupted by the notebook's own Stop button.
  await openLab(page, 'stop.ipynb');
  const stopCells = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
  const stopSandbox = await notebookSandbox(page);
  await stopCells.nth(0).locator('.jp-InputArea-prompt').click();
  await page.keyboard.press('Control+Alt+Enter');
  await expect(stopCells.nth(0).locator('.jp-OutputArea-output')).toContainText('sleeping', { timeout: 120_000 });
  await expect(stopCells.nth(0).locator('.jp-InputArea-prompt')).toHaveText('[*]:');
  const busy = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-SandboxBusy');
  await expect(busy).toHaveText('Sandbox busy');
  await shot(page, '21-sandbox-cell-running');
  const stopped = Date.now();
  await page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) [data-jp-item-name="interrupt"]').click();
  await expect(stopCells.nth(0).locator('.jp-OutputArea-output', { hasText: 'KeyboardInterrupt' })).toHaveCount(1, {
    timeout: 60_000
  });
  console.log(`Stop -> KeyboardInterrupt in the sandbox cell: ${Date.now() - stopped} ms`);
  await expect(busy).toHaveText('Sandbox idle');
  await expect(stopCells.nth(0).locator('.jp-SandboxCell-badge')).toHaveText('sandbox [1]');
  await shot(page, '22-stopped');

  for (const sandbox of [name, stopSandbox]) {
    await rest(page, 'DELETE', `sandboxes/${sandbox}`);
  }
  expect(browserErrors).toEqual([]);
});
