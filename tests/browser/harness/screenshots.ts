// Screenshots of the console's pages for docs/console.md. Written to docs/console/NAME.png only
// when DLS_UPDATE_SCREENSHOTS=1 (so a test run never rewrites tracked files); otherwise into
// the test's output folder, where a failing run leaves them for a look.
import path from 'node:path';
import type { Page, TestInfo } from '@playwright/test';

/** The repository's docs/console/. */
export const DOCS_CONSOLE = path.resolve(__dirname, '../../../docs/console');

/** Whether this run refreshes docs/console/. */
export function updating(): boolean {
  return process.env.DLS_UPDATE_SCREENSHOTS === '1';
}

/** Saves the viewport (1280×800) as NAME.png; returns the file's path. */
export async function screenshot(page: Page, testInfo: TestInfo, name: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: use a-z 0-9 -`);
  const file = updating() ? path.join(DOCS_CONSOLE, `${name}.png`) : testInfo.outputPath(`${name}.png`);
  // Carets and animations off: the same page gives the same picture.
  await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  return file;
}
