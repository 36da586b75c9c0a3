// eventsource_h2.mjs opens a plain EventSource (the browser's own, not the
// push_gateway client) in real Chromium on a `tls internal` site, checks the
// page came over HTTP/2, publishes through Caddy's admin API, and prints one
// JSON report on stdout for integration/browser_h2_test.go. Every wait is
// bounded.
//
// Environment: PG_SITE (https://127.0.0.1:<port>), PG_ADMIN, PG_KEY,
// PG_CHROMIUM (default /usr/bin/chromium), PG_COUNT (messages, default 5).

import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const site = process.env.PG_SITE;
const admin = process.env.PG_ADMIN;
const key = process.env.PG_KEY;
const executablePath = process.env.PG_CHROMIUM || '/usr/bin/chromium';
const count = Number(process.env.PG_COUNT || '5');
const report = { protocol: '', received: [], error: '' };

// publish posts one message on a connection of its own (node's fetch sends
// Sec-Fetch-Mode, which Caddy's admin endpoint refuses as a browser origin).
function publish(data) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${admin}/push_gateway/publish`,
      { method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' }, timeout: 10000 },
      (resp) => {
        let text = '';
        resp.on('data', (c) => (text += c));
        resp.on('end', () => (resp.statusCode === 200 ? resolve(text) : reject(new Error(`publish: ${resp.statusCode} ${text}`))));
      });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('publish timed out')));
    req.end(JSON.stringify({ sdk_key: key, data }));
  });
}

const userDataDir = mkdtempSync(join(tmpdir(), 'pg-chromium-'));
let browser;
try {
  browser = await launchChromium(userDataDir, executablePath, { ignoreHTTPSErrors: true });
  const page = browser.pages()[0] ?? (await browser.newPage());
  await page.goto(`${site}/`, { timeout: 15000 });
  report.protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  await page.evaluate((key) => {
    window.got = [];
    window.es = new EventSource(`/realtime?sdk_key=${encodeURIComponent(key)}`);
    window.es.addEventListener('update', (e) => window.got.push({ id: e.lastEventId, data: e.data }));
    window.opened = new Promise((resolve, reject) => {
      window.es.onopen = () => resolve(true);
      setTimeout(() => reject(new Error('EventSource did not open within 10 s')), 10000);
    });
  }, key);
  await page.evaluate(() => window.opened);
  for (let i = 1; i <= count; i++) await publish({ n: i });
  await page.waitForFunction((n) => window.got.length >= n, count, { timeout: 10000 });
  report.received = await page.evaluate(() => window.got);
} catch (err) {
  report.error = String(err && err.stack ? err.stack : err);
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + '\n');
