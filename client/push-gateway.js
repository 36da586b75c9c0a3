/*
 * push_gateway browser client. Plain JavaScript, no dependencies, no build step.
 *
 * The gateway serves this file twice from the same bytes:
 *   <route>/client.js   a classic script: sets globalThis.PushGateway
 *   <route>/client.mjs  an ES module:     import { PushGateway } from '<route>/client.mjs'
 *                        (this file followed by an `export` line)
 *
 *   const gw = new PushGateway({
 *     url: '/realtime',                     // the push_gateway route
 *     keys: ['K'],                          // or {K: {since: 42, epoch: 'E'}}
 *     onMessage(key, msg) {},               // msg: {seq, epoch, event, data, ts, transport}
 *     onResync(key, {epoch, seq}) {},       // history lost: pull full state, then continue
 *     onTransport(name, previous) {},       // 'websocket' | 'sse' | 'poll'; null while reconnecting
 *     transports: ['websocket', 'sse', 'poll'],
 *     discover: false,                      // true: move to another gateway node when this one goes
 *     zone: null,                           // with discover: prefer nodes of this zone
 *     onNode(node, previous) {},            // {id, address, zone}: a connection came up on another
 *                                           // node, or the node list named this one (id null: unlisted)
 *   });
 *   gw.follow('K2'); gw.unfollow('K'); gw.reconnect(); gw.close(); gw.transport; gw.node; gw.nodes();
 *
 * Guarantees: each key's messages reach onMessage once each and in seq order,
 * across reconnects and transport switches (the client keeps since/epoch per
 * key, drops what it already has, and resumes from it on a gap).
 * A transport that fails `failuresBeforeDegrade` times in a row gives way to
 * the next one in `transports`; while degraded, the client probes the first
 * one every `probeInterval` ms and moves back to it once it registers.
 *
 * Node discovery (discover: true): every gateway node lists the live nodes
 * of its cluster at <route>/nodes, least loaded first. The client reads the
 * list once at start (so that it knows the peers even if its node dies
 * without a word) and again whenever its node is lost: told 1001 "going
 * away" (an SSE ": shutdown" comment), or a connection that cannot be
 * opened. It then connects to the least-loaded node it has not tried since
 * a connection last worked, preferring `zone`; when none is left, it goes
 * back to `url` and starts over. When the lost node does not answer, the
 * list fetched last from any node serves. The per-key since/epoch travel
 * along: the cluster shares seqs and history, so the new node resumes
 * each key where the old one stopped. A connection that dropped after
 * working is first retried on the same node (a network blip should not
 * move clients around); only when that fails does the client move.
 *
 * Server-Sent Events are read with fetch() rather than EventSource: that
 * receives events of every name (EventSource needs a listener per name), sees
 * the status and Retry-After of a refused stream, and sees the heartbeat
 * comments, so that a silent stream is noticed.
 */
