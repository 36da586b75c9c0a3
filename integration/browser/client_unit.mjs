// client_unit.mjs tests client/push-gateway.js under node with a fake
// WebSocket and a fake fetch: what a real browser and gateway cannot be
// made to do on cue (a socket that goes silent, a gap, a 503 with
// Retry-After, a resync). integration/browser_test.go runs it; it prints
// one JSON line {"passed":[...],"failed":[{"name","error"}]}.
//
// Usage: node client_unit.mjs <path of push-gateway.js>

import { loader, sleep, until, equal, json, fakeWS, run } from './client_kit.mjs';

const load = loader(process.argv[2]);

function recorder() {
  const got = [];
  const resyncs = [];
  const used = [];
  // Only the callbacks: the rest is spread into the client's options.
  const rec = {
    onMessage: (key, m) => got.push(`${key}:${m.seq}`),
    onResync: (key, p) => resyncs.push(`${key}:${p.epoch}:${p.seq}`),
    onTransport: (t) => used.push(t),
    onError: () => {},
  };
  Object.defineProperties(rec, {
    got: { value: got },
    resyncs: { value: resyncs },
    used: { value: used },
  });
  return rec;
}

const tests = {
  async 'websocket: registers with since, delivers once and in order, acks'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const r = recorder();
    const gw = new PushGateway({ ...r, url: '/realtime', keys: { K: { since: 4, epoch: 'E' } }, WebSocket: FakeWS, ackDelay: 5 });
    const ws = sockets[0];
    equal(ws.url, 'ws://gw.test/realtime', 'url');
    ws.open();
    equal(ws.registers(), [{ type: 'register', sdk_key: 'K', since: 4, epoch: 'E' }], 'register');
    ws.recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 6 });
    equal(gw.transport, 'websocket', 'transport');
    for (const seq of [4, 5, 6, 5]) ws.recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq, event: 'update', data: {} });
    equal(r.got, ['K:5', 'K:6'], 'delivered');
    await until('ack', () => ws.sent.some((m) => m.type === 'ack'));
    equal(ws.sent.filter((m) => m.type === 'ack'), [{ type: 'ack', sdk_key: 'K', seq: 6 }], 'acks');
    gw.close();
  },

  async 'websocket: a silent socket is pinged, then replaced; the new one resumes'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K'], WebSocket: FakeWS, heartbeat: 30, pongTimeout: 30, backoffMin: 5 });
    sockets[0].open();
    sockets[0].recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 2 });
    sockets[0].recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq: 3, data: 1 });
    await until('ping', () => sockets[0].sent.some((m) => m.type === 'ping'));
    await until('a new socket', () => sockets.length === 2);
    sockets[1].open();
    equal(sockets[1].registers(), [{ type: 'register', sdk_key: 'K', since: 3, epoch: 'E' }], 'resume');
    gw.close();
  },

  async 'websocket: a pong keeps the socket'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K'], WebSocket: FakeWS, heartbeat: 30, pongTimeout: 60 });
    sockets[0].open();
    sockets[0].recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 0 });
    for (let i = 0; i < 4; i++) {
      const pings = sockets[0].sent.filter((m) => m.type === 'ping').length;
      await until('ping', () => sockets[0].sent.filter((m) => m.type === 'ping').length > pings);
      sockets[0].recv({ type: 'pong' });
    }
    equal(sockets.length, 1, 'sockets');
    gw.close();
  },

  async 'websocket: a gap reconnects from the last seq delivered'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K'], WebSocket: FakeWS, backoffMin: 5 });
    sockets[0].open();
    sockets[0].recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 0 });
    sockets[0].recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq: 1 });
    sockets[0].recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq: 3 });
    await until('a new socket', () => sockets.length === 2);
    sockets[1].open();
    equal(sockets[1].registers()[0].since, 1, 'since');
    sockets[1].recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 3 });
    for (const seq of [2, 3]) sockets[1].recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq });
    equal(r.got, ['K:1', 'K:2', 'K:3'], 'delivered');
    gw.close();
  },

  async 'websocket: resync moves the position and tells the application'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: { K: { since: 9, epoch: 'old' } }, WebSocket: FakeWS });
    sockets[0].open();
    sockets[0].recv({ type: 'registered', sdk_key: 'K', epoch: 'new', seq: 2 });
    sockets[0].recv({ type: 'resync', sdk_key: 'K', epoch: 'new', seq: 2 });
    sockets[0].recv({ type: 'message', sdk_key: 'K', epoch: 'new', seq: 3 });
    equal(r.resyncs, ['K:new:2'], 'resyncs');
    equal(r.got, ['K:3'], 'delivered');
    equal(gw.position('K'), { since: 3, epoch: 'new' }, 'position');
    gw.close();
  },

  async 'degrades after two failures, probes back up without doubling'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const r = recorder();
    let polls = 0;
    const fetch = (url, init) => {
      polls++;
      const u = new URL(url);
      if (u.searchParams.get('wait') === '0s') {
        return Promise.resolve(json(200, { keys: { K: { epoch: 'E', seq: 7, messages: [], resync: false } } }));
      }
      // A held poll: answers seq 8 once, then holds until aborted.
      if (u.searchParams.get('since') === '7') {
        return Promise.resolve(json(200, { keys: { K: { epoch: 'E', seq: 8, messages: [{ seq: 8, event: 'update', data: 8 }] } } }));
      }
      return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    };
    const gw = new PushGateway({
      ...r,
      keys: ['K'],
      transports: ['websocket', 'poll'],
      WebSocket: FakeWS,
      fetch,
      backoffMin: 5,
      probeInterval: 40,
    });
    sockets[0].refuse();
    await until('second socket', () => sockets.length === 2);
    sockets[1].refuse();
    await until('poll', () => gw.transport === 'poll');
    await until('seq 8', () => r.got.length === 1);
    await until('probe', () => sockets.length === 3);
    sockets[2].refuse(); // a failed probe keeps the poll
    await until('another probe', () => sockets.length === 4);
    const probe = sockets[3];
    probe.open();
    equal(probe.registers(), [{ type: 'register', sdk_key: 'K', since: 8, epoch: 'E' }], 'probe register');
    probe.recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 9 });
    equal(gw.transport, 'websocket', 'transport');
    probe.recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq: 8 });
    probe.recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq: 9 });
    equal(r.got, ['K:8', 'K:9'], 'delivered');
    equal(r.used.filter(Boolean), ['poll', 'websocket'], 'transports');
    const before = polls;
    await sleep(50);
    equal(polls, before, 'polls after the switch');
    gw.close();
  },

  async 'poll: Retry-After of a 503 is honoured; several keys use since.K'() {
    const PushGateway = load();
    const r = recorder();
    const calls = [];
    const fetch = (url, init) => {
      calls.push({ t: Date.now(), u: new URL(url) });
      if (calls.length === 1) return Promise.resolve(json(503, { error: 'busy' }, { 'Retry-After': '1' }));
      if (calls.length > 2) return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      return Promise.resolve(
        json(200, {
          keys: {
            A: { epoch: 'E', seq: 3, messages: [{ seq: 3, data: 'a' }] },
            B: { epoch: 'F', seq: 1, messages: [] },
          },
        })
      );
    };
    const gw = new PushGateway({ ...r, keys: { A: { since: 2, epoch: 'E' }, B: {} }, transports: ['poll'], fetch, backoffMin: 5 });
    await until('second poll', () => calls.length >= 2, 3000);
    const waited = calls[1].t - calls[0].t;
    if (waited < 950) throw new Error(`retried after ${waited} ms, want ≥ 1000 (Retry-After: 1)`);
    const q = calls[1].u.searchParams;
    equal([q.getAll('sdk_key'), q.get('since.A'), q.get('epoch.A'), q.get('since.B'), q.get('cid') === gw.cid], [['A', 'B'], '2', 'E', null, true], 'query');
    await until('delivery', () => r.got.length === 1);
    equal(r.got, ['A:3'], 'delivered');
    await until('third poll', () => calls.length >= 3);
    const q3 = calls[2].u.searchParams;
    equal([q3.get('since.A'), q3.get('since.B'), q3.get('epoch.B')], ['3', '1', 'F'], 'next query');
    gw.close();
  },

  async 'poll: a gateway answering at once with nothing is not polled in a busy loop'() {
    const PushGateway = load();
    const r = recorder();
    let calls = 0;
    const fetch = () => {
      calls++;
      return Promise.resolve(json(200, { keys: { K: { epoch: 'E', seq: 1, messages: [] } } }));
    };
    const gw = new PushGateway({ ...r, keys: ['K'], transports: ['poll'], fetch, backoffMin: 50 });
    await sleep(300); // a window to count requests in, not a synchronisation
    gw.close();
    if (calls < 2 || calls > 12) throw new Error(`${calls} polls in 300 ms, want a handful (one per ~50 ms)`);
  },

  async 'sse: parses ids, events of any name, resync, and resumes after a drop'() {
    const PushGateway = load();
    const r = recorder();
    const urls = [];
    const streams = [
      ': hi\n\nid: E:4\n\nid: E:5\nevent: custom\ndata: {"x":1}\n\nid: E:6\r\nevent: update\r\ndata: "y"\r\n\r\n',
      'event: resync\ndata: {"epoch":"E2","seq":10}\n\nid: E2:11\nevent: update\ndata: 11\n\n',
    ];
    const fetch = (url) => {
      urls.push(new URL(url));
      const body = streams.shift();
      if (body === undefined) return new Promise(() => {});
      return Promise.resolve(
        new Response(
          new ReadableStream({
            start(c) {
              // Split mid-line to test buffering.
              const b = new TextEncoder().encode(body);
              c.enqueue(b.slice(0, 7));
              c.enqueue(b.slice(7));
              c.close();
            },
          }),
          { headers: { 'Content-Type': 'text/event-stream' } }
        )
      );
    };
    const gw = new PushGateway({ ...r, keys: ['K'], transports: ['sse'], fetch, backoffMin: 5 });
    await until('third stream', () => urls.length === 3);
    equal(r.got, ['K:5', 'K:6', 'K:11'], 'delivered');
    equal(r.resyncs, ['K:E2:10'], 'resyncs');
    equal([urls[0].searchParams.get('since'), urls[1].searchParams.get('since'), urls[1].searchParams.get('epoch')], [null, '6', 'E'], 'resume');
    equal(urls[2].searchParams.get('since'), '11', 'resume after resync');
    gw.close();
  },
};

await run(tests);
