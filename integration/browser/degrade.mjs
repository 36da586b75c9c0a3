// degrade.mjs drives the demo page in real Chromium through a transport
// degradation and back, for integration/browser_test.go:
//
//   WebSocket → (WebSocket refused) SSE → (SSE refused too) long poll →
//   (both allowed again) back to WebSocket by the client's probe,
//
// while it publishes a numbered stream of toggle messages through Caddy's
// admin API. It then sets a known toggle state, screenshots the page and
// prints one JSON report on stdout for the Go test to assert on. Progress
// goes to stderr. Every wait is bounded.
//
// Environment:
//   PG_SITE         http://127.0.0.1:<port>: the demo site
//   PG_ADMIN        http://127.0.0.1:<port>: Caddy's admin endpoint
//   PG_KEY          the SDK key the page follows
//   PG_CONFIG_OPEN, PG_CONFIG_NOWS, PG_CONFIG_NONE
//                   Caddyfiles for POST /load: everything allowed, WebSocket
//                   refused, WebSocket and SSE refused
//   PG_SCREENSHOT   where to write the PNG
//   PG_PROBE_MS     the client's probe interval (default 1000)
//   PG_CHROMIUM     the browser (default /usr/bin/chromium)

import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';

const env = (name, def) => {
  const v = process.env[name] ?? def;
  if (v === undefined || v === '') throw new Error(`degrade.mjs: ${name} is not set`);
  return v;
};
const site = env('PG_SITE');
const admin = env('PG_ADMIN');
const key = env('PG_KEY');
const configs = { open: env('PG_CONFIG_OPEN'), nows: env('PG_CONFIG_NOWS'), none: env('PG_CONFIG_NONE') };
const screenshot = env('PG_SCREENSHOT');
const probeMs = Number(env('PG_PROBE_MS', '1000'));
const executablePath = env('PG_CHROMIUM', '/usr/bin/chromium');

const STEP_TIMEOUT = 12000; // one phase: the switch plus a message over the new transport
const log = (...a) => console.error(new Date().toISOString().slice(11, 23), ...a);

