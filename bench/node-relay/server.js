// Baseline for `make bench`: the naive Node chat relay people compare Django Channels with.
//
// One process, npm `ws`, a userId -> sockets map, nothing stored, no auth beyond the user id
// in the URL (ws://127.0.0.1:PORT/?user=17). A client frame {"to": 18, "client_id": "...",
// "body": "..."} is relayed as {"type": "message.new", "from": 17, "to": 18, ...} to every
// socket of the recipient and of the sender (the same fan-out as the product: the sender's
// own copy is what multi-tab sync needs). Binds 127.0.0.1 only.
"use strict";

const http = require("http");
const { WebSocketServer } = require("ws");

const host = "127.0.0.1";
const port = Number(process.env.PORT || 0);
const sockets = new Map(); // user id -> Set of sockets

const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"status":"ok"}');
});
// No permessage-deflate: the Python clients and daphne do not compress either.
const wss = new WebSocketServer({ server, perMessageDeflate: false });

function deliver(userId, text) {
  const set = sockets.get(userId);
  if (!set) return;
  for (const ws of set) ws.send(text);
}

wss.on("connection", (ws, req) => {
  const user = new URL(req.url, "http://x").searchParams.get("user");
  if (!user) {
    ws.close(1008, "user required");
    return;
  }
  let set = sockets.get(user);
  if (!set) sockets.set(user, (set = new Set()));
  set.add(ws);
  ws.send(JSON.stringify({ type: "ready", user }));

  ws.on("message", (data) => {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      ws.send('{"type":"error","code":"bad_json"}');
      return;
    }
    const to = String(frame.to);
    const text = JSON.stringify({
      type: "message.new",
      from: user,
      to,
      client_id: frame.client_id,
      body: frame.body,
    });
    deliver(to, text);
    if (to !== user) deliver(user, text);
  });
  ws.on("close", () => {
    set.delete(ws);
    if (set.size === 0) sockets.delete(user);
  });
  ws.on("error", () => {});
});

server.listen(port, host, () => {
  // The harness reads the port from this line.
  console.log(`listening ${host}:${server.address().port}`);
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
