/**
 * Issue 26 (@labterm; tests/test_labextension_term.py runs these): a terminal in a sandbox (JupyterLab's
 * terminal widget, a shell in the container) that runs `ls`; in a "Python 3 (sandboxed)" notebook,
 * "Run cell in sandbox" and the terminal use the kernel's own sandbox (the same files, no second
 * container) and the status bar names it; an ipywidgets slider in such a notebook is a widget that
 * moves. The notebooks are written by the pytest fixture: TERM_KERNEL_NOTEBOOK, TERM_WIDGET_NOTEBOOK.
 */
import { expect, Locator, Page, test } from '@playwright/test';

import { openLab, openPanel, palette, rest, sandboxEval, setTheme, shot, TOKEN, URL } from './helpers';

const AUTH = { Authorization: `token ${TOKEN}` };

/** Show the terminal's text in the page (xterm's screen-reader rows): a JupyterLab terminal setting. */
async function terminalTextInDom(page: Page): Promise<void> {
  const response = await page.request.put(`${URL}lab/api/settings/@jupyterlab/terminal-extension:plugin`, {
    headers: AUTH,
    data: JSON.stringify({ raw: JSON.stringify({ screenReaderMode: true }) })
  });
  expect(response.status()).toBeLessThan(300);
}

/** Type a command line into the terminal tab and wait for `expected` on its screen. */
async function runInTerminal(page: Page, terminal: Locator, line: string, expected: string | RegExp): Promise<void> {
  await terminal.locator('.xterm').click();
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
  await expect(terminal.locator('.xterm-accessibility-tree')).toContainText(expected, { timeout: 60_000 });
}

async function terminalCommands(page: Page, sandbox: string): Promise<unknown[]> {
  const commands = (await rest(page, 'GET', `sandboxes/${sandbox}/commands`)) as { tag: string | null }[];
  return commands.filter(c => c.tag === 'terminal');
}

async function killKernels(page: Page): Promise<void> {
  for (const sandbox of await rest(page, 'GET', 'sandboxes')) {
    if (sandbox.kind === 'kernel' && sandbox.kernel_id) {
      await page.request.delete(`${URL}api/kernels/${sandbox.kernel_id}`, { headers: AUTH });
    }
  }
}

/** Open a notebook on "Python 3 (sandboxed)" and wait until its kernel is idle. */
async function openSandboxedNotebook(page: Page, notebook: string): Promise<Locator> {
  await page.goto(`${URL}lab/tree/${notebook}?reset&token=${TOKEN}`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: 'Python 3 (sandboxed) | Idle' })).toBeVisible({
    timeout: 120_000
  });
  return page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');
}

test.afterEach(async ({ page }) => {
  await setTheme(page, 'JupyterLab Light');
  await killKernels(page);
  await page.request.delete(`${URL}sandbox/api/sandboxes/term-ui`, { headers: AUTH });
});

test('@labterm a terminal in a sandbox runs ls, in light and dark, and ends with its tab', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  const sandbox = await rest(page, 'POST', 'sandboxes', { name: 'term-ui' });
  await sandboxEval(page, 'term-ui', "open('made-in-the-sandbox.txt', 'w').write('x')");
  await terminalTextInDom(page);

  for (const theme of ['JupyterLab Light', 'JupyterLab Dark'] as const) {
    await setTheme(page, theme);
    await openLab(page);
    const panel = await openPanel(page);
    const item = panel.locator(`.jp-SandboxItem[data-id="${sandbox.id}"]`);
    await item.locator('.jp-SandboxItem-header').click();
    await item.locator('.jp-SandboxItem-actions').getByRole('button', { name: 'Terminal' }).click();

    const terminal = page.locator('.jp-SandboxTerminal:not(.lm-mod-hidden)');
    await expect(terminal.locator('.jp-Terminal')).toBeVisible({ timeout: 60_000 });
    await expect(page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')).toContainText('Terminal: term-ui');
    // the shell runs in the sandbox: its files, its hostname, not root
    await runInTerminal(page, terminal, 'ls; echo "on $(hostname) as uid $(id -u)"', /on sandbox as uid [1-9]/);
    await expect(terminal.locator('.xterm-accessibility-tree')).toContainText('made-in-the-sandbox.txt');
    // JupyterLab's terminal follows the theme ("inherit"): the dark theme paints it dark
    const background = await terminal.locator('.xterm-viewport').evaluate(el => getComputedStyle(el).backgroundColor);
    const [r, g, b] = (background.match(/\d+/g) ?? []).map(Number);
    expect(theme === 'JupyterLab Dark' ? r + g + b < 200 : r + g + b > 600, `${theme}: ${background}`).toBe(true);
    await shot(page, `60-terminal-${theme === 'JupyterLab Dark' ? 'dark' : 'light'}`);
    expect(await terminalCommands(page, 'term-ui')).toHaveLength(1);

    // closing the tab hangs the shell up
    await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon').click();
    await expect(terminal).toHaveCount(0);
    await expect.poll(() => terminalCommands(page, 'term-ui'), { timeout: 30_000 }).toHaveLength(0);
  }
  expect(browserErrors).toEqual([]);
});

