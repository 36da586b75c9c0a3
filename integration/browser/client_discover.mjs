// client_discover.mjs tests the node discovery of client/push-gateway.js
// (discover: true) under node, with a fake WebSocket and a fake fetch that
// plays several gateway nodes: which node the client goes to when its node
// says 1001, dies, or refuses; that each key resumes from its position
// there; that addresses change scheme per transport. The real thing, two
// caddy nodes on one Redis and Chromium, is browser_cluster_test.go.
// integration/browser_cluster_test.go runs it; it prints one JSON line
// {"passed":[...],"failed":[{"name","error"}]}.
//
// Usage: node client_discover.mjs <path of push-gateway.js>

import { loader, sleep, until, equal, json, fakeWS, run } from './client_kit.mjs';

const load = loader(process.argv[2]);

// nodesFetch answers <route>/nodes from lists, a map from the nodes URL to
// a list, a function returning one, or an Error (the node is down); every
// other URL goes to rest. It records the nodes URLs asked.
function nodesFetch(lists, rest) {
  const asked = [];
  const fetch = (url, init) => {
    const u = new URL(url);
    if (u.pathname.endsWith('/nodes')) {
      asked.push(u.href);
      let l = lists[u.href];
      if (typeof l === 'function') l = l();
      if (l instanceof Promise) return l;
      if (l === undefined || l instanceof Error) return Promise.reject(l || new TypeError('Failed to fetch'));
      return Promise.resolve(json(200, { nodes: l }));
    }
    if (rest) return rest(url, init);
    return Promise.reject(new TypeError('Failed to fetch'));
  };
  return { fetch, asked };
}

function recorder() {
  const got = [];
  const nodes = [];
  const rec = {
    onMessage: (key, m) => got.push(`${key}:${m.seq}`),
    onNode: (n, prev) => nodes.push(`${prev ? prev.id : '-'}>${n.id}`),
    onError: () => {},
  };
  Object.defineProperties(rec, { got: { value: got }, nodes: { value: nodes } });
  return rec;
}

// up opens socket s and registers keys (name → seq) on it.
function up(s, keys) {
  s.open();
  for (const [k, seq] of Object.entries(keys)) s.recv({ type: 'registered', sdk_key: k, epoch: 'E', seq });
}

const A = 'ws://gw.test/realtime';
const node = (id, address, connections, zone) => ({ id, address, zone, connections, started: 1, updated: 2 });

