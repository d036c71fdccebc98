// Names and MAC addresses no other test uses: tests share one server, never each other's data.
import { randomBytes } from 'node:crypto';

/** `prefix-` and 8 random hex digits: a valid account name (a-z 0-9 . _ - @). */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A random MAC in Unify's OUI (00:1A:E8), as the admin API prints it (001AE8XXXXXX). */
export function uniqueMac(): string {
  return `001AE8${randomBytes(3).toString('hex').toUpperCase()}`;
}

/** A password that meets the account rules (at least 10 characters). */
export function password(): string {
  return `pw-${randomBytes(12).toString('base64url')}`;
}
