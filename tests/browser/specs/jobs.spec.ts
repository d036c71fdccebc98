// The jobs page in a browser: an operator queues a job on a phone and watches it finish when
// the phone calls in — the table updates by itself (htmx reloads it every 2 s) — and cancels
// another after saying yes to the question.
import { createAccount } from '../harness/api';
import { login } from '../harness/console';
import { expect, test } from '../harness/fixtures';
import { uniqueMac } from '../harness/names';

test('queue a job, watch it finish while the phone calls in, cancel another', async ({ page, api, dls }) => {
  const mac = uniqueMac();
  const added = await api.post('/api/v1/devices', { data: { mac } });
  expect(added.status(), await added.text()).toBe(201);
  await login(page, await createAccount(api, 'operator'));
  await page.getByRole('link', { name: 'Jobs' }).click();

  const questions: string[] = [];
  page.on('dialog', (d) => {
    questions.push(d.message());
    void d.accept();
  });
  await page.getByLabel('these devices').check();
  await page.getByLabel('MAC addresses').fill(mac);
  await page.getByLabel('Job', { exact: true }).selectOption('read');
  await page.getByRole('button', { name: 'Queue job' }).click();
  const queued = page.getByRole('status');
  await expect(queued).toContainText(/Job \d+ queued/);
  const id = /Job (\d+) queued/.exec((await queued.textContent()) ?? '')?.[1];
  expect(questions).toEqual(['Queue this job on the devices chosen?']);
  const row = page.locator(`#job-${id}`);
  await expect(row.locator('.state')).toHaveText('queued');

  // The phone calls in; the page, not reloaded by the test, shows the job done.
  const url = page.url();
  await dls.phone({ mac });
  await expect(row.locator('.state')).toHaveText('done', { timeout: 10_000 });
  expect(page.url()).toBe(url);
  await expect(row.getByRole('button', { name: 'Cancel' })).toHaveCount(0);

  // Another job, cancelled: the page asks first.
  await page.getByLabel('MAC addresses').fill(mac);
  await page.getByLabel('Job', { exact: true }).selectOption('restart');
  await page.getByRole('button', { name: 'Queue job' }).click();
  await expect(page.getByRole('status')).toContainText(/Job \d+ queued/);
  const second = /Job (\d+) queued/.exec((await page.getByRole('status').textContent()) ?? '')?.[1];
  await page.locator(`#job-${second}`).getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByRole('status')).toContainText(`Job ${second} for`);
  await expect(page.locator(`#job-${second} .state`)).toHaveText('cancelled');
  expect(questions[questions.length - 1]).toBe(`Cancel job ${second} (restart) for ${mac}?`);
  const job = (await (await api.get(`/api/v1/jobs/${second}`)).json()) as { state: string };
  expect(job.state).toBe('cancelled');
});
