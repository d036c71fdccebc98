// The users page (mobility users) in a browser: an operator adds a user with a profile — a name
// holding <script> shown as text — sees it listed, queues a logon at a phone's MAC, sees the
// job on the user's page and the jobs page, and the phone calling in logs the user on; a viewer
// sees no form and its crafted POSTs (own session and CSRF token) are refused.
import { randomInt } from 'node:crypto';

import { createAccount } from '../harness/api';
import { login } from '../harness/console';
import { expect, test } from '../harness/fixtures';
import { unique, uniqueMac } from '../harness/names';

/** A number no other test uses, normalised (+49 89 and 8 digits). */
function uniqueNumber(): string {
  return `+4989${String(randomInt(10_000_000, 100_000_000))}`;
}

test('users: an operator adds a user with a profile and queues a logon at a phone', async ({ page, api, dls }) => {
  const profile = unique('p');
  const put = await api.put(`/api/v1/profiles/${profile}`, { data: { item: [{ name: 'language-iso', value: 'de' }] } });
  expect(put.status(), await put.text()).toBe(200);
  const mac = uniqueMac();
  const added = await api.post('/api/v1/devices', { data: { mac } });
  expect(added.status(), await added.text()).toBe(201);
  const number = uniqueNumber();
  const hostile = '<script>window.__xss = 1</script>Anna';
  await login(page, await createAccount(api, 'operator'));

  await page.getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Users');
  // Spaced as people write it; kept normalised.
  await page.getByLabel('Number').fill(`${number.slice(0, 3)} ${number.slice(3, 5)} ${number.slice(5)}`);
  await page.getByLabel('Name (optional)').fill(hostile);
  await page.getByLabel('Password').fill('typed-at-the-phone');
  await page.getByLabel(profile, { exact: true }).check();
  await page.getByRole('button', { name: 'Add user' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toContainText(`User ${number}`);
  await expect(page.getByRole('status')).toContainText('User added.');
  // The name is text: no script element, nothing run.
  await expect(page.getByRole('heading', { level: 1 })).toContainText(hostile);
  await expect(page.locator('script', { hasText: '__xss' })).toHaveCount(0);
  expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined();
  await expect(page.locator('main')).not.toContainText('typed-at-the-phone');

  // Listed with its profile.
  await page.getByRole('link', { name: 'Users', exact: true }).first().click();
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: number }) });
  await expect(row).toContainText(profile);
  await expect(row).toContainText('0 items');
  await expect(row.getByText(hostile, { exact: true })).toBeVisible();

  // A logon at the phone: queued, the job on the user's page and on the jobs page.
  await row.getByRole('link', { name: number }).click();
  await page.getByLabel('Device MAC address').fill(mac);
  await page.getByRole('button', { name: 'Queue logon' }).click();
  await expect(page.getByRole('status')).toContainText(/Logon queued as job \d+/);
  const id = /job (\d+)/.exec((await page.getByRole('status').textContent()) ?? '')?.[1];
  const job = page.locator(`#job-${id}`);
  await expect(job).toContainText('mobility-logon');
  await expect(job).toContainText(mac);
  await expect(job.locator('.state')).toHaveText('queued');
  await page.getByRole('link', { name: 'Jobs' }).click();
  await expect(page.locator(`#job-${id}`)).toContainText(`mobility-logon user ${number}`);

  // The phone calls in and takes the logon: the user is logged on there.
  await dls.phone({ mac });
  await page.goto(`/users/${number}`);
  await expect(page.locator(`#job-${id} .state`)).toHaveText('done');
  await expect(page.locator('#logged-on')).toContainText(`at ${mac} since`);
  await expect(page.getByRole('button', { name: 'Queue logoff' })).toBeVisible();
});

test('users: a viewer sees no form, and a crafted POST is refused', async ({ page, api }) => {
  const number = uniqueNumber();
  const added = await api.post('/api/v1/users', { data: { number, password: 'typed-at-the-phone' } });
  expect(added.status(), await added.text()).toBe(201);
  await login(page, await createAccount(api, 'viewer'));
  const controls = page.locator('main input:not([type=hidden]), main select, main textarea, main button');
  await page.getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('link', { name: number })).toBeVisible();
  await expect(controls).toHaveCount(0);
  await page.goto(`/users/${number}`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`User ${number}`);
  await expect(controls).toHaveCount(0);

  // With its own session and CSRF token, as an operator's forms would post them.
  const csrf = await page.locator('form.logout input[name="csrf"]').inputValue();
  for (const [path, form] of [
    [`/users/${number}/password`, { csrf, password: 'chosen-by-a-viewer' }],
    [`/users/${number}/delete`, { csrf }],
    ['/users', { csrf, number: uniqueNumber(), password: 'chosen-by-a-viewer' }],
  ] as const) {
    const crafted = await page.request.post(path, { form, maxRedirects: 0 });
    expect(crafted.status(), path).toBe(403);
  }
  const still = await api.get(`/api/v1/users/${encodeURIComponent(number)}`);
  expect(still.status()).toBe(200);
  const audit = (await (await api.get('/api/v1/audit?kind=user-password-set')).json()) as { detail: string }[];
  expect(audit.filter((r) => r.detail.includes(number))).toEqual([]);
});
