// Driving the console's own pages as a person does: log in and out.
import { expect, type Page } from '@playwright/test';

import type { Account } from './api';

/** Logs in on `/login` as `account` and waits for the page that follows. */
export async function login(page: Page, account: Pick<Account, 'name' | 'password'>): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('Account').fill(account.name);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).not.toHaveURL(/\/login/);
}

/** Logs out with the page's Log out button and waits for the login page. */
export async function logout(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login/);
}
