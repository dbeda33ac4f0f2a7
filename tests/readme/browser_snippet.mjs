// Runs README's browser snippet (Tidewire's SDK) in headless Debian Chromium, on a page of
// the server's own origin, and echoes the page's console to stdout line by line for
// tests/readme.rs, which publishes with README's curl command and waits for "got …".
//
// env: TIDEWIRE_HTTP (http://127.0.0.1:PORT), TOKEN, SNIPPET (the README block, addresses
// already pointed at the test server), DEADLINE_MS (how long to run before exiting).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../browser/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const origin = process.env.TIDEWIRE_HTTP;
const deadline = Number(process.env.DEADLINE_MS || 30000);
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidewire-readme-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await context.newPage();
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  page.on('console', (m) => {
    console.log(`console: ${m.text()}`);
    if (m.text().startsWith('got ')) done();
  });
  page.on('pageerror', (e) => console.log(`pageerror: ${e}`));
  await page.goto(`${origin}/health`);
  await page.addScriptTag({ type: 'module', content: `const TOKEN = ${JSON.stringify(process.env.TOKEN)};\n${process.env.SNIPPET}` });
  await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, deadline))]);
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
