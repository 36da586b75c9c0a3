// reference_server.mjs stands in for push_gateway's Socket.IO side with the
// real socket.io 4.8.4 server, the way FeatureProbe's own server behaves
// (seed 000: one room per SDK key, `update` emitted to the room). The Go
// tests run the SDK scripts against it with PG_FP_REFERENCE=1, to tell a
// script or backend mistake apart from a gateway one.
//
// It serves Engine.IO on /realtime and /server/realtime, with or without the
// trailing slash (any namespace),
// answers `register` ({sdk_key} or {key}) with `update ""` at once, proxies
// every other request to the toggle backend, and takes publishes on
//   POST /_pg/publish {"sdk_keys":[...],"event":"update","data":...}
//     → {"receivers":N}
//   GET  /_pg/followers?key=K → {"followers":N}
// It prints {"event":"listening","port":N} on stdout, then logs to stderr.
//
// Environment: PG_BACKEND  http://127.0.0.1:<port> of the toggle backend.

import http from 'node:http';
import { Server } from 'socket.io';

const backend = new URL(process.env.PG_BACKEND ?? '');
const log = (...a) => console.error(new Date().toISOString().slice(11, 23), 'reference:', ...a);

const server = http.createServer();
const servers = [];
for (const path of ['/realtime', '/server/realtime']) {
  // destroyUpgrade off: with two engines on one server, each sees the
  // other's upgrades and must leave them alone. No trailing slash: the
  // paths match with and without it (FeatureProbe's Go SDK sends none).
  const io = new Server(server, { path, addTrailingSlash: false, destroyUpgrade: false, cors: { origin: true } });
  const onConnection = (socket) => {
    log('connect', path, socket.nsp.name, socket.conn.transport.name);
    socket.on('register', (arg) => {
      const key = arg?.sdk_key ?? arg?.key;
      if (typeof key !== 'string' || key === '') return;
      socket.join(key);
      log('register', socket.nsp.name, key);
      socket.emit('update', '');
    });
  };
  // Dynamic namespaces take every name but the main one, "/".
  io.of(/.*/).on('connection', onConnection);
  io.on('connection', onConnection);
  servers.push(io);
}

const followers = (key) => {
  let n = 0;
  for (const io of servers) {
    for (const nsp of io._nsps.values()) n += nsp.adapter.rooms.get(key)?.size ?? 0;
  }
  return n;
};

// Engine.IO attached itself first; everything else lands here.
server.on('request', (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (/^\/(server\/)?realtime(\/|$)/.test(url.pathname)) return; // Engine.IO's
  if (url.pathname === '/_pg/followers') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ followers: followers(url.searchParams.get('key')) }));
    return;
  }
  if (url.pathname === '/_pg/publish' && req.method === 'POST') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let p;
      try {
        p = JSON.parse(body);
      } catch (e) {
        res.statusCode = 400;
        res.end(JSON.stringify({ error: String(e) }));
        return;
      }
      const keys = p.sdk_keys ?? [p.sdk_key];
      let receivers = 0;
      for (const key of keys) {
        receivers += followers(key);
        for (const io of servers) {
          for (const nsp of io._nsps.values()) nsp.to(key).emit(p.event || 'update', p.data);
        }
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ receivers }));
    });
    return;
  }
  const preq = http.request(
    { host: backend.hostname, port: backend.port, method: req.method, path: req.url, headers: req.headers },
    (pres) => {
      res.writeHead(pres.statusCode, pres.headers);
      pres.pipe(res);
    }
  );
  preq.on('error', (e) => {
    res.statusCode = 502;
    res.end(String(e));
  });
  req.pipe(preq);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ event: 'listening', port: server.address().port }) + '\n');
});
// The Go test closes stdin to stop it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
