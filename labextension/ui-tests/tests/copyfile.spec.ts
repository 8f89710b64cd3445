/**
 * Issue 26 (@labcopy): a one-shot row of the Sandboxes panel shows the code it ran with its output
 * and status; a file of a sandbox is copied into the workspace from the panel (a right-click on the
 * file, or the sandbox row's command that asks for the path), listed by the file browser with the
 * same bytes, and an existing file is replaced only when the user says so.
 */
import { expect, Page, test } from '@playwright/test';

import { openLab, openPanel, rest, setTheme, shot, TOKEN, URL } from './helpers';

const AUTH = { Authorization: `token ${TOKEN}` };

/** A workspace file's text through the contents API (what the file browser lists). */
async function workspaceText(page: Page, path: string): Promise<string | null> {
  const response = await page.request.get(`${URL}api/contents/${path}?content=1&type=file&format=text`, {
    headers: AUTH
  });
  return response.status() === 404 ? null : ((await response.json()).content as string);
}

async function removeWorkspaceFile(page: Page, path: string): Promise<void> {
  await page.request.delete(`${URL}api/contents/${path}`, { headers: AUTH });
}

test('@labcopy a one-shot row shows its code, output and status', async ({ page }) => {
  const code = "print('hello from a one-shot')\nanswer = 6 * 7\nanswer";
  const response = await page.request.post(`${URL}sandbox/api/v1/eval`, {
    headers: AUTH,
    data: JSON.stringify({ code }),
    timeout: 120_000
  });
  expect(response.status()).toBe(200);
  const executionId = (await response.json()).execution_id as string;

  for (const theme of ['JupyterLab Light', 'JupyterLab Dark'] as const) {
    await setTheme(page, theme);
    await openLab(page);
    const panel = await openPanel(page);
    const row = panel.locator(`.jp-SandboxOneShot[data-id="${executionId}"]`);
    await expect(row).toContainText('completed', { timeout: 60_000 });
    await row.locator('.jp-SandboxItem-header').click();
    const shown = row.locator('.jp-SandboxLogs-section[data-output="code"] pre');
    await expect(shown).toHaveText(code);
    await expect(row.locator('.jp-SandboxLogs-section[data-output="stdout"] pre')).toHaveText(
      'hello from a one-shot\n'
    );
    await expect(row.locator('.jp-SandboxLogs-section[data-output="result"] pre')).toHaveText('42');
    await expect(row.locator('[data-field="status"]')).toHaveText('completed');
    // in the theme's code font and editor colours, as a cell's input
    const look = await shown.evaluate(el => {
      const style = getComputedStyle(el);
      const root = getComputedStyle(document.body);
      return {
        font: style.fontFamily,
        codeFont: root.getPropertyValue('--jp-code-font-family').trim(),
        background: style.backgroundColor,
        editor: root.getPropertyValue('--jp-cell-editor-background').trim()
      };
    });
    expect(look.font.replace(/\s/g, '')).toBe(look.codeFont.replace(/\s/g, ''));
    expect(look.editor).not.toBe('');
    await shown.scrollIntoViewIfNeeded();
    await shot(page, `90-one-shot-code-${theme.endsWith('Dark') ? 'dark' : 'light'}`);
  }
  await setTheme(page, 'JupyterLab Light');
});

test('@labcopy a file of a sandbox is copied into the workspace from the panel', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await removeWorkspaceFile(page, 'result.csv');
  await removeWorkspaceFile(page, 'summary.txt');
  const sandbox = await rest(page, 'POST', 'sandboxes', { name: 'copy-source' });
  const write = (path: string, text: string) =>
    rest(page, 'POST', `sandboxes/${sandbox.id}/execute`, {
      code: `import os\nos.makedirs(os.path.dirname('${path}') or '.', exist_ok=True)\nopen('${path}', 'w').write(${JSON.stringify(text)})`
    });
  await write('result.csv', 'a,b\n1,2\n');
  await write('out/summary.txt', 'two rows\n');

  await openLab(page);
  const panel = await openPanel(page);
  const item = panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"]`);
  const header = item.locator('.jp-SandboxItem-header');
  await expect(header).toBeVisible({ timeout: 60_000 });
  if ((await header.getAttribute('aria-expanded')) !== 'true') {
    await header.click();
  }
  const entry = item.locator('.jp-SandboxFiles-entry[data-path="result.csv"]');
  await expect(entry).toBeVisible({ timeout: 30_000 });

  // A right-click on the file: copied into the file browser's folder (the root here), same bytes.
  await entry.click({ button: 'right' });
  await shot(page, '91-copy-file-menu-light');
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Copy into the Workspace' }).click();
  await expect.poll(() => workspaceText(page, 'result.csv'), { timeout: 30_000 }).toBe('a,b\n1,2\n');
  await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]').click();
  const listed = page.locator('.jp-DirListing-item .jp-DirListing-itemText', { hasText: /^result\.csv$/ });
  await expect(listed).toBeVisible({ timeout: 30_000 });
  await shot(page, '92-copied-file-light');

  // Again, after the sandbox changed it: a dialog asks first; Cancel keeps the workspace's copy.
  await write('result.csv', 'a,b\n3,4\n');
  await openPanel(page);
  await entry.click({ button: 'right' });
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Copy into the Workspace' }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Replace File?');
  await expect(dialog).toContainText('result.csv is already in the workspace');
  await shot(page, '93-replace-dialog-light');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect(await workspaceText(page, 'result.csv')).toBe('a,b\n1,2\n');
  await entry.click({ button: 'right' });
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Copy into the Workspace' }).click();
  await dialog.getByRole('button', { name: 'Replace' }).click();
  await expect.poll(() => workspaceText(page, 'result.csv'), { timeout: 30_000 }).toBe('a,b\n3,4\n');

  // The row's command asks for the path, offering the sandbox's files (a subfolder's too).
  await header.click({ button: 'right' });
  await page.locator('.lm-Menu-itemLabel', { hasText: 'Copy a File from This Sandbox into the Workspace…' }).click();
  await expect(dialog).toContainText('Copy a File from copy-source into the Workspace');
  const offered = await dialog
    .locator('datalist option')
    .evaluateAll(options => options.map(o => (o as HTMLOptionElement).value));
  expect(offered).toEqual(expect.arrayContaining(['result.csv', 'out/summary.txt']));
  await dialog.locator('input').fill('out/summary.txt');
  await dialog.getByRole('button', { name: 'Copy' }).click();
  await expect.poll(() => workspaceText(page, 'summary.txt'), { timeout: 30_000 }).toBe('two rows\n');

  await removeWorkspaceFile(page, 'result.csv');
  await removeWorkspaceFile(page, 'summary.txt');
  await rest(page, 'DELETE', `sandboxes/${sandbox.id}`);
  expect(browserErrors).toEqual([]);
});
