// The harness itself, proved end to end before the console's pages: Chromium opens the admin
// listener, a simulated phone run by the harness reaches the service, and the helpers fail
// loudly when what they drive fails.
import { readFileSync } from 'node:fs';

import { device, inventoryValue } from '../harness/api';
import { expect, test } from '../harness/fixtures';
import { uniqueMac } from '../harness/names';
import { screenshot } from '../harness/screenshots';

/** The sum of a counter's series in a Prometheus text page. */
function counterSum(metrics: string, name: string): number {
  return metrics
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

test('Chromium opens the admin listener: /healthz answers ok', async ({ page }, testInfo) => {
  const answer = await page.goto('/healthz');
  expect(answer?.status()).toBe(200);
  expect(answer?.headers()['content-type']).toContain('application/json');
  expect(JSON.parse(await page.locator('body').innerText())).toEqual({ status: 'ok' });
  // The screenshot helper writes a PNG (into the test's output folder unless refreshing docs).
  const file = await screenshot(page, testInfo, 'healthz');
  expect(readFileSync(file).subarray(1, 4).toString()).toBe('PNG');
});

test('Chromium reads /metrics, and a phone run by the harness is counted there', async ({ page, dls }) => {
  const before = await page.goto('/metrics');
  expect(before?.status()).toBe(200);
  const first = await page.locator('body').innerText();
  expect(first).toMatch(/^dls_node_info\{node="[^"]*",version="[^"]+"\} 1$/m);

  await dls.phone({ mac: uniqueMac() });

  await page.reload();
  const second = await page.locator('body').innerText();
  // (A family with no series yet is not listed: before the suite's first phone it may be absent.)
  expect(second).toContain('# TYPE dls_wpi_messages_total counter');
  // Other tests' phones may be counted too: at least this one's start-up (two messages).
  expect(counterSum(second, 'dls_wpi_messages_total')).toBeGreaterThanOrEqual(counterSum(first, 'dls_wpi_messages_total') + 2);
});

test('a phone run by the harness shows up through the admin API with what it reported', async ({ api, dls }) => {
  const mac = uniqueMac();
  expect(await device(api, mac)).toBeNull();
  const displayId = '<script>alert("phone")</script>';
  const run = await dls.phone({
    mac,
    items: [
      { name: 'display-id-unicode', value: displayId },
      { name: 'e164', value: '4989700712' },
    ],
  });
  expect(run.stdout).toContain('ended with CleanUp');

  const dev = await device(api, mac);
  expect(dev).not.toBeNull();
  expect(dev?.mac).toBe(mac);
  expect(dev?.e164).toBe('4989700712');
  // The JSON API gives the value as reported; a page must escape it where it shows it.
  expect(inventoryValue(dev!, 'display-id-unicode')).toBe(displayId);
});

test('the admin API refuses a request without the admin token', async ({ playwright, served }) => {
  const anonymous = await playwright.request.newContext({ baseURL: served.adminUrl });
  const answer = await anonymous.get('/api/v1/devices');
  expect(answer.status()).toBe(401);
  await anonymous.dispose();
});

test('a phone run that fails makes the helper throw with the command output', async ({ dls }) => {
  const failed = dls.phone({ mac: 'not-a-mac' });
  await expect(failed).rejects.toThrow(/dls phone run .*: exit \d+\n--- stdout\n.*--- stderr\n.+/s);
  const run = await dls.phone({ mac: 'not-a-mac', allowFailure: true });
  expect(run.code).not.toBe(0);
  expect(run.stderr).toContain('not a MAC address');
});
