// What the Rust test (crates/dls-cli/tests/cli/browser.rs) hands the suite: the running
// `dls serve`, its data directory and the `dls` binary. Every variable is required: a suite
// started without them fails at once with one line saying how to run it.
import { existsSync } from 'node:fs';

/** The running service, as the harness started it. */
export interface Served {
  /** The admin listener's URL (the console at `/`, the JSON API at `/api/v1`), no trailing slash. */
  adminUrl: string;
  /** The service's admin token: the first administrator's credential. */
  adminToken: string;
  /** The default-mode WPI address, HOST:PORT. */
  wpi: string;
  /** The service's CA certificate (PEM), for a phone that verifies the server. */
  ca: string;
  /** The service's data directory (`dls` admin commands find the URL and the token there). */
  dataDir: string;
  /** The `dls` binary under test. */
  bin: string;
}

const HOW = 'run the browser tests with `cargo test -p dls-cli --test cli browser` (it starts `dls serve` and sets DLS_E2E_*)';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: ${HOW}`);
  }
  return value;
}

/** The service under test; throws one line if the suite was not started by the harness. */
export function served(): Served {
  return {
    adminUrl: required('DLS_E2E_ADMIN_URL').replace(/\/+$/, ''),
    adminToken: required('DLS_E2E_ADMIN_TOKEN'),
    wpi: required('DLS_E2E_WPI'),
    ca: required('DLS_E2E_CA'),
    dataDir: required('DLS_E2E_DATA_DIR'),
    bin: required('DLS_E2E_BIN'),
  };
}

/** Debian's Chromium (`apt-get install chromium`), or DLS_CHROMIUM. */
export function chromiumPath(): string {
  return process.env.DLS_CHROMIUM || '/usr/bin/chromium';
}

/** Checks that Chromium is installed; throws one line saying what to install. */
export function requireChromium(): void {
  const path = chromiumPath();
  if (!existsSync(path)) {
    throw new Error(`Chromium not found at ${path}: run \`apt-get install chromium\` (or set DLS_CHROMIUM)`);
  }
}
