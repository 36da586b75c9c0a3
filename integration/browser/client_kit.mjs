// client_kit.mjs is what client_unit.mjs and client_discover.mjs share to
// test client/push-gateway.js under node: the loader, a fake WebSocket the
// test drives, the waits and checks, and the runner that prints one JSON
// line {"passed":[...],"failed":[{"name","error"}]} for the Go test
// (runClientTests in integration/browser_test.go).

import { readFileSync } from 'node:fs';
import vm from 'node:vm';

// loader reads the classic script at path once; each call of the function
// it returns evaluates it in a fresh context, as a page would, and returns
// its PushGateway.
export function loader(path) {
  const src = readFileSync(path, 'utf8');
  return () => {
    const ctx = vm.createContext({
      setTimeout,
      clearTimeout,
      console,
      URL,
      AbortController,
      TextDecoder,
      crypto: globalThis.crypto,
      location: { href: 'http://gw.test/demo/' },
    });
    vm.runInContext(src, ctx);
    return ctx.PushGateway;
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(what, cond, ms = 3000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export const equal = (a, b, what) => {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
};

export function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

// fakeWS stands in for the browser's WebSocket; tests drive it. sockets
// holds every one the client opened, in order.
export function fakeWS() {
  const sockets = [];
  class FakeWS {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
    }
    close() {
      this.readyState = 3;
    }
    // test side
    open() {
      this.readyState = 1;
      this.onopen?.();
    }
    recv(obj) {
      this.onmessage?.({ data: JSON.stringify(obj) });
    }
    // closed ends the socket as the gateway or the network would; 1006
    // (refused, killed) comes with an error first, as in a browser.
    closed(code) {
      this.readyState = 3;
      if (code === 1006) this.onerror?.({});
      this.onclose?.({ code });
    }
    refuse() {
      this.closed(1006);
    }
    registers() {
      return this.sent.filter((m) => m.type === 'register');
    }
  }
  return { FakeWS, sockets };
}

// run runs tests (name → async function) one after the other, each within
// 10 s, prints the JSON line and exits 1 if any failed.
export async function run(tests) {
  const result = { passed: [], failed: [] };
  for (const [name, fn] of Object.entries(tests)) {
    try {
      await Promise.race([fn(), sleep(10000).then(() => Promise.reject(new Error('test timed out')))]);
      result.passed.push(name);
    } catch (err) {
      result.failed.push({ name, error: String(err && err.stack ? err.stack : err) });
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(result.failed.length ? 1 : 0);
}
