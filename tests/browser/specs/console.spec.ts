// The console's foundation in a real browser: logging in and out, a wrong password, what a
// viewer may not do (on the page and by a crafted request), and hostile text shown as text.
import { createAccount } from '../harness/api';
import { login, logout } from '../harness/console';
import { expect, test } from '../harness/fixtures';
import { uniqueMac, unique } from '../harness/names';
import { screenshot } from '../harness/screenshots';

/** The page's CSRF token (the log-out form carries it on every page). */
async function csrfOf(page: import('@playwright/test').Page): Promise<string> {
  return page.locator('form.logout input[name="csrf"]').inputValue();
}

test('log in, see who is logged in, log out: the session is over', async ({ page, api, context }) => {
  const account = await createAccount(api, 'operator');
  await page.goto('/');
  // Not logged in: the console sends the browser to the login page.
  await expect(page).toHaveURL(/\/login$/);

  await login(page, account);
  await expect(page.getByRole('heading', { level: 1, name: 'Dashboard' })).toBeVisible();
  await expect(page.locator('header .who')).toHaveText(`${account.name} (operator)`);
  const [cookie] = (await context.cookies()).filter((c) => c.httpOnly);
  expect(cookie, 'a session cookie').toBeDefined();
  expect(cookie.sameSite).toBe('Strict');

  await logout(page);
  await page.goto('/settings');
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('button', { name: 'Log in' })).toBeVisible();
});

test('a wrong password is answered on the login page and logs nobody in', async ({ page, api, context }) => {
  const account = await createAccount(api, 'admin');
  await page.goto('/login');
  await page.getByLabel('Account').fill(account.name);
  await page.getByLabel('Password').fill(`${account.password}-wrong`);
  await page.getByRole('button', { name: 'Log in' }).click();

  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('alert')).toHaveText('Wrong account name or password.');
  // The account typed stays, the password does not.
  await expect(page.getByLabel('Account')).toHaveValue(account.name);
  await expect(page.getByLabel('Password')).toHaveValue('');
  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
  expect((await context.cookies()).filter((c) => c.httpOnly && c.value !== '')).toEqual([]);

  // The right password still works: a wrong one locks nobody out.
  await login(page, account);
});

test('a viewer sees no button that changes anything, and a crafted POST is refused', async ({ page, api, browser }) => {
  const viewer = await createAccount(api, 'viewer');
  await login(page, viewer);
  for (const path of ['/', '/audit', '/settings']) {
    await page.goto(path);
    // Buttons: Log out only (and the audit page's filter, which changes nothing).
    const buttons = await page.getByRole('button').allInnerTexts();
    expect(buttons.filter((b) => !['Log out', 'Filter'].includes(b.trim())), path).toEqual([]);
  }
  // The admin pages are not the viewer's.
  const accounts = await page.goto('/accounts');
  expect(accounts?.status()).toBe(403);
  await expect(page.getByRole('link', { name: 'Accounts' })).toHaveCount(0);

  // A crafted form post with the viewer's own session and CSRF token: refused, nothing made.
  await page.goto('/');
  const csrf = await csrfOf(page);
  const target = unique('crafted');
  const post = await page.request.post('/accounts', {
    form: { csrf, name: target, role: 'admin', password: 'a-password-long-enough' },
    maxRedirects: 0,
  });
  expect(post.status()).toBe(403);
  // And through the JSON API with the session cookie and the CSRF header.
  const mac = uniqueMac();
  const apiPost = await page.request.post('/api/v1/devices', { headers: { 'X-CSRF-Token': csrf }, data: { mac } });
  expect(apiPost.status()).toBe(403);
  expect((await api.get(`/api/v1/accounts/${target}`)).status()).toBe(404);
  expect((await api.get(`/api/v1/devices/${mac}`)).status()).toBe(404);

  // The same requests from an admin's session succeed: the viewer was refused for its role.
  const adminContext = await browser.newContext();
  const adminPage = await adminContext.newPage();
  await login(adminPage, await createAccount(api, 'admin'));
  const adminCsrf = await csrfOf(adminPage);
  const made = await adminPage.request.post('/accounts', {
    form: { csrf: adminCsrf, name: target, role: 'viewer', password: 'a-password-long-enough' },
    maxRedirects: 0,
  });
  expect(made.status(), await made.text()).toBeLessThan(400);
  expect((await api.get(`/api/v1/accounts/${target}`)).status()).toBe(200);
  const added = await adminPage.request.post('/api/v1/devices', { headers: { 'X-CSRF-Token': adminCsrf }, data: { mac } });
  expect(added.status(), await added.text()).toBe(201);
  await adminContext.close();
});

