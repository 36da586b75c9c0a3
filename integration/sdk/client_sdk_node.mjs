// client_sdk_node.mjs runs featureprobe-client-sdk-js (2.2.0, unchanged) in
// node with the few browser globals it touches, against the site, and
// prints one boolean toggle whenever the SDK reports new toggles. For
// integration/featureprobe_test.go.
//
// What the SDK touches outside node (dist/src): `window` and `document`
// (existence checks, then addEventListener for unload/visibility flushes),
// `localStorage` (getItem/setItem, the toggle cache), fetch (node has it;
// whatwg-fetch leaves it alone) and socket.io-client (its node build uses
// the `ws` package). Auto-reporting (clicks, page views) is off: it needs a DOM.
// Its polling is set to 10 minutes, so within a test only its Socket.IO
// `update` makes it refetch.
//
// Output: one JSON object per line on stdout:
//   {"event":"ready","value":false,"t":<ms>}
//   {"event":"value","value":true,"t":<ms>}   (t: wall-clock ms when the SDK emitted update)
//   {"event":"error","error":"...","t":<ms>}
//
// Environment: PG_URL (the site, the SDK's remoteUrl), PG_KEY (client SDK
// key), PG_TOGGLE (boolean toggle key). Runs until stdin closes.

const listeners = { addEventListener() {}, removeEventListener() {} };
const store = new Map();
globalThis.window = { ...listeners, location: { href: 'http://localhost/' } };
globalThis.document = { ...listeners, visibilityState: 'visible' };
globalThis.localStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};

const { FeatureProbe, FPUser } = (await import('featureprobe-client-sdk-js')).default;

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`client_sdk_node.mjs: ${name} is not set`);
  return v;
};
// t: wall-clock ms with sub-ms precision, comparable with the Go test's clock.
const out = (o) => process.stdout.write(JSON.stringify({ ...o, t: performance.timeOrigin + performance.now() }) + '\n');

const toggle = env('PG_TOGGLE');
const fp = new FeatureProbe({
  remoteUrl: env('PG_URL'),
  clientSdkKey: env('PG_KEY'),
  user: new FPUser('pg-user'),
  refreshInterval: 600000,
  timeoutInterval: 15000,
  enableAutoReporting: false,
});
let last;
fp.on('ready', () => {
  last = fp.boolValue(toggle, null);
  out({ event: 'ready', value: last });
});
fp.on('error', () => out({ event: 'error', error: 'the SDK gave up initialising' }));
fp.on('fetch_toggle_error', () => out({ event: 'error', error: 'fetching toggles failed' }));
fp.on('update', () => {
  const v = fp.boolValue(toggle, null);
  if (v !== last) {
    last = v;
    out({ event: 'value', value: v });
  }
});
fp.start();

process.stdin.on('end', () => {
  fp.stop();
  process.exit(0);
});
process.stdin.resume();
