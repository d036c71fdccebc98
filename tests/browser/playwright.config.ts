// The web console's browser tests: Playwright driving Debian's headless Chromium against one
// `dls serve` that crates/dls-cli/tests/cli/browser.rs starts on ephemeral loopback ports
// (`cargo test -p dls-cli --test cli browser`). The server's addresses and the admin token
// arrive in DLS_E2E_* variables (harness/env.ts); nothing here starts or stops a server.
import { defineConfig } from '@playwright/test';

import { chromiumPath } from './harness/env';

export default defineConfig({
  testDir: './specs',
  globalSetup: './harness/global-setup.ts',
  // Bounded: a test, an assertion, the whole run (the Rust test has a longer deadline of its
  // own and kills the run's process group past it).
  timeout: 30_000,
  expect: { timeout: 5_000 },
  globalTimeout: 240_000,
  // Tests share the server, never each other's data (harness/names.ts): they may run in any
  // order and at once. Two workers: the machine has two cores.
  fullyParallel: true,
  workers: 2,
  retries: 0,
  forbidOnly: true,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    // Times in the browser's time zone: pinned so that screenshots and assertions are stable.
    timezoneId: 'Europe/Berlin',
    locale: 'en-GB',
    launchOptions: {
      // Debian's `chromium` package, never a browser Playwright downloads.
      executablePath: chromiumPath(),
      // The machine reaches no network beyond loopback: no background connections.
      args: ['--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update'],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