test('an account name with <script> is refused and shown back as text', async ({ page, api }) => {
  const admin = await createAccount(api, 'admin');
  await login(page, admin);
  await page.goto('/accounts');
  const hostile = '<script>window.__xss=1</script>';
  page.on('dialog', (d) => {
    throw new Error(`a dialog opened: ${d.message()}`);
  });
  await page.getByLabel('Name', { exact: true }).fill(hostile);
  await page.getByLabel('Password', { exact: true }).fill('a-password-long-enough');
  // Past the browser's own pattern check, as a hand-made request would be.
  await page.locator('form[action="/accounts"]').evaluate((f: HTMLFormElement) => (f.noValidate = true));
  await page.getByRole('button', { name: 'Add account' }).click();

  await expect(page.getByRole('alert')).toBeVisible();
  await expect(page.getByLabel('Name', { exact: true })).toHaveValue(hostile);
  expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined();
  await expect(page.locator('script', { hasText: '__xss' })).toHaveCount(0);
  expect((await api.get('/api/v1/accounts')).ok()).toBe(true);
  const names = ((await (await api.get('/api/v1/accounts')).json()) as { name: string }[]).map((a) => a.name);
  expect(names).not.toContain(hostile);
});

test('a login typed as "><script> is answered with the text kept as text', async ({ page }) => {
  const hostile = '"><script>window.__xss=1</script>';
  await page.goto('/login');
  await page.getByLabel('Account').fill(hostile);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong account name or password.');
  await expect(page.getByLabel('Account')).toHaveValue(hostile);
  expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined();
  await expect(page.locator('script', { hasText: '__xss' })).toHaveCount(0);
});

test('a phone that reports <script> as its software version is shown as text on the dashboard', async ({ page, api, dls }) => {
  // 31 characters: a chart's label shows at most 32.
  const hostile = '<script>window.__xss=1</script>';
  await dls.phone({ mac: uniqueMac(), items: [{ name: 'software-version', value: hostile }] });
  const viewer = await createAccount(api, 'viewer');
  await login(page, viewer);
  await expect(page.getByText(hostile, { exact: true })).toBeVisible();
  expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined();
  await expect(page.locator('script', { hasText: '__xss' })).toHaveCount(0);
});

// docs/console.md shows these (DLS_UPDATE_SCREENSHOTS=1 DLS_BROWSER_GREP=screenshots: this
// test alone on a fresh service, so that the pages show only its data). Its names are its own:
// no other test uses them, and each run has a fresh service.
test('screenshots of the main pages', async ({ page, api, dls }, testInfo) => {
  const fleet: [string, string][] = [
    ['OpenStage 60', 'V3 R5.12.0'],
    ['OpenStage 60', 'V3 R5.12.0'],
    ['OpenStage 40', 'V3 R5.12.0'],
    ['OpenScape Desk Phone CP600', 'V1 R6.4.0'],
    ['OpenScape Desk Phone CP400', 'V1 R6.4.0'],
    ['OpenScape Desk Phone CP400', 'V1 R5.9.0'],
  ];
  const macs: string[] = [];
  for (const [type, version] of fleet) {
    macs.push(uniqueMac());
    await dls.phone({
      mac: macs[macs.length - 1],
      items: [
        { name: 'device-type', value: type },
        { name: 'related-device-type', value: type },
        { name: 'software-version', value: version },
        { name: 'related-software-version', value: version },
      ],
    });
  }
  await createAccount(api, 'operator', { name: 'bob' });
  await createAccount(api, 'viewer', { name: 'carol' });
  const alice = await createAccount(api, 'admin', { name: 'alice' });
  // Something on the profiles, users, jobs and files pages.
  const global = { 'reassert-on-local-changes': true, item: [{ name: 'sntp-addr', value: 'ntp.example.net' }, { name: 'country-iso', value: 'DE' }] };
  expect((await api.put('/api/v1/profiles/global', { data: global })).status()).toBe(200);
  expect((await api.put('/api/v1/profiles/sales', { data: { 'device-type': 'OpenStage 60', item: [{ name: 'e164-prefix', value: '+4989' }] } })).status()).toBe(200);
  expect((await api.post('/api/v1/jobs', { data: { target: { all: true }, job: { kind: 'reassert-config' } } })).status()).toBe(201);
  expect((await api.post('/api/v1/files?name=ring.mp3&type=RINGTONE', { data: Buffer.alloc(48_000, 1) })).status()).toBe(201);
  // Mobility users: one logged on at a phone (the logon queued, and taken at its start-up).
  const users = [
    { number: '+49 89 7001', name: 'Anna Meier', password: 'typed-at-the-phone', profiles: ['sales'] },
    { number: '+49 89 7002', name: 'Jonas Weber', password: 'typed-at-the-phone' },
  ];
  for (const data of users) expect((await api.post('/api/v1/users', { data })).status()).toBe(201);
  expect((await api.post('/api/v1/users/+49897001/logon', { data: { mac: macs[1] } })).status()).toBe(201);
  await dls.phone({ mac: macs[1] });

  await page.goto('/login');
  await screenshot(page, testInfo, 'login');
  await login(page, alice);
  for (const [path, name] of [
    ['/', 'dashboard'],
    ['/accounts', 'accounts'],
    ['/audit', 'audit'],
    ['/settings', 'settings'],
    ['/devices', 'devices'],
    [`/devices/${macs[0]}`, 'device'],
    ['/profiles', 'profiles'],
    ['/users', 'users'],
    ['/users/+49897001', 'user'],
    ['/jobs', 'jobs'],
    ['/files', 'files'],
  ]) {
    const answer = await page.goto(path);
    expect(answer?.status(), path).toBe(200);
    await screenshot(page, testInfo, name);
  }
});
