#!/usr/bin/env node
// Development-only stand-in for `tether serve` with the token protocol of docs/protocol.md on
// /tether (sub-protocols `tether.json` / `json`), the demo pages and tether.js from
// crates/tether/assets over HTTP, and the question demo's `json` contract on `/` (like
// fake-server.mjs) so every test in this folder can run against it before the Rust side lands.
// Usage: TETHER_BIN=./fake-tether.mjs node --test   (accepts `serve --port N` like the real binary)
//
// `--demo-tokens` plays issue 11's contract (/work/notes/issue11-contracts.md): GET /demo/config
// says {"tokens":true}, GET /demo/token?user=NICK signs an HS256 JWT for NICK with a per-process
// secret (lifetime 30 s, or `--demo-token-secs N`), /tether refuses a missing or bad token with
// 401 before the upgrade, the welcome carries `user` and `expiresAt`, `refresh` is acked with the
// new `expiresAt`, and an expired connection is closed with 4001 "token expired".
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { WebSocketServer } from "ws";

const args = process.argv.slice(2);
const portIndex = args.indexOf("--port");
const port = portIndex >= 0 ? Number(args[portIndex + 1]) : 8787;
const demoTokens = args.includes("--demo-tokens");
const secsIndex = args.indexOf("--demo-token-secs");
const demoTokenMs = 1000 * (secsIndex >= 0 ? Number(args[secsIndex + 1]) : 30);
const secret = randomBytes(32);
const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const sign = (input) => createHmac("sha256", secret).update(input).digest();
function makeToken(sub) {
  const exp = Math.floor((Date.now() + demoTokenMs) / 1000);
  const input = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub, exp, iat: Math.floor(Date.now() / 1000) });
  return { token: input + "." + sign(input).toString("base64url"), user: sub, expiresAt: exp * 1000 };
}
/** {user, expiresAt} of a valid unexpired token, else null. */
function verifyToken(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) return null;
  const given = Buffer.from(parts[2], "base64url");
  const wanted = sign(parts[0] + "." + parts[1]);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) return null;
  let claims;
  try { claims = JSON.parse(Buffer.from(parts[1], "base64url").toString()); } catch { return null; }
  if (typeof claims.sub !== "string" || typeof claims.exp !== "number" || claims.exp * 1000 <= Date.now()) return null;
  return { user: claims.sub, expiresAt: claims.exp * 1000 };
}
const assets = new URL("../../crates/tether/assets/", import.meta.url);
const FILES = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/chat.html": ["chat.html", "text/html; charset=utf-8"],
  "/live.html": ["live.html", "text/html; charset=utf-8"],
  "/game.html": ["game.html", "text/html; charset=utf-8"],
  "/tether.js": ["tether.js", "text/javascript; charset=utf-8"],
  "/demo.css": ["demo.css", "text/css; charset=utf-8"],
};
const HISTORY_SIZE = 100;
const HISTORY_MS = 300_000;
const MAX_DATA = 64 * 1024;
const MAX_SUBS = 100;

const http = createServer((req, res) => {
  const path = (req.url || "/").split("?")[0];
  const file = FILES[path];
  if (req.method === "GET" && file) {
    res.writeHead(200, { "content-type": file[1] });
    res.end(readFileSync(new URL(file[0], assets)));
  } else if (req.method === "GET" && path === "/demo/config" && demoTokens) {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ tokens: true }));
  } else if (req.method === "GET" && path === "/demo/token" && demoTokens) {
    const user = new URL(req.url, "http://x").searchParams.get("user") ?? "";
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(user)) {
      res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "user must be 1-32 characters of A-Z a-z 0-9 _ -" }));
    } else {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(makeToken(user)));
    }
  } else if (req.method === "GET" && path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
  } else {
    res.writeHead(404).end("not found\n");
  }
});

// ---- question demo on `/` (same as fake-server.mjs) ----
const demo = new WebSocketServer({
  noServer: true,
  handleProtocols: (p) => (p.has("json") ? "json" : p.has("soap") ? "soap" : false),
});
demo.on("connection", (ws) => {
  const send = (obj) => ws.send(JSON.stringify(obj));
  send({ type: "welcome", connectionId: id(), subProtocol: ws.protocol, server: "tether/0.1.0", version: "0.1.0", message: "Welcome to Tether! Ask 1, 2 or 3." });
  ws.on("message", (data, isBinary) => {
    if (isBinary) return send({ type: "binary", bytes: data.length, answer: `received ${data.length} bytes` });
    const q = data.toString();
    const answers = { 1: "tether 0.1.0", 2: `Linux ${process.arch}`, 3: new Date().toTimeString().slice(0, 8) };
    if (q in answers) send({ type: "answer", question: q, answer: answers[q] });
    else send({ type: "error", message: `unknown question ${JSON.stringify(q)}: ask 1, 2 or 3` });
  });
});

