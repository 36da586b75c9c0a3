// The reference server of bench/run: socket.io 4.8.4 on node, doing
// what FeatureProbe's own server does. Clients connect to the namespace
// /realtime at the path /realtime/ (websocket transport, no polling first),
// emit `register` with {"sdk_key":"K"} (or {"key":"K"}), join the room K and
// are answered at once with `update ""`. POST /publish {"sdk_key","data"}
// emits `update <data>` to room K, data passed through unchanged.
//
//	node --expose-gc bench/run/reference.mjs <port>
//
// GET /stats answers the connected sockets and process.memoryUsage(); GET
// /gc runs the collector (with --expose-gc) so that the runner reads RSS
// without garbage, as it does for the gateway through pprof's gc=1.
// socket.io comes from the repository's node_modules (npm ci at the root).
import http from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 0);
const maxBody = 1 << 20;

function answer(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    answer(res, 200, { sockets: nsp.sockets.size, memory: process.memoryUsage() });
    return;
  }
  if (req.method === "GET" && req.url === "/gc") {
    if (typeof global.gc === "function") {
      global.gc();
      global.gc();
    }
    answer(res, 200, { gc: typeof global.gc === "function" });
    return;
  }
  if (req.method === "POST" && req.url === "/publish") {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > maxBody) {
        answer(res, 413, { error: "body too large" });
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      let msg;
      try {
        msg = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        answer(res, 400, { error: "bad JSON: " + e.message });
        return;
      }
      if (!msg || typeof msg.sdk_key !== "string" || msg.sdk_key === "") {
        answer(res, 400, { error: "sdk_key required" });
        return;
      }
      const receivers = nsp.adapter.rooms.get(msg.sdk_key)?.size ?? 0;
      nsp.to(msg.sdk_key).emit("update", msg.data === undefined ? "" : msg.data);
      answer(res, 200, { published: [{ sdk_key: msg.sdk_key, local_receivers: receivers }] });
    });
    return;
  }
  answer(res, 404, { error: "not found" });
});

const io = new Server(httpServer, {
  path: "/realtime/",
  serveClient: false,
  transports: ["polling", "websocket"],
  pingInterval: 25000,
  pingTimeout: 20000,
});

const nsp = io.of("/realtime");
nsp.on("connection", (socket) => {
  socket.on("register", (arg) => {
    const key = arg && typeof arg === "object" ? arg.sdk_key || arg.key : undefined;
    if (typeof key !== "string" || key === "") {
      return;
    }
    socket.join(key);
    socket.emit("update", "");
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.error(`reference socket.io server on 127.0.0.1:${httpServer.address().port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
