// server_sdk.mjs runs featureprobe-server-sdk-node (2.2.0, unchanged) against
// the site and prints the value of one boolean toggle whenever it changes.
// For integration/featureprobe_test.go.
//
// The SDK's own polling is set to 10 minutes, so within a test only its
// Socket.IO `update` makes it refetch: a change it sees came by push.
//
// Output: one JSON object per line on stdout:
//   {"event":"ready","value":false,"t":<ms>}
//   {"event":"value","value":true,"t":<ms>}   (t: wall-clock ms when seen)
//   {"event":"error","error":"...","t":<ms>}
// The SDK's log goes to stderr.
//
// Environment: PG_URL (the site, the SDK's remoteUrl), PG_KEY (server SDK
// key), PG_TOGGLE (boolean toggle key). Runs until stdin closes.

import { FeatureProbe, FPUser } from 'featureprobe-server-sdk-node';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`server_sdk.mjs: ${name} is not set`);
  return v;
};
// t: wall-clock ms with sub-ms precision, comparable with the Go test's clock.
const out = (o) => process.stdout.write(JSON.stringify({ ...o, t: performance.timeOrigin + performance.now() }) + '\n');
const logLine = (level) => (...a) =>
  console.error(new Date().toISOString().slice(11, 23), `sdk ${level}:`, ...a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))));
// A pino-shaped logger on stderr: pino's default is stdout, which is ours.
const logger = { info: logLine('info'), debug: () => {}, warn: logLine('warn'), error: logLine('error'), flush: () => {} };

const toggle = env('PG_TOGGLE');
const fp = new FeatureProbe({ remoteUrl: env('PG_URL'), serverSdkKey: env('PG_KEY'), refreshInterval: 600000, logger });
const user = new FPUser().stableRollout('pg-user');
await fp.start(15000);
if (!fp.initialized) {
  out({ event: 'error', error: 'not initialized within 15s' });
  process.exit(1);
}
let last = fp.booleanValue(toggle, user, null);
out({ event: 'ready', value: last });
// The SDK has no change callback: watch the repository it swaps in.
const watch = setInterval(() => {
  const v = fp.booleanValue(toggle, user, null);
  if (v !== last) {
    last = v;
    out({ event: 'value', value: v });
  }
}, 2);

process.stdin.on('end', () => {
  clearInterval(watch);
  process.exit(0);
});
process.stdin.resume();
