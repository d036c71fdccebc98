// The files page in a browser: an upload with its progress bar, the file listed and in the
// admin API; a file over the limit refused with a message before anything is sent; delete,
// asking first.
import { createAccount } from '../harness/api';
import { login } from '../harness/console';
import { expect, test } from '../harness/fixtures';
import { unique } from '../harness/names';

test('upload a file with a progress bar, see it listed, delete it', async ({ page, api }) => {
  await login(page, await createAccount(api, 'operator'));
  // Every value the progress bar takes, across the page load that follows the upload.
  const progress: number[] = [];
  await page.exposeFunction('reportProgress', (v: number) => progress.push(v));
  await page.addInitScript(() => {
    document.addEventListener('DOMContentLoaded', () => {
      const bar = document.querySelector('progress');
      if (!bar) return;
      new MutationObserver(() => (window as unknown as { reportProgress: (v: number) => void }).reportProgress(bar.value))
        .observe(bar, { attributes: true, attributeFilter: ['value'] });
    });
  });
  await page.goto('/files');
  const name = `${unique('ring')}.mp3`;
  const content = Buffer.alloc(4 << 20, 7);
  await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'local.mp3', mimeType: 'audio/mpeg', buffer: content });
  await page.getByLabel('Name phones see').fill(name);
  await page.getByLabel('Type', { exact: true }).selectOption('RINGTONE');
  await page.getByRole('button', { name: 'Upload' }).click();

  await expect(page.getByRole('status')).toHaveText(/File \d+ added\./);
  expect(progress.length, 'the progress bar moved').toBeGreaterThan(0);
  expect(Math.max(...progress)).toBe(100);
  const row = page.getByRole('row').filter({ hasText: name });
  await expect(row).toContainText('RINGTONE');
  await expect(row).toContainText(String(content.length));
  const files = (await (await api.get('/api/v1/files')).json()) as { id: number; name: string; size: number }[];
  const file = files.find((f) => f.name === name);
  expect(file?.size).toBe(content.length);

  // Over the limit: said on the page, nothing sent (the limit lowered on the page for the test).
  await page.locator('form#upload').evaluate((f) => f.setAttribute('data-max-bytes', '10'));
  await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(11) });
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.locator('.upload-error')).toHaveText(/The file is 11 bytes: larger than this service accepts \(at most 10 bytes/);

  // Delete: asked first; gone from the page and the API.
  page.once('dialog', (d) => {
    expect(d.message()).toBe(`Delete the file ${name}? Its jobs that are not over fail.`);
    void d.accept();
  });
  await row.getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByRole('status')).toContainText(`(${name}) deleted`);
  expect((await api.get(`/api/v1/files/${file?.id}`)).status()).toBe(404);
});
