// cluster.mjs holds one page in real Chromium for
// integration/browser_cluster_test.go: a page served by gateway node A that
// loads A's <route>/client.js and follows one key with discover on. The Go
// test publishes, kills or stops nodes; this script only watches the page,
// on command.
//
// Protocol: one JSON object per line. On stdout, first the page's state
// once the client delivers over its first transport ({"ready":true, …}),
// then one state per command read from stdin:
//   {"wait":{"count":N,"node":"gw-b","timeout_ms":M}}
//       waits until the page holds N messages and a connection is up on
//       that node (either optional), at most M ms; the state carries
//       "error" when the time ran out
//   {"quit":true}   closes Chromium and exits
// Progress goes to stderr. Every wait is bounded.
//
// Environment:
//   PG_SITE        http://127.0.0.1:<port>: node A's site; the page is <site>/page
//   PG_ROUTE       the push_gateway route (default /realtime)
//   PG_KEY         the SDK key the page follows
//   PG_TRANSPORTS  comma-separated transports for the client (default all)
//   PG_ZONE        the client's zone option (default none)
//   PG_CHROMIUM    the browser (default /usr/bin/chromium)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { launchChromium } from './chromium.mjs';

const env = (name, def) => {
  const v = process.env[name] ?? def;
  if (v === undefined || v === '') throw new Error(`cluster.mjs: ${name} is not set`);
  return v;
};
const site = env('PG_SITE');
const route = env('PG_ROUTE', '/realtime');
const key = env('PG_KEY');
const transports = env('PG_TRANSPORTS', 'websocket,sse,poll').split(',');
const zone = process.env.PG_ZONE || null;
const executablePath = env('PG_CHROMIUM', '/usr/bin/chromium');

const READY_TIMEOUT = 20000; // Chromium start, page load, first connection
const log = (...a) => console.error(new Date().toISOString().slice(11, 23), 'cluster.mjs:', ...a);
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const userDataDir = mkdtempSync(join(tmpdir(), 'pg-chromium-'));
let context;
let page;
const consoleErrors = [];

// state is what the page saw: every message with the node it came from,
// every node the client was up on, the node list it holds.
async function state(extra = {}) {
  const s = await page.evaluate(() => ({
    log: window.pg.log,
    nodes: window.pg.nodes,
    transports: window.pg.transports,
    resyncs: window.pg.resyncs,
    errors: window.pg.errors,
    node: window.pg.gw.node,
    transport: window.pg.gw.transport,
    list: window.pg.gw.nodes(),
  }));
  return { ...s, consoleErrors, ...extra };
}

async function start() {
  context = await launchChromium(userDataDir, executablePath);
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(`${site}/page`);
  await page.addScriptTag({ url: `${route}/client.js` });
  await page.evaluate(
    ([route, key, transports, zone]) => {
      const pg = { log: [], nodes: [], transports: [], resyncs: [], errors: [] };
      window.pg = pg;
      pg.gw = new window.PushGateway({
        url: route,
        keys: [key],
        transports,
        discover: true,
        zone,
        backoffMin: 100,
        onMessage(k, m) {
          pg.log.push({ key: k, seq: m.seq, epoch: m.epoch, data: m.data, transport: m.transport, node: pg.gw.node.id });
        },
        onResync(k, p) {
          pg.resyncs.push({ key: k, epoch: p.epoch, seq: p.seq });
        },
        onNode(n) {
          pg.nodes.push({ id: n.id, address: n.address, at: Date.now() });
        },
        onTransport(t) {
          if (t) pg.transports.push(t);
        },
        onError(err) {
          pg.errors.push(String(err));
        },
      });
    },
    [route, key, transports, zone]
  );
  // Registered before the test publishes (the page follows from "now"),
  // and the node list at start read, so that the peers are known.
  await page.waitForFunction(() => window.pg.gw.transport !== null && window.pg.gw.nodes().length > 0, null, {
    timeout: READY_TIMEOUT,
    polling: 20,
  });
  log('ready on', await page.evaluate(() => JSON.stringify(window.pg.gw.node)));
}

async function wait({ count = 0, node = null, timeout_ms: timeout = 10000 }) {
  try {
    await page.waitForFunction(
      ([count, node]) =>
        window.pg.log.length >= count && (node === null || (window.pg.gw.node.id === node && window.pg.gw.transport !== null)),
      [count, node],
      { timeout, polling: 20 }
    );
    return state();
  } catch (err) {
    return state({ error: `waiting for ${count} messages on node ${node}: ${err.message}` });
  }
}

let failed = false;
try {
  await start();
  send(await state({ ready: true }));
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const cmd = JSON.parse(line);
    if (cmd.quit) break;
    if (cmd.wait) send(await wait(cmd.wait));
    else send({ error: `unknown command ${line}` });
  }
} catch (err) {
  failed = true;
  send({ error: String(err && err.stack ? err.stack : err), consoleErrors });
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
