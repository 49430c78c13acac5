// In-process fake of the token-auth side of `tether serve` for unit-level checks of tether.js's
// token logic (token.test.mjs): the test decides which tokens are valid and when they expire, sees
// every handshake and refresh request, and can close a connection with any code. Only the parts
// of docs/protocol.md that the token logic touches are spoken: the welcome with `user`,
// `expiresAt` and `expiresIn` (ms left by this server's clock, as the real server sends), `refresh`
// (acked with both), the 4001 close at expiry, and an empty ack for any other request.
//
// Serves the files of crates/tether/assets (tether.js, chat.html, ...), /blank.html (a page that
// loads tether.js), and the chat's /demo/config and /demo/token through `fake.demoConfig` and
// `fake.demoToken` (functions (req, res); 404 while null).
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { WebSocketServer } from "ws";

const assets = new URL("../../crates/tether/assets/", import.meta.url);

/**
 * Starts the fake on 127.0.0.1 at a free port. `verify(token, request)` decides: return
 * `{user, expiresAt}` (expiresAt: ms since epoch or null) to accept, or null to refuse the
 * handshake with 401 as the real server does. `token` is the decoded `token` query parameter
 * (null when there is none).
 */
export async function startFakeAuth({ verify }) {
  const fake = {
    verify,
    /** Every upgrade request: {at, url, rawQuery, token, accepted}. */
    handshakes: [],
    /** Every open connection's record: {id, ws, token, user, expiresAt, refreshes: [{at, token, id}]}. */
    connections: [],
    /**
     * Answers to a refresh: return {expiresAt} to ack (expiresIn: by this server's clock, unless
     * given too), {error: code} to refuse, or {silent: true} to never answer. Default: verify the token.
     */
    onRefresh: null,
    /** Handlers for GET /demo/config and /demo/token: (req, res) => void; null answers 404. */
    demoConfig: null,
    demoToken: null,
    base: null,
    port: null,
  };

  const http = createServer((req, res) => {
    const path = (req.url || "/").split("?")[0];
    if (path === "/tether.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      res.end(readFileSync(new URL("tether.js", assets)));
    } else if (path === "/blank.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end('<!doctype html><meta charset="utf-8"><title>tether.js token tests</title><script src="/tether.js"></script>');
    } else if (path === "/demo/config" && fake.demoConfig) {
      fake.demoConfig(req, res);
    } else if (path === "/demo/token" && fake.demoToken) {
      fake.demoToken(req, res);
    } else if (/^\/[a-z]+\.(html|css)$/.test(path) && existsSync(new URL(path.slice(1), assets))) {
      res.writeHead(200, { "content-type": (path.endsWith(".css") ? "text/css" : "text/html") + "; charset=utf-8", "cache-control": "no-store" });
      res.end(readFileSync(new URL(path.slice(1), assets)));
    } else {
      res.writeHead(404).end("not found\n");
    }
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has("tether.json") ? "tether.json" : false) });

  http.on("upgrade", (req, socket, head) => {
    const url = req.url || "/";
    const q = url.indexOf("?");
    const rawQuery = q >= 0 ? url.slice(q + 1) : "";
    const token = new URLSearchParams(rawQuery).get("token");
    const record = { at: Date.now(), url, rawQuery, token, accepted: false };
    fake.handshakes.push(record);
    if (url.split("?")[0] !== "/tether") return socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
    const identity = fake.verify(token, req);
    if (!identity) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error="invalid_token"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    record.accepted = true;
    wss.handleUpgrade(req, socket, head, (ws) => opened(ws, token, identity));
  });

  function opened(ws, token, identity) {
    const conn = { id: randomBytes(12).toString("base64url"), ws, token, user: identity.user ?? null, expiresAt: identity.expiresAt ?? null, refreshes: [], closedWith: null };
    fake.connections.push(conn);
    const send = (obj) => ws.readyState === 1 && ws.send(JSON.stringify(obj));
    /** What is left by this server's clock, as `tether serve` counts it (null: no expiry). */
    const expiresIn = () => (typeof conn.expiresAt === "number" ? Math.max(0, conn.expiresAt - Date.now()) : null);
    send({ type: "welcome", connectionId: conn.id, subProtocol: ws.protocol || null, server: "tether/fake-auth", heartbeat: 0, user: conn.user, expiresAt: conn.expiresAt, expiresIn: expiresIn() });
    ws.on("message", (raw) => {
      let m;
      try { m = JSON.parse(raw.toString()); } catch { return send({ type: "error", code: "bad_request", message: "malformed JSON" }); }
      if (m.type !== "refresh") return send({ type: "ack", id: m.id });
      conn.refreshes.push({ at: Date.now(), token: m.token, id: m.id });
      if (typeof m.token !== "string") return send({ type: "error", id: m.id, code: "bad_request", message: "token is missing" });
      let answer;
      if (fake.onRefresh) answer = fake.onRefresh(m.token, conn);
      else {
        const next = fake.verify(m.token, null);
        answer = next && next.user === conn.user ? { expiresAt: next.expiresAt ?? null } : { error: "invalid_token" };
      }
      if (answer.silent) return; // a server that never answers (the client's request times out)
      if (answer.error) return send({ type: "error", id: m.id, code: answer.error, message: "refresh refused" });
      conn.expiresAt = answer.expiresAt;
      send({ type: "ack", id: m.id, expiresAt: conn.expiresAt, expiresIn: answer.expiresIn !== undefined ? answer.expiresIn : expiresIn() });
    });
    ws.on("close", (code) => { conn.closedWith = code; });
  }

  // As the real server: the connection's expiry is checked about once a second (here 4 times).
  const sweeper = setInterval(() => {
    for (const conn of fake.connections) {
      if (conn.ws.readyState === 1 && typeof conn.expiresAt === "number" && conn.expiresAt <= Date.now()) conn.ws.close(4001, "token expired");
    }
  }, 250);

  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  fake.port = http.address().port;
  fake.base = `http://127.0.0.1:${fake.port}`;
  fake.wsUrl = `ws://127.0.0.1:${fake.port}/tether`;
  /** The connections still open. */
  fake.open = () => fake.connections.filter((c) => c.ws.readyState === 1);
  fake.stop = async () => {
    clearInterval(sweeper);
    for (const c of fake.connections) c.ws.terminate();
    const closed = new Promise((resolve) => http.close(resolve));
    http.closeAllConnections(); // the browser's idle keep-alive connections would hold close() up
    await closed;
  };
  fake.reset = () => {
    for (const c of fake.connections) c.ws.terminate();
    fake.handshakes = [];
    fake.connections = [];
    fake.onRefresh = null;
    fake.demoConfig = null;
    fake.demoToken = null;
  };
  return fake;
}
