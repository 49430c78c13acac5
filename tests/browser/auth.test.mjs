// The chat demo with sign-in, in headless Chromium against `tether serve --demo-tokens
// --demo-token-secs 4` (issue 11): the page asks /demo/config, gets a token for the nickname from
// /demo/token, shows the user the welcome names, refreshes the token before it expires and stays
// connected past the first token's expiry; a refused nickname, a refused token and an expired
// session each show a clear message, and a refused token is not retried in a loop.
//
// Needs the server side of issue 11 (demo token endpoint, `user`/`expiresAt` in the welcome,
// `refresh`, the 4001 close, and the `--demo-token-secs` test setting). Env: TETHER_BIN (default
// ../../target/debug/tether; ./fake-tether.mjs plays the same contract), CHROMIUM.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { chromiumBin, closeBrowser, launchBrowser, reportsDir, startServer, stopServer, tetherBin } from "./support.mjs";

const TOKEN_SECS = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shot = (name) => resolve(reportsDir, name);

describe("chat demo with sign-in (tether serve --demo-tokens)", { timeout: 180_000 }, () => {
  let server;
  let browser;
  let base;
  let opened = [];

  before(async () => {
    assert.ok(existsSync(tetherBin), `server binary not found: ${tetherBin} (build it with cargo build -p tether)`);
    assert.ok(existsSync(chromiumBin), `chromium not found: ${chromiumBin} (apt-get install chromium)`);
    mkdirSync(reportsDir, { recursive: true });
    server = startServer(15_000, ["--demo-tokens", "--demo-token-secs", String(TOKEN_SECS)]);
    base = `http://127.0.0.1:${await server.ready}`;
    browser = await launchBrowser();
  });

  after(async () => {
    await closeBrowser(browser);
    await stopServer(server?.child);
  });

  /**
   * Opens the chat in a fresh context and waits until the page knows it must sign in.
   * `sockets` counts the WebSockets the page opens (every connection attempt is one).
   */
  async function openChat() {
    const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const entry = { context, page, errors: [], sockets: [] };
    page.on("pageerror", (err) => entry.errors.push(err.message));
    page.on("websocket", (ws) => entry.sockets.push(ws.url()));
    opened.push(entry);
    const response = await page.goto(base + "/chat.html");
    assert.equal(response.status(), 200);
    await page.locator("#auth").waitFor({ state: "visible" });
    await page.locator("#join:enabled").waitFor();
    return entry;
  }

  async function closeAll() {
    const errors = opened.flatMap((e) => e.errors);
    await Promise.all(opened.map((e) => e.context.close().catch(() => {})));
    opened = [];
    assert.deepEqual(errors, [], "no uncaught errors in the pages");
  }

  async function join(page, nick, room) {
    await page.fill("#nick", nick);
    await page.fill("#room", room);
    await page.click("#join");
  }

  test("the server hands out demo tokens as the contract says", async () => {
    const config = await fetch(base + "/demo/config");
    assert.equal(config.status, 200);
    assert.deepEqual(await config.json(), { tokens: true });
    const ok = await fetch(base + "/demo/token?user=ada");
    assert.equal(ok.status, 200);
    const body = await ok.json();
    assert.equal(body.user, "ada");
    assert.match(body.token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "a JWT");
    const left = body.expiresAt - Date.now();
    assert.ok(left > 0 && left <= TOKEN_SECS * 1000 + 1000, `lifetime from --demo-token-secs (${left} ms left)`);
    const bad = await fetch(base + "/demo/token?user=" + encodeURIComponent("bad nick!"));
    assert.equal(bad.status, 400);
    assert.equal(typeof (await bad.json()).error, "string");
  });

  test("sign in, refresh the token, stay connected past its expiry, chat", { timeout: 60_000 }, async () => {
    try {
      const ada = await openChat();
      const room = "auth" + Math.random().toString(36).slice(2, 7);
      await join(ada.page, "ada", room);
      await ada.page.locator('#status[data-state="open"]').waitFor();
      await ada.page.locator("#signed-in", { hasText: /^ada$/ }).waitFor();
      await ada.page.locator("#online li", { hasText: "ada" }).waitFor();
      const first = await ada.page.evaluate(() => ({ user: client.user, expiresAt: client.expiresAt, id: client.connectionId }));
      assert.equal(first.user, "ada", "client.user from the welcome");
      assert.equal(typeof first.expiresAt, "number", "client.expiresAt from the welcome");
      assert.ok(ada.sockets.length === 1 && /[?&]token=[\w.-]+/.test(ada.sockets[0]), `token in the query: ${ada.sockets[0]}`);

      // At least one refresh, and then past the first token's expiry plus the server's ~1 s sweep.
      await ada.page.waitForFunction(() => window.tokenRefreshes >= 1, null, { timeout: TOKEN_SECS * 1000 + 5_000 });
      await ada.page.locator("#session", { hasText: /renewed/ }).waitFor();
      const wait = first.expiresAt + 2_000 - Date.now();
      if (wait > 0) await sleep(wait);
      const now = await ada.page.evaluate(() => ({ state: client.state, id: client.connectionId, expiresAt: client.expiresAt, refreshes: window.tokenRefreshes }));
      assert.equal(now.state, "open", "still open after the first token expired");
      assert.equal(now.id, first.id, "the same connection");
      assert.ok(now.expiresAt > first.expiresAt, "the refresh ack moved the expiry");
      assert.equal(ada.sockets.length, 1, "no reconnect was needed");

      const bob = await openChat();
      await join(bob.page, "bob", room);
      await bob.page.locator("#signed-in", { hasText: /^bob$/ }).waitFor();
      await ada.page.locator("#online li", { hasText: "bob" }).waitFor();
      await ada.page.fill("#message", "hello after a refresh");
      await ada.page.click("#send");
      await ada.page.locator("#messages .msg", { hasText: "hello after a refresh" }).waitFor();
      const atBob = bob.page.locator("#messages .msg", { hasText: "hello after a refresh" });
      await atBob.waitFor();
      assert.match(await atBob.innerText(), /ada/);
      assert.equal(await ada.page.locator("#error").isHidden(), true, "no error shown");
      await ada.page.screenshot({ path: shot("chat-signed-in.png"), fullPage: true });
    } finally {
      await closeAll();
    }
  });

  test("a nickname the token endpoint refuses: clear message, no connection attempt", async () => {
    try {
      const eve = await openChat();
      await join(eve.page, "bad nick!", "lobby");
      const error = eve.page.locator("#error");
      await error.locator("text=/Sign-in refused/").waitFor();
      assert.match(await error.innerText(), /^Sign-in refused: \S/, "says why, with the endpoint's reason");
      assert.equal(await eve.page.evaluate(() => client.state), "closed");
      await sleep(1000);
      assert.equal(eve.sockets.length, 0, "no WebSocket without a token");
      assert.equal(await eve.page.locator("#message").isDisabled(), true);
    } finally {
      await closeAll();
    }
  });

  test("a token the server refuses: clear message, and retries stop", { timeout: 60_000 }, async () => {
    try {
      const eve = await openChat();
      await eve.page.evaluate(() => { client.options.token = "garbage"; });
      await join(eve.page, "eve", "lobby");
      // Refused handshakes are retried maxHandshakeFailures (5) times with backoff, ~1-8 s.
      const error = eve.page.locator("#error");
      await error.locator("text=/Sign-in refused: the server did not accept/").waitFor({ timeout: 15_000 });
      const info = await eve.page.evaluate(() => ({ state: client.state, closeInfo: client.closeInfo }));
      assert.equal(info.state, "closed");
      assert.equal(info.closeInfo.refused, true);
      assert.equal(eve.sockets.length, 5, "gave up after 5 attempts");
      assert.ok(eve.sockets.every((u) => u.includes("token=garbage")));
      await sleep(2_000);
      assert.equal(eve.sockets.length, 5, "no attempts after giving up");
      await eve.page.screenshot({ path: shot("chat-refused.png"), fullPage: true });
    } finally {
      await closeAll();
    }
  });

  test("a token that cannot be renewed: the 4001 close says the session expired, no reconnect", { timeout: 60_000 }, async () => {
    try {
      const eve = await openChat();
      // A fixed string token (what a page without a token function has): nothing to refresh with.
      await eve.page.evaluate(async () => {
        const res = await fetch("/demo/token?user=eve");
        client.options.token = (await res.json()).token;
      });
      await join(eve.page, "eve", "lobby");
      await eve.page.locator("#signed-in", { hasText: /^eve$/ }).waitFor();
      await eve.page.locator("#error", { hasText: "Your session expired" }).waitFor({ timeout: TOKEN_SECS * 1000 + 5_000 });
      const info = await eve.page.evaluate(() => client.closeInfo);
      assert.equal(info.code, 4001);
      assert.equal(info.reason, "token expired");
      await sleep(1_500);
      assert.equal(eve.sockets.length, 1, "no reconnect after 4001");
      assert.equal(await eve.page.evaluate(() => window.tokenRefreshes), 0);
    } finally {
      await closeAll();
    }
  });
});
