// The admin JSON API (`/api/v1`), called with the service's admin token: how a test sets up
// what it needs (accounts, devices) without going through the pages it does not test.
import { expect, type APIRequestContext } from '@playwright/test';

import { password as newPassword, unique } from './names';

/** An account a test created, with the password to log in with. */
export interface Account {
  name: string;
  role: 'admin' | 'operator' | 'viewer';
  password: string;
}

/** `GET /api/v1/devices/{mac}`: the device's JSON, or null when the service has none. */
export async function device(api: APIRequestContext, mac: string): Promise<Record<string, unknown> | null> {
  const answer = await api.get(`/api/v1/devices/${mac}`);
  if (answer.status() === 404) return null;
  expect(answer.status(), await answer.text()).toBe(200);
  return (await answer.json()) as Record<string, unknown>;
}

/** A device's reported item, from its inventory (`index` null for an unindexed item). */
export function inventoryValue(dev: Record<string, unknown>, name: string, index: number | null = null): string | undefined {
  const items = dev.inventory as { name: string; index: number | null; value: string }[];
  return items.find((i) => i.name === name && i.index === index)?.value;
}

/**
 * `POST /api/v1/accounts`: a new account of `role`, with a fresh unique name and password
 * unless given.
 */
export async function createAccount(
  api: APIRequestContext,
  role: Account['role'],
  opts: { name?: string; password?: string } = {},
): Promise<Account> {
  const account = { name: opts.name ?? unique(role), role, password: opts.password ?? newPassword() };
  const answer = await api.post('/api/v1/accounts', { data: account });
  expect(answer.status(), `POST /api/v1/accounts: ${await answer.text()}`).toBe(201);
  return account;
}
