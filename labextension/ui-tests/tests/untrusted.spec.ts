/**
 * What comes out of a sandbox never runs in the page (issue 27). For each route an output takes
 * out of a sandbox (the "Python 3 (sandboxed)" kernel, `%%sandbox`, cells carrying the
 * run-in-sandbox mark in a notebook file opened from disk) one notebook, written by
 * tests/test_labextension_ui.py, displays every kind of active content (ACTIVE_KINDS: cell 1 + i
 * shows kind i), and Run All runs it. Each payload, if it ran, would request /jsbx-pwned-<route>-<kind>
 * and write a file through the Contents API with the user's login: no such request may leave the
 * page (pytest checks that no such file exists), and each cell shows the server's note. Besides:
 * sandbox cells stay untrusted in JupyterLab (the extension's own part, whatever the server let
 * through), `%remote_eval` shows a value's repr as text, and a page the sandbox wrote, opened by its
 * files URL, is downloaded rather than shown.
 */
import { expect, Locator, Page, test } from '@playwright/test';

import { notebookSandbox, openLab, rest, sandboxEval, shot, TOKEN, URL } from './helpers';

const KINDS = (process.env.ACTIVE_KINDS ?? '').split(',').filter(Boolean);
const NOTE = 'jupyter-sandbox removed';
const AUTH = { Authorization: `token ${TOKEN}` };
/**
 * A widget's state travels over comms, which only the sandboxed kernel carries to the page: through
 * REST (`%%sandbox`, marked cells) its HTML stays in the sandbox and only a model id and the text repr
 * arrive, so nothing is removed and no note is due. The cell shows that text, or "model not found".
 */
const NOTHING_ARRIVES: { [route: string]: string[] } = { magic: ['widget'], marked: ['widget'] };

test.afterEach(async ({ page }) => {
  // the next test (or spec) starts with no sandbox: a kernel's goes with its kernel
  for (const sandbox of await rest(page, 'GET', 'sandboxes')) {
    if (sandbox.kind === 'kernel' && sandbox.kernel_id) {
      await page.request.delete(`${URL}api/kernels/${sandbox.kernel_id}`, { headers: AUTH });
    } else {
      await rest(page, 'DELETE', `sandboxes/${sandbox.id}`);
    }
  }
});

/** Open a notebook file from disk and wait until its kernel is up. */
async function openNotebook(page: Page, route: string): Promise<void> {
  if (route === 'kernel') {
    await page.goto(`${URL}lab/tree/untrusted-${route}.ipynb?reset&token=${TOKEN}`);
    await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
    // its sandbox takes a second or two to start: wait until the kernel is connected and idle
    await expect(page.locator('.jp-StatusBar-TextItem', { hasText: 'Python 3 (sandboxed) | Idle' })).toBeVisible({
      timeout: 120_000
    });
  } else {
    await openLab(page, `untrusted-${route}.ipynb`);
  }
}

/** Wait until the last cell has run (a sandbox cell shows its count on its badge, not its prompt). */
async function ranAll(route: string, cells: Locator): Promise<void> {
  const last = cells.last();
  if (route === 'marked') {
    await expect(last.locator('.jp-SandboxCell-badge')).toHaveText(/^sandbox \[\d+\]$/, { timeout: 180_000 });
  } else {
    await expect(last.locator('.jp-InputArea-prompt')).toHaveText(/^\[\d+\]:$/, { timeout: 180_000 });
  }
  await expect(cells.locator('.jp-InputArea-prompt', { hasText: '[*]' })).toHaveCount(0);
}

for (const route of ['kernel', 'magic', 'marked']) {
  test(`@untrusted active outputs from a sandbox (${route}) never run in the page`, async ({ page }) => {
    test.skip(!KINDS.length, 'needs the notebooks and ACTIVE_KINDS of tests/test_labextension_ui.py');
    // any request of the page (and its workers) that a payload would make
    const escapes: string[] = [];
    page.context().on('request', request => {
      if (request.url().includes('jsbx-pwned')) {
        escapes.push(`${request.method()} ${request.url()}`);
      }
    });
    const browserErrors: string[] = [];
    page.on('pageerror', error => browserErrors.push(String(error)));

    await openNotebook(page, route);
    const cells = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
    await expect(cells).toHaveCount(1 + KINDS.length);
    await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
    await page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
    await ranAll(route, cells);
    // A payload that got into the page runs as it is rendered (an image's onerror a moment
    // later): give it seconds, far more than it needs, before looking for its requests.
    await page.waitForTimeout(3000);
    await shot(page, `50-untrusted-${route}`);

    expect.soft(escapes, 'requests made by sandbox outputs in the page').toEqual([]);
    if (route === 'magic') {
      // cell 0's %remote_eval: the value's repr, shown as text
      await expect.soft(cells.nth(0).locator('.jp-OutputArea-output')).toContainText('<img src=x onerror=');
    }
    if (route === 'marked') {
      // the extension itself never trusts what a sandbox cell shows (the server's cleaning aside)
      await expect
        .soft(page.locator('.jp-StatusItem-trust'), 'trust of sandbox cells')
        .toHaveAttribute('title', `Notebook not trusted: 0 of ${1 + KINDS.length} code cells trusted.`);
    }
    for (const [i, kind] of KINDS.entries()) {
      const outputs = cells.nth(1 + i).locator('.jp-OutputArea-output');
      if (NOTHING_ARRIVES[route]?.includes(kind)) {
        await expect
          .soft(outputs.first(), `${route}: ${kind} shows as text`)
          .toHaveText(/HTML\(value=|model not found/);
        await expect.soft(outputs.locator('img'), `${route}: ${kind} has no HTML`).toHaveCount(0);
        continue;
      }
      // the cells have run: the note is there (a widget's view may take a moment) or never
      await expect
        .soft(outputs.filter({ hasText: NOTE }).first(), `${route}: the note on ${kind}`)
        .toBeVisible({ timeout: 15_000 });
    }
    if (route === 'marked') {
      // A page the sandbox wrote, opened by its URL on the server (a link in an output can point
      // there): the browser downloads it, never shows it in the page's origin.
      const file = 'jsbx-page.html';
      const html = "<script>fetch('/jsbx-pwned-marked-file')</script>";
      const sandbox = await notebookSandbox(page);
      // (a JSON string is a Python string literal)
      await sandboxEval(page, sandbox, `open(${JSON.stringify(file)}, 'w').write(${JSON.stringify(html)})`);
      const fileUrl = `${URL}sandbox/api/sandboxes/${sandbox}/files?path=${file}&type=file`;
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.goto(fileUrl).catch(() => null) // a download is not a navigation
      ]);
      expect(await download.failure()).toBeNull();
      await page.waitForTimeout(2000);
      expect.soft(escapes, 'requests made by a sandbox file opened by its URL').toEqual([]);
    }
    expect(browserErrors).toEqual([]);
  });
}
