/**
 * UI tests in Debian's Chromium against a running JupyterLab: tests/test_labextension_ui.py
 * starts the server and passes JUPYTER_URL, JUPYTER_TOKEN, NOTEBOOK and ARTIFACTS.
 * (`npx playwright install` cannot download browsers here, hence the system binary.)
 */
import { defineConfig } from '@playwright/test';
import * as path from 'path';

export default defineConfig({
  testDir: './tests',
  timeout: 240_000,
  expect: { timeout: 60_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  // failure screenshots go beside the test's own, into the CI artifacts
  outputDir: process.env.ARTIFACTS ? path.join(process.env.ARTIFACTS, 'playwright') : './test-results',
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage']
    },
    screenshot: 'only-on-failure',
    trace: 'off'
  }
});
