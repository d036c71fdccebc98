// The suite's `test`: Playwright's, with the service under test and the helpers as fixtures.
// A spec imports { test, expect } from here, and the helpers it needs from their modules.
import { test as base, expect, type APIRequestContext } from '@playwright/test';

import { Dls } from './dls';
import { served, type Served } from './env';

export { expect };

export const test = base.extend<{
  /** The running `dls serve` (addresses, admin token, data directory, binary). */
  served: Served;
  /** The admin API, authenticated with the admin token. */
  api: APIRequestContext;
  /** The `dls` binary: admin commands and simulated phones. */
  dls: Dls;
}>({
  // The console's URL: page.goto('/login') opens the admin listener.
  baseURL: async ({}, use) => use(served().adminUrl),
  served: async ({}, use) => use(served()),
  api: async ({ playwright, served }, use) => {
    const api = await playwright.request.newContext({
      baseURL: served.adminUrl,
      extraHTTPHeaders: { Authorization: `Bearer ${served.adminToken}` },
    });
    await use(api);
    await api.dispose();
  },
  dls: async ({ served }, use, testInfo) => use(new Dls(served, testInfo)),
});
