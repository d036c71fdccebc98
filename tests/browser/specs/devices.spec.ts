// The devices and device pages in a real browser: add a device and find it, a phone's
// hostile display id shown as text, a PIN issued on the page bootstraps a simulated phone,
// profiles put in order and an override that a simulated phone then receives, a device
// deleted after confirming, and a viewer gets no action.
import { createAccount } from '../harness/api';
import { login } from '../harness/console';
import { expect, test } from '../harness/fixtures';
import { unique, uniqueMac } from '../harness/names';

/** `001AE8ABCDEF` as people type it: `00:1a:e8:ab:cd:ef`. */
function colons(mac: string): string {
  return mac.toLowerCase().match(/../g)!.join(':');
}

test('an operator adds a device and finds it by search', async ({ page, api }) => {
  const operator = await createAccount(api, 'operator');
  const mac = uniqueMac();
  await login(page, operator);
  await page.getByRole('link', { name: 'Devices' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Devices' })).toBeVisible();

  await page.getByLabel('MAC address').fill(colons(mac));
  await page.getByLabel('E.164 (optional)').fill('+49 89 7000');
  await page.getByRole('button', { name: 'Add device' }).click();
  await expect(page.getByRole('status')).toHaveText(`Device ${mac} added.`);

  // The same MAC again: the error on the page, what was typed kept.
  await page.getByLabel('MAC address').fill(mac);
  await page.getByRole('button', { name: 'Add device' }).click();
  await expect(page.getByRole('alert')).toContainText(mac);
  await expect(page.getByLabel('MAC address')).toHaveValue(mac);

  await page.getByLabel('Search (MAC or E.164)').fill(colons(mac).slice(9));
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByRole('link', { name: mac })).toBeVisible();
  await page.getByRole('link', { name: mac }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Device ${mac}`);
  // Its override of e164 is desired, not yet reported; its audit names the operator.
  const e164 = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'e164', exact: true }) }).first();
  await expect(e164).toContainText('+49 89 7000');
  await expect(e164).toContainText('not reported');
  await expect(page.locator('#audit ~ table')).toContainText(operator.name);
});

test("a phone's <script> display id is shown as text on the device pages", async ({ page, api, dls }) => {
  const admin = await createAccount(api, 'admin');
  const mac = uniqueMac();
  const hostile = '<script>window.__owned = 1</script><img src=x onerror="window.__owned = 2">';
  await dls.phone({
    mac,
    items: [
      { name: 'display-id-unicode', value: hostile },
      { name: 'e164', value: '<b>7001</b>' },
    ],
  });
  page.on('dialog', (d) => {
    throw new Error(`a dialog opened: ${d.message()}`);
  });
  await login(page, admin);
  await page.goto(`/devices?q=${mac}`);
  await expect(page.getByRole('cell', { name: '<b>7001</b>' })).toBeVisible();
  await page.getByRole('link', { name: mac }).click();
  const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'display-id-unicode' }) });
  await expect(row.getByRole('cell').last()).toHaveText(hostile);
  expect(await page.locator('main script, main img').count()).toBe(0);
  expect(await page.evaluate(() => (window as unknown as { __owned?: number }).__owned)).toBeUndefined();
});

test('a PIN issued on the device page bootstraps the phone, and is shown once', async ({ page, api, dls }) => {
  const operator = await createAccount(api, 'operator');
  const mac = uniqueMac();
  const added = await api.post('/api/v1/devices', { data: { mac } });
  expect(added.status()).toBe(201);
  await login(page, operator);
  await page.goto(`/devices/${mac}`);
  await expect(page.locator('#bootstrap')).toHaveText('not-bootstrapped');

  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Issue a PIN' }).click();
  await expect(page.getByRole('heading', { name: 'Secure-mode PIN' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Print' })).toBeVisible();
  const pin = (await page.locator('.pin-sheet .pin').innerText()).trim();
  expect(pin).toMatch(/^\d{6,}$/);
  // Printed, only the sheet: the navigation and the notice are hidden.
  await page.emulateMedia({ media: 'print' });
  await expect(page.locator('header.top')).toBeHidden();
  await expect(page.locator('.pin-sheet')).toBeVisible();
  await page.emulateMedia({ media: 'screen' });

  // The person at the phone types it.
  await dls.phone({ mac, pin });
  await page.getByRole('link', { name: 'Back to the device' }).click();
  await expect(page.locator('#mode')).toHaveText('pin');
  await expect(page.locator('#bootstrap')).toHaveText('secured');
  await expect(page.locator('main')).not.toContainText(pin);
  await expect(page.locator('#audit ~ table')).toContainText('pin-issued');
});

test('a viewer sees the devices and a device with no action', async ({ page, api, dls }) => {
  const viewer = await createAccount(api, 'viewer');
  const mac = uniqueMac();
  await dls.phone({ mac });
  await login(page, viewer);
  for (const path of ['/devices', `/devices/${mac}`]) {
    const answer = await page.goto(path);
    expect(answer?.status(), path).toBe(200);
    const buttons = await page.getByRole('button').allInnerTexts();
    expect(buttons.filter((b) => !['Log out', 'Search'].includes(b.trim())), path).toEqual([]);
  }
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Device ${mac}`);
});

test("an operator orders a device's profiles, overrides an item the phone then gets, and deletes the device", async ({ page, api, dls, served }) => {
  const operator = await createAccount(api, 'operator');
  const [first, second] = [unique('p'), unique('p')];
  for (const [profile, value] of [[first, 'first.example.net'], [second, 'second.example.net']]) {
    const put = await api.put(`/api/v1/profiles/${profile}`, { data: { item: [{ name: 'sntp-addr', value }] } });
    expect(put.status(), await put.text()).toBe(200);
  }
  const mac = uniqueMac();
  expect((await api.post('/api/v1/devices', { data: { mac } })).status()).toBe(201);
  await login(page, operator);
  await page.goto(`/devices/${mac}`);

  // Both profiles, in the page's order (by name, as the names are random): the later one wins.
  await page.getByLabel(first, { exact: true }).check();
  await page.getByLabel(second, { exact: true }).check();
  await page.getByRole('button', { name: 'Set profiles' }).click();
  await expect(page.getByRole('status')).toContainText('Profiles set.');
  const profilesOf = async () =>
    ((await (await api.get(`/api/v1/devices/${mac}`)).json()) as Record<string, unknown>)['profiles'] as string[];
  const set = await profilesOf();
  expect(set).toEqual([first, second].sort());
  const valueOf = (profile: string) => (profile === first ? 'first.example.net' : 'second.example.net');
  const sntp = page
    .locator('#config ~ table')
    .first()
    .getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: 'sntp-addr', exact: true }) });
  await expect(sntp).toContainText(valueOf(set[1]));
  // Moved up, the later one comes first: the other wins now.
  await page.getByRole('button', { name: `Move ${set[1]} up` }).click();
  await expect(page.getByRole('status')).toContainText('Profiles set.');
  await expect(sntp).toContainText(valueOf(set[0]));
  expect(await profilesOf()).toEqual([set[1], set[0]]);

  // The device's own override, over every profile; the phone gets it at its next start-up.
  await page.getByLabel('Name of override 1').fill('sntp-addr');
  await page.getByLabel('Value of override 1').fill('override.example.net');
  await page.getByRole('button', { name: 'Save overrides' }).click();
  await expect(page.getByRole('status')).toContainText('Overrides saved.');
  await expect(sntp).toContainText('override.example.net');
  const run = await dls.run([
    'phone', 'run', '--server', served.wpi, '--mac', mac, '--ca', served.ca, '--timeout-secs', '10', '--verbose',
  ]);
  expect(run.stdout).toMatch(/<Item name="sntp-addr"[^>]*>override\.example\.net<\/Item>/);

  // Deleted once confirmed: the list says so, the API no longer knows it.
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete this device' }).click();
  await expect(page.getByRole('status')).toContainText(`Device ${mac} deleted.`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Devices');
  expect((await api.get(`/api/v1/devices/${mac}`)).status()).toBe(404);
});
