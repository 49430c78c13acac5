#!/usr/bin/env node
// Development-only stand-in for `tether serve`: serves crates/tether/assets/index.html on `/` and
// speaks the demo's `json` WebSocket contract on the same port. The real test runs against the real
// binary; this exists so the page and the test can be developed before the server side lands.
// Usage: TETHER_BIN=./fake-server.mjs node --test   (accepts `serve --port N` like the real binary)
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { WebSocketServer } from "ws";

const args = process.argv.slice(2);
const portIndex = args.indexOf("--port");
const port = portIndex >= 0 ? Number(args[portIndex + 1]) : 8787;
const page = new URL("../../crates/tether/assets/index.html", import.meta.url);

const http = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(readFileSync(page));
  } else {
    res.writeHead(404).end("not found\n");
  }
});
const wss = new WebSocketServer({
  server: http,
  path: "/",
  handleProtocols: (protocols) => (protocols.has("json") ? "json" : protocols.has("soap") ? "soap" : false),
});
const osName = { linux: "Linux", darwin: "macOS", win32: "Windows" }[process.platform] ?? process.platform;
const arch = { x64: "x86_64", arm64: "aarch64" }[process.arch] ?? process.arch;
wss.on("connection", (ws) => {
  const send = (obj) => ws.send(JSON.stringify(obj));
  send({
    type: "welcome",
    connectionId: randomBytes(12).toString("base64url"),
    subProtocol: ws.protocol,
    server: "tether/0.1.0",
    version: "0.1.0",
    message: "Welcome to Tether! Ask 1, 2 or 3.",
  });
  ws.on("message", (data, isBinary) => {
    if (isBinary) return send({ type: "binary", bytes: data.length, answer: `received ${data.length} bytes` });
    const q = data.toString();
    const time = new Date().toTimeString().slice(0, 8);
    const answers = { 1: "tether 0.1.0", 2: `${osName} ${arch}`, 3: time };
    if (q in answers) send({ type: "answer", question: q, answer: answers[q] });
    else send({ type: "error", message: `unknown question ${JSON.stringify(q)}: ask 1, 2 or 3` });
  });
});
http.listen(port, "127.0.0.1", () => {
  console.log(`listening on ws://127.0.0.1:${http.address().port}`);
});
process.on("SIGINT", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