const tests = {
  async 'discover off: no node list, a 1001 retries the url given'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const { fetch, asked } = nodesFetch({});
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K'], WebSocket: FakeWS, fetch, backoffMin: 5 });
    up(sockets[0], { K: 0 });
    sockets[0].closed(1001);
    await until('a new socket', () => sockets.length === 2);
    equal([sockets[1].url, asked], [A, []], 'url and lists asked');
    equal(gw.node, { id: null, address: 'http://gw.test/realtime', zone: null }, 'node');
    gw.close();
  },

  async '1001: the least-loaded other node, each key resumed, onNode told'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    let aList = [node('gw-c', 'ws://c.test/realtime', 1), node('gw-a', A, 2), node('gw-b', 'ws://b.test/realtime', 3)];
    const { fetch, asked } = nodesFetch({
      'http://gw.test/realtime/nodes': () => aList,
      'http://c.test/realtime/nodes': [node('gw-c', 'ws://c.test/realtime', 2), node('gw-b', 'ws://b.test/realtime', 3)],
    });
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K', 'L'], WebSocket: FakeWS, fetch, discover: true, backoffMin: 5 });
    await until('the list at start', () => asked.length === 1 && gw.nodes().length === 3);
    up(sockets[0], { K: 0, L: 7 });
    equal(gw.node, { id: 'gw-a', address: A, zone: null }, 'node at start');
    for (const seq of [1, 2]) sockets[0].recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq });
    // A leaves the list, then closes: its list no longer names it, and the
    // least loaded of the rest is C.
    aList = [node('gw-c', 'ws://c.test/realtime', 1), node('gw-b', 'ws://b.test/realtime', 3)];
    sockets[0].closed(1001);
    await until('a new socket', () => sockets.length === 2);
    equal(sockets[1].url, 'ws://c.test/realtime', 'url');
    up(sockets[1], {});
    equal(
      sockets[1].registers(),
      [
        { type: 'register', sdk_key: 'K', since: 2, epoch: 'E' },
        { type: 'register', sdk_key: 'L', since: 7, epoch: 'E' },
      ],
      'registers'
    );
    sockets[1].recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 3 });
    sockets[1].recv({ type: 'registered', sdk_key: 'L', epoch: 'E', seq: 7 });
    sockets[1].recv({ type: 'message', sdk_key: 'K', epoch: 'E', seq: 3 });
    equal(r.got, ['K:1', 'K:2', 'K:3'], 'delivered');
    equal(gw.node, { id: 'gw-c', address: 'ws://c.test/realtime', zone: null }, 'node');
    equal(r.nodes, ['->gw-a', 'gw-a>gw-c'], 'onNode');
    // Up on C, the client takes C's list for the next loss.
    await until('the list from C', () => asked.includes('http://c.test/realtime/nodes'));
    gw.close();
  },

  async 'killed: a retry on the same node, then the list held; rotation, then back to the url'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    const list = [node('gw-a', A, 0), node('gw-b', 'ws://b.test/realtime', 1), node('gw-c', 'ws://c.test/realtime', 2), node('gw-x', '', 0)];
    let aDown = false;
    const { fetch } = nodesFetch({ 'http://gw.test/realtime/nodes': () => (aDown ? new Error('refused') : list) });
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K'], transports: ['websocket'], WebSocket: FakeWS, fetch, discover: true, backoffMin: 5 });
    await until('the list at start', () => gw.nodes().length === 4);
    up(sockets[0], { K: 4 });
    aDown = true;
    sockets[0].closed(1006); // killed: no 1001
    for (let i = 1; i <= 4; i++) {
      await until(`socket ${i}`, () => sockets.length === i + 1);
      sockets[i].closed(1006); // refused
    }
    await until('socket 5', () => sockets.length === 6);
    // Same node first (a blip), then B and C from the list, no address for
    // X, and back to the url given, and round again.
    equal(
      sockets.map((s) => s.url),
      [A, A, 'ws://b.test/realtime', 'ws://c.test/realtime', A, 'ws://b.test/realtime'],
      'urls'
    );
    up(sockets[5], {});
    equal(sockets[5].registers(), [{ type: 'register', sdk_key: 'K', since: 4, epoch: 'E' }], 'resume');
    sockets[5].recv({ type: 'registered', sdk_key: 'K', epoch: 'E', seq: 4 });
    equal([gw.transport, gw.node.id], ['websocket', 'gw-b'], 'transport and node');
    gw.close();
  },

  async 'sse: ": shutdown" moves; zone first; wss address opened as https'() {
    const PushGateway = load();
    const urls = [];
    const streams = ['id: E:4\n\nid: E:5\nevent: update\ndata: 5\n\n: shutdown\n\n'];
    const { fetch, asked } = nodesFetch(
      {
        'http://gw.test/realtime/nodes': [
          node('gw-x', 'wss://x.test/rt', 0, 'z2'),
          node('gw-y', 'wss://y.test/rt/', 4, 'z1'),
          node('gw-a', A, 5, 'z1'),
        ],
      },
      (url, init) => {
        urls.push(new URL(url));
        const body = streams.shift();
        // Later streams stay open (until aborted), with nothing to say.
        const stream =
          body === undefined
            ? new ReadableStream({ start: (c) => init.signal.addEventListener('abort', () => c.error(new Error('aborted'))) })
            : body;
        return Promise.resolve(new Response(stream, { headers: { 'Content-Type': 'text/event-stream' } }));
      }
    );
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: { K: { since: 4, epoch: 'E' } }, transports: ['sse'], fetch, discover: true, zone: 'z1', backoffMin: 5 });
    await until('second stream', () => urls.length === 2);
    equal(r.got, ['K:5'], 'delivered');
    const u = urls[1];
    equal([u.origin + u.pathname, u.searchParams.get('since'), u.searchParams.get('epoch')], ['https://y.test/rt/', '5', 'E'], 'stream on Y');
    await until('up on Y', () => gw.transport === 'sse');
    equal(gw.node.id, 'gw-y', 'node');
    await until('the list from Y', () => asked.includes('https://y.test/rt/nodes'));
    gw.close();
  },

  async 'poll: a node that refuses is left for the next one, ws address opened as http'() {
    const PushGateway = load();
    const polls = [];
    const { fetch } = nodesFetch(
      { 'http://gw.test/realtime/nodes': [node('gw-a', A, 0), node('gw-b', 'ws://b.test:8080/realtime', 1)] },
      (url, init) => {
        const u = new URL(url);
        polls.push(u);
        if (u.host === 'gw.test') return Promise.resolve(json(503, { error: 'the gateway is shutting down' }));
        if (u.searchParams.get('wait') === '0s') return Promise.resolve(json(200, { keys: { K: { epoch: 'E', seq: 2, messages: [] } } }));
        return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      }
    );
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: { K: { since: 2, epoch: 'E' } }, transports: ['poll'], fetch, discover: true, backoffMin: 5 });
    await until('up', () => gw.transport === 'poll');
    const last = polls[polls.length - 1];
    equal([last.origin + last.pathname, last.searchParams.get('since')], ['http://b.test:8080/realtime', '2'], 'poll on B');
    equal(gw.node.id, 'gw-b', 'node');
    gw.close();
  },

  async 'a pick still pending when the application reconnects is dropped'() {
    const PushGateway = load();
    const { FakeWS, sockets } = fakeWS();
    let release;
    const held = new Promise((r) => (release = r));
    let calls = 0;
    const { fetch } = nodesFetch({
      'http://gw.test/realtime/nodes': () => (++calls === 1 ? [node('gw-a', A, 0), node('gw-b', 'ws://b.test/realtime', 1)] : held),
    });
    const r = recorder();
    const gw = new PushGateway({ ...r, keys: ['K'], WebSocket: FakeWS, fetch, discover: true, backoffMin: 5, nodesTimeout: 2000 });
    await until('the list at start', () => gw.nodes().length === 2);
    up(sockets[0], { K: 0 });
    sockets[0].closed(1001); // the pick waits on A's list
    await until('the second list asked', () => calls === 2);
    gw.reconnect();
    equal([sockets.length, sockets[1].url], [2, A], 'reconnect on the node held');
    release(json(200, { nodes: [node('gw-b', 'ws://b.test/realtime', 1)] }));
    await sleep(50); // a window for a stale pick to connect, not a synchronisation
    equal(sockets.length, 2, 'sockets');
    gw.close();
  },
};

await run(tests);
