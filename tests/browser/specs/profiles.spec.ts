// The profiles page in a browser: an operator edits a profile and a simulated phone gets the
// new item at its next start-up; an item a phone cannot be sent is answered on the page with
// the row marked; a viewer sees no editing control and its crafted POST is refused.
import { createAccount } from '../harness/api';
import { login } from '../harness/console';
import { expect, test } from '../harness/fixtures';
import { unique, uniqueMac } from '../harness/names';

/** The page's CSRF token (the log-out form carries it on every page). */
async function csrfOf(page: import('@playwright/test').Page): Promise<string> {
  return page.locator('form.logout input[name="csrf"]').inputValue();
}

test('edit a profile in the console and a phone receives the new item at its next start-up', async ({ page, api, dls, served }) => {
  const operator = await createAccount(api, 'operator');
  const profile = unique('p');
  const mac = uniqueMac();
  await login(page, operator);

  // Add the profile on the profiles page; its page opens.
  await page.getByRole('link', { name: 'Profiles' }).click();
  await page.getByLabel('Name').fill(profile);
  await page.getByRole('button', { name: 'Add profile' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Profile ${profile}`);

  // A phone assigned the profile calls in once (nothing of ours yet).
  const added = await api.post('/api/v1/devices', { data: { mac, profiles: [profile] } });
  expect(added.status(), await added.text()).toBe(201);
  await dls.phone({ mac });

  // An item a phone cannot be sent: a value without a name. Refused on the page, row marked.
  await page.getByLabel('Value of item 1').fill('no name');
  await page.getByRole('button', { name: 'Save profile' }).click();
  await expect(page.getByRole('alert')).toContainText('#1 in the list');
  await expect(page.getByLabel('Name of item 1')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByLabel('Value of item 1')).toHaveValue('no name');

  // The real edit: an item, and the re-assert policy.
  const value = `ntp-${unique('x')}.example.net`;
  await page.getByLabel('Name of item 1').fill('sntp-addr');
  await page.getByLabel('Value of item 1').fill(value);
  await page.getByLabel('Re-assert the configuration after local changes').selectOption('yes');
  await page.getByRole('button', { name: 'Save profile' }).click();
  await expect(page.getByRole('status')).toContainText('Saved.');
  await expect(page.getByLabel('Value of item 1')).toHaveValue(value);
  // The phone is among the devices it reaches.
  await expect(page.getByRole('link', { name: mac })).toBeVisible();

  // The phone's next start-up: the service writes the new item to it.
  const run = await dls.run([
    'phone', 'run', '--server', served.wpi, '--mac', mac, '--ca', served.ca, '--timeout-secs', '10', '--verbose',
  ]);
  expect(run.stdout).toMatch(new RegExp(`<Item name="sntp-addr"[^>]*>${value.replace(/\./g, '\\.')}</Item>`));
  const stored = (await (await api.get(`/api/v1/profiles/${profile}`)).json()) as Record<string, unknown>;
  expect(stored['reassert-on-local-changes']).toBe(true);
});

test('a viewer cannot edit a profile: no controls, and a crafted POST is refused', async ({ page, api }) => {
  const profile = unique('p');
  const put = await api.put(`/api/v1/profiles/${profile}`, { data: { item: [{ name: 'country-iso', value: 'DE' }] } });
  expect(put.status(), await put.text()).toBe(200);
  await login(page, await createAccount(api, 'viewer'));
  await page.goto(`/profiles/${profile}`);
  await expect(page.getByRole('cell', { name: 'DE', exact: true })).toBeVisible();
  await expect(page.locator('main input:not([type=hidden]), main select, main textarea')).toHaveCount(0);
  const buttons = await page.locator('main button').allTextContents();
  expect(buttons).toEqual([]);
  await page.goto('/profiles');
  await expect(page.getByRole('button', { name: 'Add profile' })).toHaveCount(0);

  // With its own session and CSRF token, as the operator's form would post it.
  const csrf = await csrfOf(page);
  const crafted = await page.request.post(`/profiles/${profile}`, {
    form: { csrf, 'device-type': '', reassert: 'yes', 'item-name': 'country-iso', 'item-index': '', 'item-value': 'FR' },
    maxRedirects: 0,
  });
  expect(crafted.status()).toBe(403);
  const deleted = await page.request.post(`/profiles/${profile}/delete`, { form: { csrf }, maxRedirects: 0 });
  expect(deleted.status()).toBe(403);
  const stored = (await (await api.get(`/api/v1/profiles/${profile}`)).json()) as { item: { value: string }[] };
  expect(stored.item.map((i) => i.value)).toEqual(['DE']);
});