(function (root) {
  'use strict';

  var DEFAULTS = {
    url: '/realtime',
    keys: [],
    transports: ['websocket', 'sse', 'poll'],
    failuresBeforeDegrade: 2,
    backoffMin: 250, // ms: first retry delay; doubles per failure, jittered
    backoffMax: 10000, // ms: retry delay cap
    probeInterval: 15000, // ms between probes of the first transport while degraded
    heartbeat: 25000, // ms between the client's {"type":"ping"} on WebSocket
    pongTimeout: 10000, // ms a ping may wait for any answer before the socket counts as dead
    sseSilence: 65000, // ms an SSE stream may stay silent (the gateway comments every heartbeat)
    connectTimeout: 10000, // ms to open and register
    stableAfter: 5000, // ms a connection must last for a drop to retry at once
    pollWait: 25, // s the gateway may hold a long poll
    ackDelay: 50, // ms WebSocket acks are batched for
    discover: false, // reconnect to another node from <url>/nodes when the node is lost
    zone: null, // with discover: nodes of this zone first
    nodesTimeout: 3000, // ms a <url>/nodes request may take
    onMessage: null,
    onResync: null,
    onTransport: null,
    onNode: null,
    onError: null,
    // Test seams: the constructors the client uses.
    WebSocket: null,
    fetch: null,
  };

  function randomID() {
    var c = root.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var s = '';
    for (var i = 0; i < 4; i++) s += Math.floor(Math.random() * 0x100000000).toString(16);
    return s;
  }

  function absoluteURL(url) {
    var base = root.location ? root.location.href : 'http://localhost/';
    return new URL(url, base);
  }

  // withScheme is url with the scheme a transport needs: node addresses and
  // `url` may name either family (ws://, http://), and TLS carries over.
  function withScheme(url, websocket) {
    var u = absoluteURL(url);
    var secure = u.protocol === 'https:' || u.protocol === 'wss:';
    if (websocket) u.protocol = secure ? 'wss:' : 'ws:';
    else u.protocol = secure ? 'https:' : 'http:';
    return u;
  }

  // nodeKey names the node a base URL reaches, whatever scheme family or
  // trailing slash it was written with: ws://h/realtime and
  // http://h/realtime/ are one node.
  function nodeKey(url) {
    try {
      var u = withScheme(url, false);
      return u.protocol + '//' + u.host + u.pathname.replace(/\/+$/, '');
    } catch (e) {
      return String(url);
    }
  }

  // nodesURL is the node list of the gateway at base: <route>/nodes.
  function nodesURL(base) {
    var u = withScheme(base, false);
    u.pathname = u.pathname.replace(/\/+$/, '') + '/nodes';
    u.search = '';
    u.hash = '';
    return u.href;
  }

  // parseNodes reads a <route>/nodes answer; entries whose address no
  // transport can open keep a null address (they still name a node).
  function parseNodes(body) {
    var list = body && body.nodes;
    if (!Array.isArray(list)) return null;
    var nodes = [];
    for (var i = 0; i < list.length; i++) {
      var n = list[i];
      if (!n || typeof n.id !== 'string') continue;
      var address = null;
      if (typeof n.address === 'string' && /^(wss?|https?):\/\//i.test(n.address)) {
        try {
          address = absoluteURL(n.address).href;
        } catch (e) {
          address = null;
        }
      }
      nodes.push({
        id: n.id,
        address: address,
        zone: typeof n.zone === 'string' && n.zone !== '' ? n.zone : null,
        connections: typeof n.connections === 'number' ? n.connections : 0,
      });
    }
    return nodes;
  }

  // retryAfterMs reads a refusal's Retry-After, plus 0-50% jitter: the
  // clients a gateway refused together must not all come back in the same
  // millisecond (the gateway spreads them by whole seconds only).
  function retryAfterMs(resp) {
    var v = resp && resp.headers && resp.headers.get('Retry-After');
    if (!v) return 0;
    var s = Number(v);
    var ms = !isNaN(s) ? s * 1000 : Date.parse(v) - Date.now();
    if (isNaN(ms) || ms <= 0) return 0;
    return ms + Math.random() * ms * 0.5;
  }

  function PushGateway(options) {
    var o = {};
    var k;
    for (k in DEFAULTS) o[k] = DEFAULTS[k];
    for (k in options || {}) if (options[k] !== undefined) o[k] = options[k];
    this.options = o;
    this.cid = randomID();
    this.transport = null; // the transport delivering now
    this._keys = new Map(); // key -> {since: number|null, epoch: string|null}
    this._transports = o.transports.filter(function (t) {
      return t === 'websocket' || t === 'sse' || t === 'poll';
    });
    if (this._transports.length === 0) throw new Error('PushGateway: no known transport in ' + o.transports);
    this._idx = 0; // index in _transports of the transport tried now
    this._fails = 0; // consecutive failures of that transport
    this._drops = 0; // consecutive drops of connections that worked only briefly
    this._upAt = 0; // when the active connection came up
    this._conn = null; // the active connection
    this._probe = null; // a connection on _transports[0] while degraded
    this._retryTimer = null;
    this._probeTimer = null;
    this._closed = false;
    // Where connections go: the url given first, other nodes after a loss.
    // Kept as given: a relative url resolves against the page at each
    // connect, as it always has.
    this._origin = o.url;
    this._base = o.url;
    this.node = { id: null, address: absoluteURL(o.url).href, zone: null }; // the node of _base
    this._nodes = []; // the node list fetched last, from any node
    this._listFrom = null; // nodeKey of the node the list was (being) fetched from
    this._tried = new Set(); // nodeKeys that failed since a connection last worked
    this._gen = 0; // bumped by every connect: a node pick still pending is then stale
    this._reported = null; // the node onNode was told last
    var keys = o.keys || [];
    if (Array.isArray(keys)) {
      for (var i = 0; i < keys.length; i++) this._keys.set(String(keys[i]), { since: null, epoch: null });
    } else {
      for (k in keys) this._keys.set(k, position(keys[k]));
    }
    if (o.discover) {
      // Now, while the node answers: if it dies without warning, its
      // peers are known.
      var self = this;
      this._fetchNodes(this._base, function () {
        self._learnNode();
      });
    }
    this._connect();
  }

  function position(p) {
    p = p || {};
    return {
      since: typeof p.since === 'number' ? p.since : null,
      epoch: typeof p.epoch === 'string' ? p.epoch : null,
    };
  }

  // follow starts following key; pos ({since, epoch}) resumes from a known
  // position instead of "from now".
  PushGateway.prototype.follow = function (key, pos) {
    key = String(key);
    if (this._keys.has(key)) return;
    this._keys.set(key, position(pos));
    if (this._closed) return;
    if (this._conn && this._conn.follow) this._conn.follow(key);
    else this._restart();
    if (this._probe && this._probe.follow) this._probe.follow(key);
  };

  PushGateway.prototype.unfollow = function (key) {
    key = String(key);
    if (!this._keys.delete(key) || this._closed) return;
    if (this._conn && this._conn.unfollow) this._conn.unfollow(key);
    else this._restart();
    if (this._probe && this._probe.unfollow) this._probe.unfollow(key);
  };

  // position returns {since, epoch} of key: where a later client may resume.
  PushGateway.prototype.position = function (key) {
    var st = this._keys.get(String(key));
    return st ? { since: st.since, epoch: st.epoch } : null;
  };

  // reconnect drops the connection and opens a new one on the same
  // transport (after a network change, say). It counts as a drop, not a failure.
  PushGateway.prototype.reconnect = function () {
    if (!this._closed) this._restart();
  };

  // nodes returns the node list fetched last ([] before any, or without
  // discover): [{id, address, zone, connections}], least loaded first.
  PushGateway.prototype.nodes = function () {
    return this._nodes.map(function (n) {
      return { id: n.id, address: n.address, zone: n.zone, connections: n.connections };
    });
  };

  PushGateway.prototype.close = function () {
    this._closed = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._probeTimer);
    if (this._conn) this._conn.close();
    if (this._probe) this._probe.close();
    this._conn = this._probe = null;
    this.transport = null;
  };

  PushGateway.prototype._restart = function () {
    clearTimeout(this._retryTimer);
    if (this._conn) this._conn.close();
    this._conn = null;
    this._connect();
  };

  PushGateway.prototype._connect = function () {
    this._gen++;
    if (this._closed || this._keys.size === 0) return;
    var self = this;
    var name = this._transports[this._idx];
    var conn = this._open(name, {
      up: function () {
        self._fails = 0;
        self._upAt = Date.now();
        self._setTransport(name);
        self._nodeUp();
        self._scheduleProbe();
      },
      down: function (wasUp, retryAfter, away) {
        if (self._conn !== conn) return;
        self._conn = null;
        if (self.transport === name) self._setTransport(null);
        self._failed(wasUp, retryAfter, away);
      },
    });
    this._conn = conn;
  };

  // _failed picks what to try after the active connection went down; away
  // tells that the gateway said it is going (1001).
  PushGateway.prototype._failed = function (wasUp, retryAfter, away) {
    if (this._closed) return;
    var delay;
    if (wasUp) {
      // A drop after working: retry the same transport, at once unless
      // connections keep being dropped soon after they open (a gateway
      // refusing this client, say): then back off.
      this._fails = 0;
      this._drops = Date.now() - this._upAt >= this.options.stableAfter ? 0 : this._drops + 1;
      delay = this._backoff(this._drops);
    } else {
      this._fails++;
      if (this._fails >= this.options.failuresBeforeDegrade && this._idx < this._transports.length - 1) {
        this._idx++;
        this._fails = 0;
        delay = this._backoff(0);
      } else {
        delay = this._backoff(this._fails);
      }
    }
    // Retry-After holds on other nodes too: the gateways of a cluster
    // refuse together when what they share (the broker) is down.
    delay = Math.max(delay, retryAfter || 0);
    var self = this;
    clearTimeout(this._retryTimer);
    var retry = function (wait) {
      self._retryTimer = setTimeout(function () {
        self._connect();
      }, wait);
    };
    if (this.options.discover && (away || !wasUp)) {
      var gen = this._gen;
      var started = Date.now();
      this._pickNode(function () {
        // A connect meanwhile (reconnect, follow, a probe taking over)
        // made this pick stale.
        if (self._closed || gen !== self._gen) return;
        retry(Math.max(0, delay - (Date.now() - started)));
      });
    } else {
      retry(delay);
    }
    this._scheduleProbe(); // while degraded, keep probing even if nothing works
  };

  // ---- node discovery --------------------------------------------------------

  // _pickNode moves _base off the node that failed, then calls done: to the
  // least-loaded listed node not tried since a connection last worked
  // (the preferred zone first), or, when none is left, back to the url
  // given, trying the whole list again from there on.
  PushGateway.prototype._pickNode = function (done) {
    var self = this;
    var failed = this._base;
    this._tried.add(nodeKey(failed));
    this._fetchNodes(failed, function () {
      var next = self._candidate();
      if (next) {
        self._base = next.address;
      } else {
        self._tried.clear();
        self._base = self._origin;
      }
      self.node = self._nodeOf(self._base);
      done();
    });
  };

  // _candidate is the next node to try, or null.
  PushGateway.prototype._candidate = function () {
    var zone = this.options.zone;
    var tried = this._tried;
    var c = [];
    this._nodes.forEach(function (n, i) {
      if (n.address && !tried.has(nodeKey(n.address))) c.push({ n: n, i: i });
    });
    // The gateway sorts by load already; sorting again keeps a list from
    // an older gateway right, and puts the zone first.
    c.sort(function (a, b) {
      var za = zone && a.n.zone === zone ? 0 : 1;
      var zb = zone && b.n.zone === zone ? 0 : 1;
      return za - zb || a.n.connections - b.n.connections || a.i - b.i;
    });
    return c.length > 0 ? c[0].n : null;
  };

  // _nodeOf describes the node at base: as listed when the list names it.
  PushGateway.prototype._nodeOf = function (base) {
    var key = nodeKey(base);
    for (var i = 0; i < this._nodes.length; i++) {
      var n = this._nodes[i];
      if (n.address && nodeKey(n.address) === key) return { id: n.id, address: n.address, zone: n.zone };
    }
    return { id: null, address: absoluteURL(base).href, zone: null };
  };

  // _fetchNodes reads the node list of the gateway at base and keeps it if
  // it names any node, then calls done, within nodesTimeout whatever
  // happens. An empty or failed answer leaves the list held: the nodes
  // it names are still the best guess.
  PushGateway.prototype._fetchNodes = function (base, done) {
    var self = this;
    var key = nodeKey(base);
    var fetchFn = this.options.fetch || (root.fetch && root.fetch.bind(root));
    var finished = false;
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var finish = function (ok) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (!ok && self._listFrom === key) self._listFrom = null;
      done();
    };
    var timer = setTimeout(function () {
      if (ctl) ctl.abort();
      finish(false);
    }, this.options.nodesTimeout);
    this._listFrom = key;
    var req;
    try {
      req = fetchFn(nodesURL(base), {
        headers: { Accept: 'application/json' },
        cache: 'no-store',
        signal: ctl ? ctl.signal : undefined,
      });
    } catch (err) {
      finish(false);
      return;
    }
    req
      .then(function (resp) {
        if (!resp.ok) throw new Error('node list answered ' + resp.status);
        return resp.json();
      })
      .then(
        function (body) {
          var nodes = parseNodes(body);
          if (finished || self._closed || !nodes || nodes.length === 0) {
            finish(false);
            return;
          }
          self._nodes = nodes;
          finish(true);
        },
        function () {
          finish(false);
        }
      );
  };

  // _learnNode names the node of _base from a fresh list, and tells the
  // application when a connection is up on it.
  PushGateway.prototype._learnNode = function () {
    var n = this._nodeOf(this._base);
    if (n.id !== null && (n.id !== this.node.id || n.address !== this.node.address)) this.node = n;
    if (this.transport !== null) this._reportNode();
  };

  // _nodeUp: a connection came up on the node of _base.
  PushGateway.prototype._nodeUp = function () {
    var self = this;
    this._tried.clear();
    this._reportNode();
    // A list from the node now serving, for the next loss: the one held may
    // come from a node that is gone.
    if (this.options.discover && this._listFrom !== nodeKey(this._base)) {
      this._fetchNodes(this._base, function () {
        self._learnNode();
      });
    }
  };

  PushGateway.prototype._reportNode = function () {
    var n = this.node;
    var prev = this._reported;
    if (prev && prev.id === n.id && prev.address === n.address) return;
    this._reported = n;
    if (this.options.onNode) this._call(this.options.onNode, n, prev);
  };

  // _backoff: jittered exponential delay after n consecutive failures.
  PushGateway.prototype._backoff = function (n) {
    var o = this.options;
    var d = Math.min(o.backoffMax, o.backoffMin * Math.pow(2, Math.max(0, n - 1)));
    return d / 2 + (Math.random() * d) / 2;
  };

  PushGateway.prototype._setTransport = function (name) {
    if (this.transport === name) return;
    var prev = this.transport;
    this.transport = name;
    if (this.options.onTransport) this._call(this.options.onTransport, name, prev);
  };

  // _scheduleProbe arms a probe of the first transport while degraded,
  // unless one is armed or running.
  PushGateway.prototype._scheduleProbe = function () {
    var self = this;
    if (this._closed || this._idx === 0 || this._probe || this._probeTimer) return;
    this._probeTimer = setTimeout(function () {
      self._probeTimer = null;
      self._runProbe();
    }, this.options.probeInterval);
  };

  PushGateway.prototype._runProbe = function () {
    var self = this;
    if (this._closed || this._idx === 0 || this._probe || this._keys.size === 0) return;
    var name = this._transports[0];
    var probe = this._open(name, {
      up: function () {
        // It registered every key from the positions held, so switching
        // now neither loses nor doubles a message.
        if (self._probe !== probe) return;
        self._probe = null;
        self._gen++; // a node pick still pending is stale
        clearTimeout(self._retryTimer);
        if (self._conn) self._conn.close();
        self._conn = probe;
        self._idx = 0;
        self._fails = 0;
        self._upAt = Date.now();
        clearTimeout(self._probeTimer);
        self._probeTimer = null;
        self._setTransport(name);
        self._nodeUp();
        probe.cb = {
          up: function () {},
          down: function (wasUp, retryAfter, away) {
            if (self._conn !== probe) return;
            self._conn = null;
            if (self.transport === name) self._setTransport(null);
            self._failed(wasUp, retryAfter, away);
          },
        };
      },
      down: function () {
        if (self._probe !== probe) return;
        self._probe = null;
        self._scheduleProbe();
      },
    });
    this._probe = probe;
  };

  PushGateway.prototype._open = function (name, cb) {
    if (name === 'websocket') return new WSConn(this, cb);
    if (name === 'sse') return new SSEConn(this, cb);
    return new PollConn(this, cb);
  };

  PushGateway.prototype._call = function (fn) {
    try {
      return fn.apply(this, Array.prototype.slice.call(arguments, 1));
    } catch (err) {
      this._error(err);
    }
  };

  PushGateway.prototype._error = function (err) {
    if (this.options.onError) {
      try {
        this.options.onError(err);
      } catch (e) {
        /* the handler's own error: nowhere left to report it */
      }
    } else if (root.console) {
      root.console.error('PushGateway:', err);
    }
  };

  // _deliver passes one message on if it is the next of its key. It returns
  // false when the connection skipped messages (a gap, or an epoch change
  // without resync): the connection must then resume from the position held.
  PushGateway.prototype._deliver = function (transport, key, epoch, seq, event, data, ts) {
    var st = this._keys.get(key);
    if (!st) return true; // unfollowed meanwhile
    if (st.epoch !== null && epoch !== st.epoch) return false;
    if (st.since !== null && seq <= st.since) return true; // had it already
    if (st.since !== null && seq !== st.since + 1) return false;
    st.since = seq;
    st.epoch = epoch;
    if (this.options.onMessage) {
      this._call(this.options.onMessage, key, {
        seq: seq,
        epoch: epoch,
        event: event,
        data: data,
        ts: ts,
        transport: transport,
      });
    }
    return true;
  };

  // _resync moves key to (epoch, seq) and tells the application to pull
  // its full state.
  PushGateway.prototype._resync = function (key, epoch, seq) {
    var st = this._keys.get(key);
    if (!st) return;
    // A second connection reporting a resync already taken.
    if (st.epoch === epoch && st.since !== null && seq <= st.since) return;
    st.epoch = epoch;
    st.since = seq;
    if (this.options.onResync) this._call(this.options.onResync, key, { epoch: epoch, seq: seq });
  };

  // _baseline records where a key stands when the client had no position.
  PushGateway.prototype._baseline = function (key, epoch, seq) {
    var st = this._keys.get(key);
    if (st && st.since === null) {
      st.since = seq;
      st.epoch = epoch;
    }
  };

  // ---- native WebSocket ---------------------------------------------------

  function WSConn(gw, cb) {
    var self = this;
    this.gw = gw;
    this.cb = cb;
    this.up = false;
    this.dead = false;
    this.away = false; // the gateway closed with 1001: it is going
    this.pending = new Set(); // keys not yet registered on this socket
    this.acks = new Map();
    this.ackTimer = null;
    var u = withScheme(gw._base, true);
    var WS = gw.options.WebSocket || root.WebSocket;
    try {
      this.ws = new WS(u.href);
    } catch (err) {
      this.ws = null;
      setTimeout(function () {
        self.fail();
      }, 0);
      return;
    }
    this.timer = setTimeout(function () {
      self.fail();
    }, gw.options.connectTimeout);
    this.ws.onopen = function () {
      gw._keys.forEach(function (_, key) {
        self.follow(key);
      });
    };
    this.ws.onmessage = function (ev) {
      self.onMessage(ev.data);
    };
    this.ws.onclose = function (ev) {
      if (ev && ev.code === 1001) self.away = true;
      self.fail();
    };
    this.ws.onerror = function () {
      self.fail();
    };
  }

  WSConn.prototype.send = function (obj) {
    if (this.dead || !this.ws || this.ws.readyState !== 1) return;
    this.ws.send(JSON.stringify(obj));
  };

  WSConn.prototype.follow = function (key) {
    var st = this.gw._keys.get(key);
    if (!st || !this.ws || this.ws.readyState !== 1) return;
    var m = { type: 'register', sdk_key: key };
    if (st.since !== null) {
      m.since = st.since;
      if (st.epoch !== null) m.epoch = st.epoch;
    }
    if (!this.up) this.pending.add(key);
    this.send(m);
  };

  WSConn.prototype.unfollow = function (key) {
    this.pending.delete(key);
    this.send({ type: 'unregister', sdk_key: key });
    this.checkUp();
  };

  WSConn.prototype.checkUp = function () {
    if (this.up || this.dead || this.pending.size > 0 || !this.ws || this.ws.readyState !== 1) return;
    this.up = true;
    this.armHeartbeat();
    this.cb.up();
  };

  // armHeartbeat: any frame from the gateway proves the socket alive; when
  // none arrived for a heartbeat, ping, and give up after pongTimeout more.
  WSConn.prototype.armHeartbeat = function () {
    var self = this;
    var o = this.gw.options;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () {
      self.send({ type: 'ping' });
      self.timer = setTimeout(function () {
        self.fail();
      }, o.pongTimeout);
    }, o.heartbeat);
  };

  WSConn.prototype.onMessage = function (text) {
    if (this.dead) return;
    var m;
    try {
      m = JSON.parse(text);
    } catch (err) {
      this.gw._error(new Error('bad frame from the gateway: ' + err.message));
      return;
    }
    if (this.up) this.armHeartbeat();
    var gw = this.gw;
    switch (m.type) {
      case 'registered':
        gw._baseline(m.sdk_key, m.epoch, m.seq);
        this.pending.delete(m.sdk_key);
        this.checkUp();
        break;
      case 'message':
        if (!gw._deliver('websocket', m.sdk_key, m.epoch, m.seq, m.event, m.data, m.ts)) {
          this.fail(); // resume from the position held
          return;
        }
        this.ack(m.sdk_key);
        break;
      case 'resync':
        gw._resync(m.sdk_key, m.epoch, m.seq);
        this.ack(m.sdk_key);
        break;
      case 'error':
        gw._error(new Error('gateway: ' + m.code + ': ' + m.message));
        break;
    }
  };

  // ack batches acknowledgements: one per key per ackDelay.
  WSConn.prototype.ack = function (key) {
    var st = this.gw._keys.get(key);
    if (!st || st.since === null) return;
    this.acks.set(key, st.since);
    if (this.ackTimer) return;
    var self = this;
    this.ackTimer = setTimeout(function () {
      self.ackTimer = null;
      self.acks.forEach(function (seq, k) {
        self.send({ type: 'ack', sdk_key: k, seq: seq });
      });
      self.acks.clear();
    }, this.gw.options.ackDelay);
  };

  WSConn.prototype.close = function () {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.timer);
    clearTimeout(this.ackTimer);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
      try {
        this.ws.close(1000);
      } catch (e) {
        /* already closed */
      }
    }
  };

  WSConn.prototype.fail = function () {
    if (this.dead) return;
    var wasUp = this.up;
    this.close();
    this.cb.down(wasUp, 0, this.away);
  };

  // ---- Server-Sent Events, one stream per key -------------------------------

  function SSEConn(gw, cb) {
    this.gw = gw;
    this.cb = cb;
    this.up = false;
    this.dead = false;
    this.away = false; // the gateway ended a stream with ": shutdown"
    this.streams = new Map(); // key -> {ctl, open}
    var self = this;
    gw._keys.forEach(function (_, key) {
      self.openStream(key);
    });
  }

  SSEConn.prototype.openStream = function (key) {
    var self = this;
    var gw = this.gw;
    var st = gw._keys.get(key);
    var u = withScheme(gw._base, false);
    u.searchParams.set('sdk_key', key);
    if (st.since !== null) {
      u.searchParams.set('since', String(st.since));
      if (st.epoch !== null) u.searchParams.set('epoch', st.epoch);
    }
    u.searchParams.set('cid', gw.cid);
    var s = { ctl: new AbortController(), open: false, timer: null };
    this.streams.set(key, s);
    var fetchFn = gw.options.fetch || root.fetch.bind(root);
    var silence = function (ms) {
      clearTimeout(s.timer);
      s.timer = setTimeout(function () {
        self.fail(0);
      }, ms);
    };
    silence(gw.options.connectTimeout);
    fetchFn(u.href, {
      headers: { Accept: 'text/event-stream' },
      cache: 'no-store',
      signal: s.ctl.signal,
    })
      .then(function (resp) {
        if (self.dead || s.ctl.signal.aborted) return;
        var ct = resp.headers.get('Content-Type') || '';
        if (!resp.ok || !resp.body || ct.indexOf('text/event-stream') < 0) {
          self.fail(retryAfterMs(resp));
          return;
        }
        s.open = true;
        silence(gw.options.sseSilence);
        self.checkUp();
        return self.read(key, s, resp.body.getReader(), function () {
          silence(gw.options.sseSilence);
        });
      })
      .then(
        function () {
          if (!s.ctl.signal.aborted) self.fail(0); // the stream ended
        },
        function () {
          if (!s.ctl.signal.aborted) self.fail(0);
        }
      );
  };

  // read parses the event stream (the WHATWG rules: fields, blank-line
  // dispatch, comments) and hands each event to onEvent.
  SSEConn.prototype.read = function (key, s, reader, alive) {
    var self = this;
    var decoder = new TextDecoder();
    var buf = '';
    var ev = { event: '', data: [], id: null };
    function line(l) {
      if (l === '') {
        if (ev.data.length > 0) self.onEvent(key, ev.event || 'message', ev.data.join('\n'), ev.id);
        else if (ev.id !== null) self.onPosition(key, ev.id);
        ev = { event: '', data: [], id: null };
        return;
      }
      if (l.charAt(0) === ':') {
        // A heartbeat, or the gateway's last words when it shuts down.
        if (l.slice(1).trim() === 'shutdown') self.away = true;
        return;
      }
      var i = l.indexOf(':');
      var field = i < 0 ? l : l.slice(0, i);
      var value = i < 0 ? '' : l.slice(i + 1);
      if (value.charAt(0) === ' ') value = value.slice(1);
      if (field === 'event') ev.event = value;
      else if (field === 'data') ev.data.push(value);
      else if (field === 'id') ev.id = value;
    }
    function pump() {
      return reader.read().then(function (r) {
        if (r.done || self.dead) return;
        alive();
        buf += decoder.decode(r.value, { stream: true });
        var i;
        while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
          var sep = buf.charAt(i) === '\r' && buf.charAt(i + 1) === '\n' ? 2 : 1;
          if (buf.charAt(i) === '\r' && i + 1 === buf.length) break; // maybe a split \r\n
          var l = buf.slice(0, i);
          buf = buf.slice(i + sep);
          line(l);
          if (self.dead) return;
        }
        return pump();
      });
    }
    return pump();
  };

  function parseID(id) {
    var i = id === null ? -1 : id.lastIndexOf(':');
    var seq = i < 0 ? NaN : Number(id.slice(i + 1));
    return isFinite(seq) && i >= 0 ? { epoch: id.slice(0, i), seq: seq } : null;
  }

  // onPosition takes an id-only event: a stream opened with no position
  // starts with one, telling where the key stands.
  SSEConn.prototype.onPosition = function (key, id) {
    var p = parseID(id);
    if (p) this.gw._baseline(key, p.epoch, p.seq);
  };

  SSEConn.prototype.onEvent = function (key, name, data, id) {
    var gw = this.gw;
    var parsed;
    try {
      parsed = data === '' ? null : JSON.parse(data);
    } catch (e) {
      parsed = data;
    }
    if (name === 'resync') {
      if (parsed && typeof parsed.seq === 'number') gw._resync(key, String(parsed.epoch), parsed.seq);
      return;
    }
    var p = parseID(id);
    if (!p) return;
    if (!gw._deliver('sse', key, p.epoch, p.seq, name, parsed, undefined)) this.fail(0);
  };

  SSEConn.prototype.checkUp = function () {
    if (this.up || this.dead) return;
    var all = true;
    this.streams.forEach(function (s) {
      all = all && s.open;
    });
    if (!all) return;
    this.up = true;
    this.cb.up();
  };

  SSEConn.prototype.follow = function (key) {
    if (!this.dead && !this.streams.has(key)) this.openStream(key);
  };

  SSEConn.prototype.unfollow = function (key) {
    var s = this.streams.get(key);
    if (!s) return;
    this.streams.delete(key);
    clearTimeout(s.timer);
    s.ctl.abort();
    this.checkUp();
  };

  SSEConn.prototype.close = function () {
    if (this.dead) return;
    this.dead = true;
    this.streams.forEach(function (s) {
      clearTimeout(s.timer);
      s.ctl.abort();
    });
  };

  SSEConn.prototype.fail = function (retryAfter) {
    if (this.dead) return;
    var wasUp = this.up;
    this.close();
    this.cb.down(wasUp, retryAfter, this.away);
  };

  // ---- long poll -----------------------------------------------------------

  function PollConn(gw, cb) {
    this.gw = gw;
    this.cb = cb;
    this.up = false;
    this.dead = false;
    this.ctl = null;
    this.polls = 0;
    this.poll();
  }

  PollConn.prototype.url = function () {
    var gw = this.gw;
    var u = withScheme(gw._base, false);
    var keys = Array.from(gw._keys.keys());
    var single = keys.length === 1;
    keys.forEach(function (key) {
      var st = gw._keys.get(key);
      u.searchParams.append('sdk_key', key);
      if (st.since !== null) {
        u.searchParams.set(single ? 'since' : 'since.' + key, String(st.since));
        if (st.epoch !== null) u.searchParams.set(single ? 'epoch' : 'epoch.' + key, st.epoch);
      }
    });
    // The first request of a connection does not wait: its answer tells
    // that the transport works, and where every key stands.
    u.searchParams.set('wait', (this.polls === 0 ? 0 : gw.options.pollWait) + 's');
    u.searchParams.set('cid', gw.cid);
    return u.href;
  };

  PollConn.prototype.poll = function () {
    var self = this;
    var gw = this.gw;
    if (this.dead) return;
    if (gw._keys.size === 0) {
      this.fail(0);
      return;
    }
    var ctl = (this.ctl = new AbortController());
    var timer = setTimeout(function () {
      ctl.abort();
    }, gw.options.pollWait * 1000 + gw.options.connectTimeout);
    var fetchFn = gw.options.fetch || root.fetch.bind(root);
    var url = this.url();
    var started = Date.now();
    this.polls++;
    fetchFn(url, { headers: { Accept: 'application/json' }, cache: 'no-store', signal: ctl.signal })
      .then(function (resp) {
        if (!resp.ok) {
          var e = new Error('long poll answered ' + resp.status);
          e.retryAfter = retryAfterMs(resp);
          throw e;
        }
        return resp.json();
      })
      .then(
        function (body) {
          clearTimeout(timer);
          if (self.dead) return;
          if (!self.up) {
            self.up = true;
            self.cb.up();
          }
          var got = self.take(body);
          if (got === 'gap') {
            self.fail(0);
            return;
          }
          // A held poll that comes back at once with nothing new (a
          // gateway that does not hold, say) must not turn into a busy loop.
          if (got === 'none' && self.polls > 1 && Date.now() - started < 100) {
            self.pace = setTimeout(function () {
              self.poll();
            }, gw.options.backoffMin);
            return;
          }
          self.poll();
        },
        function (err) {
          clearTimeout(timer);
          self.fail((err && err.retryAfter) || 0);
        }
      );
  };

  // take applies one answer: 'gap' when it skipped messages, else 'news'
  // or 'none' (nothing held: no message, no resync).
  PollConn.prototype.take = function (body) {
    var gw = this.gw;
    var keys = (body && body.keys) || {};
    var news = false;
    for (var key in keys) {
      var k = keys[key];
      var st = gw._keys.get(key);
      if (!st) continue;
      if (st.since === null && !k.resync) {
        // No position yet: follow from now, as the other transports do,
        // rather than replaying the history this answer holds.
        gw._baseline(key, k.epoch, k.seq);
        continue;
      }
      if (k.resync) gw._resync(key, k.epoch, k.seq);
      var msgs = k.messages || [];
      news = news || k.resync || msgs.length > 0;
      for (var i = 0; i < msgs.length; i++) {
        var m = msgs[i];
        if (!gw._deliver('poll', key, k.epoch, m.seq, m.event, m.data, m.ts)) return 'gap';
        if (this.dead) return 'none';
      }
      gw._baseline(key, k.epoch, k.seq);
    }
    return news ? 'news' : 'none';
  };

  PollConn.prototype.close = function () {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.pace);
    if (this.ctl) this.ctl.abort();
  };

  PollConn.prototype.fail = function (retryAfter) {
    if (this.dead) return;
    var wasUp = this.up;
    this.close();
    this.cb.down(wasUp, retryAfter);
  };

  root.PushGateway = PushGateway;
})(typeof globalThis !== 'undefined' ? globalThis : this);