// ---- token protocol on /tether ----
const hub = new WebSocketServer({
  noServer: true,
  handleProtocols: (p) => (p.has("tether.json") ? "tether.json" : p.has("json") ? "json" : false),
});
/** @type {Map<string, {offset:number, epoch:string, history:any[], members:Map<string, any>}>} */
const channels = new Map();
/** @type {Map<string, {ws:any, subs:Set<string>, user:string|null, expiresAt:number|null}>} */
const conns = new Map();

function id() { return randomBytes(12).toString("base64url"); }
function channel(name) {
  let ch = channels.get(name);
  if (!ch) channels.set(name, (ch = { offset: 0, epoch: randomBytes(4).toString("base64url"), history: [], members: new Map() }));
  return ch;
}
function trim(ch) {
  const cutoff = Date.now() - HISTORY_MS;
  while (ch.history.length > HISTORY_SIZE || (ch.history.length && ch.history[0].at < cutoff)) ch.history.shift();
}
const pub = (p) => ({ offset: p.offset, data: p.data, from: p.from });
function emit(connId, obj) {
  const c = conns.get(connId);
  if (c && c.ws.readyState === 1) c.ws.send(JSON.stringify(obj));
}
function leave(connId, name) {
  const ch = channels.get(name);
  if (!ch || !ch.members.delete(connId)) return;
  for (const other of ch.members.keys()) emit(other, { type: "leave", channel: name, connectionId: connId });
}

class Fail extends Error { constructor(code, message) { super(message); this.code = code; } }
const validName = (n) => typeof n === "string" && /^[A-Za-z0-9_\-.:/@$]{1,128}$/.test(n);
const size = (v) => JSON.stringify(v ?? null).length;

const handlers = {
  subscribe(me, m) {
    if (!validName(m.channel)) throw new Fail("bad_request", "invalid channel name");
    if (m.since !== undefined && !Number.isInteger(m.since)) throw new Fail("bad_request", "since must be an integer");
    if (m.info !== undefined && size(m.info) > 1024) throw new Fail("too_large", "info too large");
    const c = conns.get(me);
    if (!c.subs.has(m.channel) && c.subs.size >= MAX_SUBS) throw new Fail("limit_exceeded", "too many subscriptions");
    const ch = channel(m.channel);
    trim(ch);
    const ack = { channel: m.channel, offset: ch.offset, epoch: ch.epoch };
    if (m.since !== undefined) {
      const since = m.epoch !== undefined && m.epoch !== ch.epoch ? 0 : m.since;
      const first = ch.history.length ? ch.history[0].offset : ch.offset + 1;
      ack.publications = ch.history.filter((p) => p.offset > since).map(pub);
      ack.recovered = (m.epoch === undefined || m.epoch === ch.epoch) && since + 1 >= first;
    }
    const isNew = !ch.members.has(me);
    ch.members.set(me, m.info ?? null);
    c.subs.add(m.channel);
    if (isNew) for (const other of ch.members.keys()) if (other !== me) emit(other, { type: "join", channel: m.channel, connectionId: me, info: m.info ?? null });
    return ack;
  },
  unsubscribe(me, m) {
    if (!validName(m.channel)) throw new Fail("bad_request", "invalid channel name");
    const c = conns.get(me);
    if (!c.subs.delete(m.channel)) throw new Fail("not_subscribed", `not subscribed to ${m.channel}`);
    leave(me, m.channel);
    return { channel: m.channel };
  },
  publish(me, m) {
    if (!validName(m.channel)) throw new Fail("bad_request", "invalid channel name");
    if (!("data" in m)) throw new Fail("bad_request", "data is missing");
    if (m.channel.startsWith("$")) throw new Fail("forbidden", "channels starting with $ are reserved");
    if (size(m.data) > MAX_DATA) throw new Fail("too_large", "data too large");
    const ch = channel(m.channel);
    const p = { offset: ++ch.offset, data: m.data, from: me, at: Date.now() };
    ch.history.push(p);
    trim(ch);
    // As in docs/protocol.md: a subscribed publisher gets its message before the ack.
    for (const sub of ch.members.keys()) emit(sub, { type: "message", channel: m.channel, ...pub(p) });
    return { channel: m.channel, offset: p.offset };
  },
  presence(me, m) {
    if (!validName(m.channel)) throw new Fail("bad_request", "invalid channel name");
    const ch = channels.get(m.channel);
    if (!ch || !ch.members.has(me)) throw new Fail("not_subscribed", `not subscribed to ${m.channel}`);
    return { channel: m.channel, members: [...ch.members].map(([connectionId, info]) => ({ connectionId, info })) };
  },
  history(me, m) {
    if (!validName(m.channel)) throw new Fail("bad_request", "invalid channel name");
    const ch = channel(m.channel);
    trim(ch);
    let list = ch.history.filter((p) => m.since === undefined || p.offset > m.since);
    if (m.limit !== undefined) list = m.limit > 0 ? list.slice(-m.limit) : [];
    return { channel: m.channel, offset: ch.offset, epoch: ch.epoch, publications: list.map(pub) };
  },
  refresh(me, m) {
    if (typeof m.token !== "string") throw new Fail("bad_request", "token is missing");
    if (!demoTokens) throw new Fail("forbidden", "this server verifies no tokens");
    const c = conns.get(me);
    const next = verifyToken(m.token);
    if (!next || next.user !== c.user) throw new Fail("invalid_token", "invalid token");
    c.expiresAt = next.expiresAt;
    return { expiresAt: c.expiresAt };
  },
  send(me, m) {
    if (typeof m.to !== "string" || !("data" in m)) throw new Fail("bad_request", "to and data are required");
    if (size(m.data) > MAX_DATA) throw new Fail("too_large", "data too large");
    if (!conns.has(m.to)) throw new Fail("not_found", `no connection ${m.to}`);
    return [{}, () => emit(m.to, { type: "direct", from: me, data: m.data })];
  },
};