test('@labterm run-in-sandbox in a sandboxed-kernel notebook uses the kernel sandbox', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  await terminalTextInDom(page);
  const notebook = await openSandboxedNotebook(page, process.env.TERM_KERNEL_NOTEBOOK!);

  // the status bar names the kernel's sandbox, running (not "not created")
  const kernels = (await rest(page, 'GET', 'sandboxes')).filter((s: { kind: string }) => s.kind === 'kernel');
  expect(kernels).toHaveLength(1);
  const status = page.locator('.jp-SandboxStatus');
  await expect(status).toHaveText(`Sandbox: ${kernels[0].name} · running`, { timeout: 60_000 });
  expect(kernels[0].name).toBe(`kernel-${kernels[0].kernel_id}`);

  // cell 1 in the kernel writes a file; cell 2 "in the sandbox" (Ctrl+Alt+Enter) reads it there
  const cells = notebook.locator('.jp-CodeCell');
  await cells.nth(0).locator('.cm-content').click();
  await page.keyboard.press('Shift+Enter');
  await expect(cells.nth(0).locator('.jp-InputArea-prompt')).toHaveText('[1]:', { timeout: 120_000 });
  await cells.nth(1).locator('.cm-content').click();
  await page.keyboard.press('Control+Alt+Enter');
  await expect(cells.nth(1).locator('.jp-OutputArea-output')).toHaveText(/^sandbox: written by the kernel\s*$/, {
    timeout: 120_000
  });
  await expect(cells.nth(1)).toHaveClass(/jp-SandboxCell/);
  await shot(page, '61-run-in-kernel-sandbox');

  // no second container: the kernel's sandbox is the only one
  const all = await rest(page, 'GET', 'sandboxes');
  expect(all.map((s: { name: string }) => s.name)).toEqual([kernels[0].name]);

  // the palette's terminal opens in the same sandbox: the kernel's file is there
  await palette(page, "Open a Terminal in This Notebook's Sandbox");
  const terminal = page.locator('.jp-SandboxTerminal:not(.lm-mod-hidden)');
  await runInTerminal(page, terminal, 'cat kernel-file.txt; echo', 'written by the kernel');
  await shot(page, '62-terminal-in-kernel-sandbox');
  expect(browserErrors).toEqual([]);
});

test('@labterm an ipywidgets slider in a sandboxed-kernel notebook is a widget that moves', async ({ page }) => {
  const browserErrors: string[] = [];
  page.on('pageerror', error => browserErrors.push(String(error)));
  for (const theme of ['JupyterLab Light', 'JupyterLab Dark'] as const) {
    await setTheme(page, theme);
    const notebook = await openSandboxedNotebook(page, process.env.TERM_WIDGET_NOTEBOOK!);
    const cells = notebook.locator('.jp-CodeCell');
    await cells.nth(0).locator('.cm-content').click();
    await page.keyboard.press('Shift+Enter');
    const slider = cells.nth(0).locator('.jp-OutputArea-output .widget-slider');
    await expect(slider).toBeVisible({ timeout: 120_000 });
    await expect(cells.nth(0).locator('.jp-OutputArea-output')).not.toContainText('IntSlider(');
    const readout = slider.locator('.widget-readout');
    await expect(readout).toHaveText('3');

    // the keyboard moves it (the slider's handle takes focus, as a user tabs to it)
    await slider.locator('.noUi-handle').focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await expect(readout).toHaveText('5');
    // the kernel sees the new value
    await cells.nth(1).locator('.cm-content').click();
    await page.keyboard.press('Shift+Enter');
    await expect(cells.nth(1).locator('.jp-OutputArea-output')).toHaveText(/^value 5\s*$/, { timeout: 60_000 });
    await shot(page, `63-widget-slider-${theme === 'JupyterLab Dark' ? 'dark' : 'light'}`);
    await killKernels(page);
  }
  expect(browserErrors).toEqual([]);
});
