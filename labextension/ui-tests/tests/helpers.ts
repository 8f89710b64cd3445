/**
 * Shared by the specs: the server the pytest fixture started, opening JupyterLab, the REST
 * API with the token, screenshots and the contrast of rendered text.
 */
import { expect, Locator, Page } from '@playwright/test';
import * as path from 'path';

import { contrastRatio, effectiveBackground, parseColor, RGBA } from '../../src/contrast';

export const URL = process.env.JUPYTER_URL ?? 'http://127.0.0.1:8888/';
export const TOKEN = process.env.JUPYTER_TOKEN ?? '';
export const ARTIFACTS = process.env.ARTIFACTS ?? path.resolve(__dirname, '..', '..', '..', 'test-artifacts');
const AUTH = { Authorization: `token ${TOKEN}` };

export const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `labextension-${name}.png`), fullPage: true });

/** Open JupyterLab (at a notebook, or the launcher) on a fresh workspace, and wait until it is ready. */
export async function openLab(page: Page, notebook?: string): Promise<void> {
  await page.goto(`${URL}lab${notebook ? `/tree/${notebook}` : ''}?reset&token=${TOKEN}`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120_000 });
  if (notebook) {
    // the kernel is up (the status bar names the notebook's sandbox only once it has a kernel)
    await expect(page.locator('.jp-SandboxStatus')).toContainText('Sandbox: notebook-', { timeout: 120_000 });
  }
}

/** The REST API of the sandbox extension, with the server's token. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of whichever route was called
export async function rest(page: Page, method: string, route: string, data?: unknown): Promise<any> {
  const response = await page.request.fetch(`${URL}sandbox/api/${route}`, {
    method,
    headers: AUTH,
    data: data === undefined ? undefined : typeof data === 'string' ? data : JSON.stringify(data),
    timeout: 120_000
  });
  expect(response.status(), `${method} ${route}: ${await response.text()}`).toBeLessThan(300);
  const text = await response.text();
  return text ? (route.endsWith('/execute') ? text : JSON.parse(text)) : null;
}

/** Run code in a sandbox through REST; the main result's text (or stdout if none). */
export async function sandboxEval(page: Page, sandbox: string, code: string): Promise<string> {
  const lines = (await rest(page, 'POST', `sandboxes/${sandbox}/execute`, { code })) as string;
  const events = lines
    .split('\n')
    .filter(Boolean)
    .map(line => JSON.parse(line));
  const error = events.find(e => e.type === 'error');
  if (error) {
    throw new Error(`${error.name}: ${error.value}`);
  }
  const main = events.find(e => e.type === 'result' && e.is_main_result);
  return main ? main.text : events.map(e => (e.type === 'stdout' ? e.text : '')).join('');
}

/** Switch theme through JupyterLab's settings API (what the Settings menu does), then reload. */
export async function setTheme(page: Page, theme: 'JupyterLab Light' | 'JupyterLab Dark'): Promise<void> {
  const response = await page.request.put(`${URL}lab/api/settings/@jupyterlab/apputils-extension:themes`, {
    headers: AUTH,
    data: JSON.stringify({ raw: JSON.stringify({ theme }) })
  });
  expect(response.status()).toBeLessThan(300);
}

/** Set this extension's settings (as the settings editor does); takes effect on the next page load. */
export async function setSettings(page: Page, settings: { [key: string]: unknown }): Promise<void> {
  const response = await page.request.put(`${URL}lab/api/settings/jupyter-sandbox:plugin`, {
    headers: AUTH,
    data: JSON.stringify({ raw: JSON.stringify(settings) })
  });
  expect(response.status()).toBeLessThan(300);
}

/** The WCAG contrast of an element's text against what is painted behind it. */
export async function textContrast(element: Locator): Promise<number> {
  const { color, backgrounds } = await element.evaluate(el => {
    const layers: string[] = [];
    for (let node: Element | null = el; node; node = node.parentElement) {
      layers.push(getComputedStyle(node).backgroundColor);
    }
    return { color: getComputedStyle(el).color, backgrounds: layers };
  });
  const fg = parseColor(color);
  const layers = backgrounds.map(parseColor).filter((c): c is RGBA => c !== null);
  expect(fg, `text colour ${color}`).not.toBeNull();
  return contrastRatio(fg!, effectiveBackground(layers));
}

/** The Sandboxes panel, opened from its side-bar tab. */
export async function openPanel(page: Page): Promise<Locator> {
  const panel = page.locator('#jupyter-sandbox-panel');
  if (!(await panel.isVisible())) {
    await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-sandbox-panel"]').click();
  }
  await expect(panel).toBeVisible();
  return panel;
}

/** The name of the current notebook's sandbox, from the status bar. */
export async function notebookSandbox(page: Page): Promise<string> {
  const text = (await page.locator('.jp-SandboxStatus').textContent()) ?? '';
  const match = /Sandbox: (notebook-\S+)/.exec(text);
  expect(match, text).not.toBeNull();
  return match![1];
}

/** Run a command from the command palette, as a user types it. */
export async function palette(page: Page, label: string): Promise<void> {
  await page.keyboard.press('Control+Shift+C');
  await page.keyboard.type(label);
  await page.locator('.lm-CommandPalette-item', { hasText: label }).first().click();
}
