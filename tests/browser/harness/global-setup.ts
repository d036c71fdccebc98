// Before any test: the harness's variables are there, Chromium is installed and the service
// answers. Each failure is one line that says what to do.
import { requireChromium, served } from './env';

export default async function globalSetup(): Promise<void> {
  const s = served();
  requireChromium();
  let answer: Response;
  try {
    answer = await fetch(`${s.adminUrl}/healthz`, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    throw new Error(`dls serve does not answer at ${s.adminUrl}/healthz: ${(e as Error).message}`);
  }
  if (answer.status !== 200) {
    throw new Error(`dls serve answered ${answer.status} at ${s.adminUrl}/healthz`);
  }
}