// request sends one admin request on a connection of its own. POST /load
// restarts Caddy's admin server, and a request that meets the old server's
// shutdown is closed unanswered: callers decide whether to retry.
function request(method, path, contentType, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${admin}${path}`,
      { method, agent: false, headers: contentType ? { 'Content-Type': contentType } : {}, timeout: 10000 },
      (resp) => {
        let text = '';
        resp.setEncoding('utf8');
        resp.on('data', (c) => (text += c));
        resp.on('end', () => resolve({ status: resp.statusCode, text }));
        resp.on('error', reject);
      }
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// retrying runs fn until it answers, at most 50 times.
async function retrying(what, fn) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 50) throw err;
      log(`${what}: ${err.code || err.message}; retrying`);
      await pause(20);
    }
  }
}

async function load(name) {
  // Loading the same config twice is harmless.
  const resp = await retrying('POST /load', () => request('POST', '/load', 'text/caddyfile', configs[name]));
  if (resp.status !== 200) throw new Error(`POST /load (${name}): ${resp.status} ${resp.text}`);
  log('caddy config:', name);
}

// keySeq is k's newest seq (0 when it has none yet).
async function keySeq(k) {
  const resp = await retrying('GET key', () => request('GET', `/push_gateway/keys/${encodeURIComponent(k)}`));
  if (resp.status === 404) return 0;
  if (resp.status !== 200) throw new Error(`GET key: ${resp.status} ${resp.text}`);
  return JSON.parse(resp.text).seq;
}

const lastSeqs = new Map();

// publish publishes once to k. This script is the key's only publisher, so
// when a publish goes unanswered, the key's seq tells whether it was published.
async function publish(data, k = key) {
  let lastSeq = lastSeqs.has(k) ? lastSeqs.get(k) : await keySeq(k);
  const body = JSON.stringify({ sdk_key: k, data });
  for (let attempt = 1; ; attempt++) {
    let resp;
    try {
      resp = await request('POST', '/push_gateway/publish', 'application/json', body);
    } catch (err) {
      if (attempt >= 50) throw err;
      const seq = await keySeq(k);
      log(`publish: ${err.code || err.message}; key at seq ${seq}, last published ${lastSeq}`);
      if (seq === lastSeq + 1) {
        lastSeqs.set(k, seq);
        return seq;
      }
      if (seq !== lastSeq) throw new Error(`publish: key at seq ${seq}, want ${lastSeq} or ${lastSeq + 1}`);
      await pause(20);
      continue;
    }
    if (resp.status !== 200) throw new Error(`publish: ${resp.status} ${resp.text}`);
    lastSeq = JSON.parse(resp.text).published[0].seq;
    lastSeqs.set(k, lastSeq);
    return lastSeq;
  }
}

const TOGGLES = ['dark_mode', 'new_checkout', 'beta_search', 'maintenance_banner'];
const published = [];

// publisher publishes one message every ~40 ms until stopped (bounded in
// count), so that messages are in flight during every switch.
function startPublisher() {
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop && i < 3000; i++) {
      published.push(await publish({ toggle: TOGGLES[i % 4], on: i % 3 === 0, n: i }));
      await pause(40);
    }
  })();
  return async () => {
    stop = true;
    await done;
  };
}

// multiKey follows two keys over transport alone, publishes to both
// alternately, then unfollows the second and publishes to both again. It
// answers what each key received, and what was published.
async function multiKey(context, transport) {
  const a = `${key}-${transport}-a`;
  const b = `${key}-${transport}-b`;
  const page = await context.newPage();
  try {
    await page.goto(`${site}/?key=${encodeURIComponent(a)}&key=${encodeURIComponent(b)}&transports=${transport}`);
    await page.waitForFunction((t) => window.demo?.gw.transport === t, transport, { timeout: STEP_TIMEOUT, polling: 20 });
    const published = { [a]: [], [b]: [] };
    for (let i = 0; i < 6; i++) {
      published[a].push(await publish({ toggle: 'dark_mode', on: i % 2 === 0, n: i }, a));
      published[b].push(await publish({ toggle: 'beta_search', on: i % 2 === 1, n: i }, b));
    }
    const lastA = published[a].at(-1);
    await page.waitForFunction(
      ([a, b, sa, sb]) => window.demo.log.some((m) => m.key === a && m.seq === sa) && window.demo.log.some((m) => m.key === b && m.seq === sb),
      [a, b, lastA, published[b].at(-1)],
      { timeout: STEP_TIMEOUT, polling: 20 }
    );
    await page.evaluate((b) => window.demo.gw.unfollow(b), b);
    const afterB = await publish({ toggle: 'beta_search', on: true, n: 'unfollowed' }, b);
    const afterA = await publish({ toggle: 'dark_mode', on: true, n: 'after' }, a);
    published[a].push(afterA);
    await page.waitForFunction(([a, s]) => window.demo.log.some((m) => m.key === a && m.seq === s), [a, afterA], {
      timeout: STEP_TIMEOUT,
      polling: 20,
    });
    const got = await page.evaluate(() => window.demo.log.map((m) => ({ key: m.key, seq: m.seq, transport: m.transport })));
    log('two keys over', transport, 'ok');
    return {
      keys: [a, b],
      published,
      unfollowedSeq: afterB,
      received: {
        [a]: got.filter((m) => m.key === a).map((m) => m.seq),
        [b]: got.filter((m) => m.key === b).map((m) => m.seq),
      },
      transports: [...new Set(got.map((m) => m.transport))],
    };
  } finally {
    await page.close();
  }
}

const userDataDir = mkdtempSync(join(tmpdir(), 'pg-chromium-'));
let context;
const report = { published, phases: [] };
try {
  context = await launchChromium(userDataDir, executablePath, { viewport: { width: 1000, height: 640 }, deviceScaleFactor: 1 });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  report.consoleErrors = consoleErrors;

  await page.goto(`${site}/?key=${encodeURIComponent(key)}&probe=${probeMs}`);

  // waitTransport waits until the client delivers over transport: it
  // reports it in use and a message published after now arrives over it.
  const waitTransport = async (transport) => {
    const from = await page.evaluate(() => window.demo?.log.length ?? 0);
    const t0 = Date.now();
    await page.waitForFunction(
      ([t, from]) =>
        window.demo && window.demo.gw.transport === t && window.demo.log.slice(from).some((m) => m.transport === t),
      [transport, from],
      { timeout: STEP_TIMEOUT, polling: 20 }
    );
    const ms = Date.now() - t0;
    report.phases.push({ transport, ms });
    log('delivering over', transport, `after ${ms} ms`);
  };

  // Registered before the first publish: the page follows from "now", so
  // it must get every message the script publishes.
  await page.waitForFunction(() => window.demo?.gw.transport === 'websocket', null, { timeout: STEP_TIMEOUT, polling: 20 });
  const stopPublisher = startPublisher();
  try {
    await waitTransport('websocket');
    await load('nows');
    await page.evaluate(() => window.demo.gw.reconnect()); // as after a network change
    await waitTransport('sse');
    await load('none');
    await page.evaluate(() => window.demo.gw.reconnect());
    await waitTransport('poll');
    await load('open'); // the client finds WebSocket again by itself
    await waitTransport('websocket');
  } finally {
    await stopPublisher();
  }
  const last = published[published.length - 1];
  await page
    .waitForFunction((seq) => window.demo.log.some((m) => m.seq === seq), last, { timeout: STEP_TIMEOUT, polling: 20 })
    .catch((e) => log('last seq not delivered:', e.message));

  // A known final state for the screenshot.
  const final = { dark_mode: true, new_checkout: false, beta_search: true, maintenance_banner: false };
  for (const [toggle, on] of Object.entries(final)) published.push(await publish({ toggle, on }));
  await page.waitForFunction(
    (want) => Object.entries(want).every(([k, v]) => window.demo.toggles[k] === v),
    final,
    { timeout: STEP_TIMEOUT, polling: 20 }
  );
  // Transitions off, so that the picture shows the settled state.
  await page.addStyleTag({ content: '*, *::after { transition: none !important; } .toggle.flash { background: none; }' });
  await page.evaluate(() => document.querySelectorAll('.flash').forEach((e) => e.classList.remove('flash')));
  await page.screenshot({ path: screenshot });

  Object.assign(
    report,
    await page.evaluate(() => ({
      delivered: window.demo.log.map((m) => ({ key: m.key, seq: m.seq, transport: m.transport })),
      transports: window.demo.transports,
      resyncs: window.demo.resyncs,
      toggles: window.demo.toggles,
      pill: document.getElementById('transport').textContent,
      switches: [...document.querySelectorAll('.toggle')].map((el) => {
        const r = el.querySelector('.switch').getBoundingClientRect();
        return {
          toggle: el.dataset.toggle,
          on: el.querySelector('.switch').getAttribute('aria-checked') === 'true',
          x: r.x,
          y: r.y,
          w: r.width,
          h: r.height,
        };
      }),
    }))
  );
  report.final = final;
  report.screenshot = screenshot;

  // The classic-script form defines the same client.
  await page.addScriptTag({ url: '/realtime/client.js' });
  report.classicScript = await page.evaluate(() => typeof window.PushGateway === 'function' && typeof new window.PushGateway({ keys: [] }).follow === 'function');

  // Two keys on one client, on each transport alone; then unfollow one.
  report.multiKey = {};
  for (const transport of ['websocket', 'sse', 'poll']) {
    report.multiKey[transport] = await multiKey(context, transport);
  }
} catch (err) {
  report.error = String(err && err.stack ? err.stack : err);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exitCode = report.error ? 1 : 0;
