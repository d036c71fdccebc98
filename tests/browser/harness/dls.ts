// The `dls` binary under test, run by a test: admin commands against the served data
// directory, and simulated phones (`dls phone run`) against its WPI port.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { TestInfo } from '@playwright/test';

import type { Served } from './env';
import { unique } from './names';

/** What one run of `dls` gave. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** An item a simulated phone reports: `index` for indexed items (function keys …). */
export interface Item {
  name: string;
  index?: number | null;
  value: string;
}

export interface PhoneOptions {
  /** The phone's MAC (any form `dls` accepts); see names.uniqueMac. */
  mac: string;
  /** Items the phone reports instead of its own of the same name and index. */
  items?: Item[];
  /** The PIN typed at the phone if the DLS bootstraps it with one. */
  pin?: string;
  /** Resolve with a failed run instead of throwing. */
  allowFailure?: boolean;
}

/** A `dls` run is killed past this (the command's own timeouts are shorter). */
const RUN_TIMEOUT_MS = 25_000;

export class Dls {
  constructor(
    private readonly served: Served,
    private readonly testInfo: TestInfo,
  ) {}

  /**
   * Runs `dls args…` (admin commands find the service through DLS_DATA_DIR); throws with its
   * output when it exits non-zero, unless `allowFailure`.
   */
  run(args: string[], opts: { allowFailure?: boolean; env?: Record<string, string> } = {}): Promise<Run> {
    // Only the variables the harness chooses: nothing of the caller's DLS_* reaches the command.
    const env: NodeJS.ProcessEnv = { DLS_DATA_DIR: this.served.dataDir, ...opts.env };
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith('DLS_')) env[k] = v;
    }
    return new Promise((resolve, reject) => {
      execFile(
        this.served.bin,
        args,
        { env, timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
          const run = { code, stdout, stderr };
          if (code !== 0 && !opts.allowFailure) {
            const why = error?.killed ? `killed after ${RUN_TIMEOUT_MS} ms` : `exit ${code}`;
            reject(new Error(`dls ${args.join(' ')}: ${why}\n--- stdout\n${stdout}--- stderr\n${stderr}`));
          } else {
            resolve(run);
          }
        },
      );
    });
  }

  /**
   * One simulated phone's start-up against the served WPI port (`dls phone run`), verifying
   * the server's certificate: it reports its items, takes what the DLS writes and ends with
   * CleanUp (else this throws, unless `allowFailure`).
   */
  phone(opts: PhoneOptions): Promise<Run> {
    const args = ['phone', 'run', '--server', this.served.wpi, '--mac', opts.mac, '--ca', this.served.ca];
    args.push('--timeout-secs', '10');
    if (opts.items) {
      const file = this.testInfo.outputPath(`${unique('items')}.json`);
      writeFileSync(file, JSON.stringify(opts.items.map((i) => ({ index: null, ...i }))));
      args.push('--items', file);
    }
    // The PIN through the environment, not the command line that `ps` shows.
    const env: Record<string, string> = opts.pin === undefined ? {} : { DLS_PIN: opts.pin };
    return this.run(args, { allowFailure: opts.allowFailure, env });
  }
}