hub.on("connection", (ws, req, identity) => {
  const me = id();
  const user = identity?.user ?? null;
  const expiresAt = identity?.expiresAt ?? null;
  conns.set(me, { ws, subs: new Set(), user, expiresAt });
  ws.send(JSON.stringify({ type: "welcome", connectionId: me, subProtocol: ws.protocol || null, server: "tether/0.1.0-fake", heartbeat: 30000, user, expiresAt }));
  ws.on("message", (raw, isBinary) => {
    let m = null;
    try {
      if (isBinary) throw new Fail("bad_request", "binary frames are not part of the protocol");
      try { m = JSON.parse(raw.toString()); } catch { throw new Fail("bad_request", "malformed JSON"); }
      if (!m || typeof m !== "object" || Array.isArray(m) || typeof m.type !== "string") throw new Fail("bad_request", "expected an object with a type");
      const handler = Object.hasOwn(handlers, m.type) ? handlers[m.type] : null;
      if (!handler) throw new Fail("unknown_type", `unknown type ${m.type}`);
      if (typeof m.id !== "number") throw new Fail("bad_request", "id must be a number");
      let ack = handler(me, m);
      let after = null;
      if (Array.isArray(ack)) [ack, after] = ack;
      ws.send(JSON.stringify({ type: "ack", id: m.id, ...ack }));
      after?.();
    } catch (err) {
      if (!(err instanceof Fail)) throw err;
      const reply = { type: "error", code: err.code, message: err.message };
      if (m && typeof m.id === "number") reply.id = m.id;
      ws.send(JSON.stringify(reply));
    }
  });
  ws.on("close", () => {
    const c = conns.get(me);
    conns.delete(me);
    for (const name of c.subs) leave(me, name);
  });
});

http.on("upgrade", (req, socket, head) => {
  const path = (req.url || "/").split("?")[0];
  const wss = path === "/tether" ? hub : path === "/" ? demo : null;
  if (!wss) return socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
  let identity = null;
  if (wss === hub && demoTokens) {
    identity = verifyToken(new URL(req.url, "http://x").searchParams.get("token"));
    if (!identity) return socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error="invalid_token"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req, identity));
});
// As the real server: a connection's expiry is checked about once a second.
setInterval(() => {
  for (const c of conns.values()) if (c.expiresAt !== null && c.expiresAt <= Date.now() && c.ws.readyState === 1) c.ws.close(4001, "token expired");
}, 1000).unref();
http.listen(port, "127.0.0.1", () => {
  console.log(`listening on ws://127.0.0.1:${http.address().port}`);
});
process.on("SIGINT", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
