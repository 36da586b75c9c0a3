// sioclient.mjs is a plain socket.io-client (the pinned 4.8.x) the way
// FeatureProbe's SDKs use it: connect to the namespace, emit `register`,
// print every `update`. For integration/featureprobe_test.go.
//
// Output: one JSON object per line on stdout:
//   {"event":"open","transport":"polling","t":<ms>}   (the Engine.IO session)
//   {"event":"connect","transport":"websocket","t":<ms>}
//   {"event":"upgrade","transport":"websocket","t":<ms>}
//   {"event":"update","args":[...],"transport":"...","t":<ms>}
//   {"event":"error","error":"...","t":<ms>}
// t is the wall clock (ms, sub-ms precision) when the event reached the script.
//
// Environment:
//   PG_URL          http://127.0.0.1:<port>: the site
//   PG_PATH         the Engine.IO path (e.g. /realtime/)
//   PG_NAMESPACE    the namespace (e.g. /realtime)
//   PG_KEY          the SDK key to register
//   PG_FIELD        the register field: sdk_key (client SDKs) or key (server SDKs)
//   PG_TRAILING_SLASH  0: request PG_PATH as given (socket.io-client adds a
//                   slash by default; FeatureProbe's Go SDK sends none)
//   PG_TRANSPORTS   comma list (e.g. websocket); empty: the client's default
//                   (polling first, then the upgrade)
// The script runs until stdin closes.

import { io } from 'socket.io-client';

const env = (name, def) => {
  const v = process.env[name] ?? def;
  if (v === undefined) throw new Error(`sioclient.mjs: ${name} is not set`);
  return v;
};
// t: wall-clock ms with sub-ms precision, comparable with the Go test's clock.
const out = (o) => process.stdout.write(JSON.stringify({ ...o, t: performance.timeOrigin + performance.now() }) + '\n');

const transports = env('PG_TRANSPORTS', '').split(',').filter(Boolean);
const opts = { path: env('PG_PATH'), reconnection: false };
if (env('PG_TRAILING_SLASH', '1') === '0') opts.addTrailingSlash = false;
if (transports.length) opts.transports = transports;
const socket = io(env('PG_URL') + env('PG_NAMESPACE'), opts);
const transport = () => socket.io.engine?.transport?.name;

// The Engine.IO session opens (over its first transport) before the
// namespace connects, and may upgrade before that too.
socket.io.on('open', () => {
  out({ event: 'open', transport: transport() });
  socket.io.engine.on('upgrade', (t) => out({ event: 'upgrade', transport: t.name }));
});
socket.on('connect', () => {
  out({ event: 'connect', transport: transport() });
  socket.emit('register', { [env('PG_FIELD', 'sdk_key')]: env('PG_KEY') });
});
socket.on('update', (...args) => out({ event: 'update', args, transport: transport() }));
// Reconnection is off: a failed connect or a disconnect ends the script, so
// the test fails at once with the reason rather than at its deadline.
socket.on('connect_error', (e) => {
  out({ event: 'error', error: `connect_error: ${e.message}${e.description ? ` (${e.description})` : ''}` });
  process.exit(2);
});
let closing = false;
socket.on('disconnect', (reason) => {
  if (closing) return;
  out({ event: 'error', error: `disconnect: ${reason}` });
  process.exit(2);
});

process.stdin.on('end', () => {
  closing = true;
  socket.close();
  process.exit(0);
});
process.stdin.resume();
