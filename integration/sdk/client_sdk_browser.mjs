// client_sdk_browser.mjs loads featureprobe-client-sdk-js's own browser
// bundle (dist/featureprobe-client-sdk-js.min.js, 2.2.0, which carries its
// own socket.io-client) into a page the site serves, in real headless
// Chromium, and prints one boolean toggle whenever the SDK reports new
// toggles. For integration/featureprobe_test.go.
//
// The page is /sdk-test/index.html on the site (the toggle backend serves it
// and the bundle behind Caddy's reverse_proxy, so the SDK's toggle requests
// and its Socket.IO connection are same-origin, as on a real site). The SDK
// runs with its defaults but a 10-minute poll: within a test only its
// Socket.IO `update` makes it refetch.
//
// Output: one JSON object per line on stdout, as client_sdk_node.mjs:
//   {"event":"ready"|"value","value":<bool>,"t":<ms>}  (t: the page's wall-clock ms)
//   {"event":"error","error":"...","t":<ms>}  (page errors, console errors)
//
// Environment: PG_URL (the site), PG_KEY (client SDK key), PG_TOGGLE,
// PG_CHROMIUM (default /usr/bin/chromium). Runs until stdin closes.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../browser/chromium.mjs';

const env = (name, def) => {
  const v = process.env[name] ?? def;
  if (!v) throw new Error(`client_sdk_browser.mjs: ${name} is not set`);
  return v;
};
// Lines from the page carry the page's own t (performance.timeOrigin + now).
const out = (o) => process.stdout.write(JSON.stringify({ t: performance.timeOrigin + performance.now(), ...o }) + '\n');

const userDataDir = mkdtempSync(join(tmpdir(), 'pg-chromium-'));
const context = await launchChromium(userDataDir, env('PG_CHROMIUM', '/usr/bin/chromium'));
let closing = false;
const close = async (code) => {
  if (closing) return;
  closing = true;
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
};
process.stdin.on('end', () => close(0));
process.stdin.resume();

try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') out({ event: 'error', error: `console: ${m.text()}` });
    else console.error('page:', m.text());
  });
  page.on('pageerror', (e) => out({ event: 'error', error: `page: ${e}` }));
  await page.exposeFunction('pgOut', (o) => out(o));
  const q = new URLSearchParams({ key: env('PG_KEY'), toggle: env('PG_TOGGLE') });
  await page.goto(`${env('PG_URL')}/sdk-test/index.html?${q}`);
} catch (e) {
  out({ event: 'error', error: String(e) });
  await close(1);
}
