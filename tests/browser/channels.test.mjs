// Drives the token-protocol demos (chat, live stream, game) and tether.js in headless Chromium
// against `tether serve`: presence, publish/subscribe between two browsers, recovery of messages
// published while a client was cut off, and a shared game board.
//
// Env: TETHER_BIN (default ../../target/debug/tether; ./fake-tether.mjs for development),
// CHROMIUM (default /usr/bin/chromium). Run with `node --test` in this folder, or
// scripts/browser-test.sh from anywhere. Screenshots land in reports/browser/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { chromiumBin, closeBrowser, launchBrowser, reportsDir, startServer, stopServer, tetherBin } from "./support.mjs";

const shot = (name) => resolve(reportsDir, name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("token protocol demos", { timeout: 180_000 }, () => {
  let server;
  let browser;
  let base;
  /** Every page opened, with the uncaught errors it reported; checked after each test. */
  let opened = [];

  before(async () => {
    assert.ok(existsSync(tetherBin), `server binary not found: ${tetherBin} (build it with cargo build -p tether)`);
    assert.ok(existsSync(chromiumBin), `chromium not found: ${chromiumBin} (apt-get install chromium)`);
    mkdirSync(reportsDir, { recursive: true });
    server = startServer();
    const port = await server.ready;
    base = `http://127.0.0.1:${port}`;
    browser = await launchBrowser();
  });

  after(async () => {
    await closeBrowser(browser);
    await stopServer(server?.child);
  });

  /** Opens `path` in a fresh browser context (its own storage, like another person's browser). */
  async function open(path) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.setDefaultNavigationTimeout(10_000);
    const entry = { context, page, errors: [] };
    page.on("pageerror", (err) => entry.errors.push(err.message));
    opened.push(entry);
    const response = await page.goto(base + path);
    assert.equal(response.status(), 200, `GET ${path} status`);
    assert.match(response.headers()["content-type"] ?? "", /^text\/html/, `GET ${path} content-type`);
    await page.waitForFunction(() => window.Tether && window.client, null, { timeout: 10_000 });
    await page.locator('#status[data-state="open"]').waitFor();
    return page;
  }

  /** Closes every context of the test and fails it if any page threw. */
  async function closeAll() {
    const errors = opened.flatMap((e) => e.errors);
    await Promise.all(opened.map((e) => e.context.close().catch(() => {})));
    opened = [];
    assert.deepEqual(errors, [], "no uncaught errors in the pages");
  }

  async function joinChat(page, nick, room) {
    await page.fill("#nick", nick);
    await page.fill("#room", room);
    await page.click("#join");
    await page.locator("#channel", { hasText: `chat.${room}` }).waitFor();
    await page.locator("#online li", { hasText: nick }).waitFor();
  }

  async function say(page, text) {
    await page.fill("#message", text);
    await page.click("#send");
    await page.locator("#messages .msg", { hasText: text }).waitFor();
  }

  /** The texts of the chat messages on `page` whose text starts with `prefix`, in page order. */
  const texts = (page, prefix) =>
    page.$$eval("#messages .msg .text", (els, p) => els.map((e) => e.textContent).filter((t) => t.startsWith(p)), prefix);

  test("tether.js is served", async () => {
    const res = await fetch(base + "/tether.js");
    assert.equal(res.status, 200, "GET /tether.js status");
    assert.match(res.headers.get("content-type") ?? "", /javascript/, "GET /tether.js content-type");
    assert.match(await res.text(), /Tether/);
  });

  test("chat: two people see each other and exchange messages", { timeout: 60_000 }, async () => {
    try {
      const ada = await open("/chat.html");
      const bob = await open("/chat.html");
      assert.equal(await ada.title(), "Tether — Chat");
      assert.equal(await ada.evaluate(() => client.socket.protocol), "tether.json", "negotiated sub-protocol");
      await joinChat(ada, "ada", "lobby");
      await joinChat(bob, "bob", "lobby");
      // Each sees the other online: bob through the presence answer, ada through a join event.
      await ada.locator("#online li", { hasText: "bob" }).waitFor();
      await bob.locator("#online li", { hasText: "ada" }).waitFor();

      await say(ada, "hello bob, ada here");
      const atBob = bob.locator("#messages .msg", { hasText: "hello bob, ada here" });
      await atBob.waitFor();
      assert.match(await atBob.innerText(), /ada/, "message shows the sender's nick");
      await say(bob, "hi ada!");
      const atAda = ada.locator("#messages .msg", { hasText: "hi ada!" });
      await atAda.waitFor();
      assert.match(await atAda.innerText(), /bob/);
      assert.match(await atAda.innerText(), /\d\d:\d\d/, "message shows the time");
      // Nothing twice (the publisher gets its own message once, too).
      assert.deepEqual(await texts(ada, "h"), ["hello bob, ada here", "hi ada!"]);
      assert.deepEqual(await texts(bob, "h"), ["hello bob, ada here", "hi ada!"]);

      // A late joiner gets the recent past from history, once each.
      const cleo = await open("/chat.html");
      await joinChat(cleo, "cleo", "lobby");
      await cleo.locator("#messages .msg", { hasText: "hi ada!" }).waitFor();
      assert.deepEqual(await texts(cleo, "h"), ["hello bob, ada here", "hi ada!"]);
      await ada.locator("#online li", { hasText: "cleo" }).waitFor();
      await cleo.context().close();
      await ada.locator("#online li", { hasText: "cleo" }).waitFor({ state: "detached" });

      // A new nickname in the same room reaches the others' lists; no message is repeated.
      await bob.fill("#nick", "bobby");
      await bob.click("#join");
      await ada.locator("#online li", { hasText: "bobby" }).waitFor();
      await say(bob, "hello as bobby");
      await ada.locator("#messages .msg", { hasText: "hello as bobby" }).waitFor();
      assert.deepEqual(await texts(bob, "h"), ["hello bob, ada here", "hi ada!", "hello as bobby"]);
      assert.equal(await ada.locator("#online li").count(), 2, "ada and bobby online");

      await ada.screenshot({ path: shot("chat-ada.png"), fullPage: true });
      await bob.screenshot({ path: shot("chat-bob.png"), fullPage: true });
    } finally {
      await closeAll();
    }
  });

  test("recovery: messages published while a client is cut off arrive once, in order", { timeout: 60_000 }, async () => {
    try {
      // The cut page waits at least 2 s before reconnecting, so the publishes below happen
      // while it is away.
      const cut = await open("/chat.html?reconnectDelay=2000");
      const other = await open("/chat.html");
      await joinChat(cut, "carol", "recovery");
      await joinChat(other, "dave", "recovery");
      await cut.locator("#online li", { hasText: "dave" }).waitFor();
      await say(other, "before the cut");
      await cut.locator("#messages .msg", { hasText: "before the cut" }).waitFor();
      const firstId = await cut.evaluate(() => client.connectionId);

      await cut.evaluate(() => window.client.socket.close());
      await cut.waitForFunction(() => client.state === "reconnecting", null, { timeout: 5_000 });
      // The server noticed: carol is gone from dave's list.
      await other.locator("#online li", { hasText: "carol" }).waitFor({ state: "detached" });
      for (const n of [1, 2, 3]) await say(other, `while away ${n}`);
      assert.equal(await cut.evaluate(() => client.state), "reconnecting", "all 3 were published before the reconnect");
      assert.deepEqual(await texts(cut, "while away"), [], "nothing arrived while cut off");

      await cut.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
      await cut.waitForFunction(() => document.querySelectorAll("#messages .msg[data-recovered]").length >= 3, null, { timeout: 10_000 });
      await sleep(300); // room for a duplicate to show up, if there were one
      assert.deepEqual(await texts(cut, "while away"), ["while away 1", "while away 2", "while away 3"]);
      assert.deepEqual(await texts(cut, "before"), ["before the cut"], "no duplicate of what was seen before the cut");
      assert.notEqual(await cut.evaluate(() => client.connectionId), firstId, "a new connection");
      assert.equal(await cut.evaluate(() => client.subscriptions.get("chat.recovery").recovered), true, "the ack said recovered");

      // Back in the room, live again both ways, and presence is current again on both sides.
      await other.locator("#online li", { hasText: "carol" }).waitFor();
      await cut.locator("#online li", { hasText: "dave" }).waitFor();
      await say(cut, "back again");
      await other.locator("#messages .msg", { hasText: "back again" }).waitFor();
      await say(other, "welcome back");
      await cut.locator("#messages .msg", { hasText: "welcome back" }).waitFor();
      assert.deepEqual(await texts(cut, "while away"), ["while away 1", "while away 2", "while away 3"]);

      await cut.screenshot({ path: shot("chat-recovered.png"), fullPage: true });
    } finally {
      await closeAll();
    }
  });

  test("live: a post appears on every open page, newest first", { timeout: 60_000 }, async () => {
    try {
      const a = await open("/live.html");
      const b = await open("/live.html");
      const tag = Math.random().toString(36).slice(2, 8);
      await a.fill("#author", "alice");
      await a.fill("#post-text", `first post ${tag}`);
      await a.click("#post");
      for (const page of [a, b]) await page.locator("#feed .post", { hasText: `first post ${tag}` }).waitFor();
      assert.match(await b.locator("#feed .post", { hasText: `first post ${tag}` }).innerText(), /alice/);

      await b.fill("#post-text", `second post ${tag}`);
      await b.click("#post");
      for (const page of [a, b]) {
        await page.locator("#feed .post", { hasText: `second post ${tag}` }).waitFor();
        const feed = await page.$$eval("#feed .post .text", (els) => els.map((e) => e.textContent));
        assert.deepEqual(feed.filter((t) => t.endsWith(tag)), [`second post ${tag}`, `first post ${tag}`], "newest first");
      }

      // A page opened later shows them from history.
      const c = await open("/live.html");
      await c.locator("#feed .post", { hasText: `first post ${tag}` }).waitFor();
      const feed = await c.$$eval("#feed .post .text", (els) => els.map((e) => e.textContent));
      assert.deepEqual(feed.filter((t) => t.endsWith(tag)), [`second post ${tag}`, `first post ${tag}`]);
      await b.screenshot({ path: shot("live.png"), fullPage: true });
    } finally {
      await closeAll();
    }
  });

  test("game: two players see each other move", { timeout: 60_000 }, async () => {
    try {
      const a = await open("/game.html");
      const b = await open("/game.html");
      for (const page of [a, b]) await page.locator("#players", { hasText: /^2$/ }).waitFor();
      const idA = await a.evaluate(() => gameState.me);
      const start = await b.evaluate((id) => gameState.players[id], idA);
      assert.ok(start, "b knows where a is");
      /** Waits for `fn(arg)` to hold on `page`; a timeout says what both pages knew at the time. */
      const until = async (page, what, fn, arg) => {
        try {
          await page.waitForFunction(fn, arg, { timeout: 10_000 });
        } catch (err) {
          const state = (p) => p.evaluate(() => JSON.stringify({ ...gameState, status: client.state })).catch((e) => e.message);
          throw new Error(`${what}: ${err.message}\n  a: ${await state(a)}\n  b: ${await state(b)}`);
        }
      };
      const key = start.x < 300 ? "ArrowRight" : "ArrowLeft";
      const sign = key === "ArrowRight" ? 1 : -1;

      await a.keyboard.down(key);
      await sleep(600);
      await a.keyboard.up(key);
      await until(b, "b sees a move sideways", ([id, x0, s]) => (gameState.players[id].x - x0) * s > 60, [idA, start.x, sign]);
      // Once a stops (its last frame may still be drawing), b converges on exactly where a is.
      await sleep(100);
      const atA = await a.evaluate(() => gameState.players[gameState.me]);
      await until(b, "b converges on a", ([id, x]) => Math.abs(gameState.players[id].x - x) < 0.5, [idA, atA.x]);
      const atB = await b.evaluate((id) => gameState.players[id], idA);
      assert.ok(Math.abs(atB.y - start.y) < 1, `moving sideways keeps y (${start.y} → ${atB.y})`);
      const ups = await b.evaluate(() => gameState.received);
      assert.ok(ups >= 5, `b received a stream of position updates (${ups})`);

      // A click moves the dot, too: first on a's own board, then on b's.
      const box = await a.locator("#board").boundingBox();
      await a.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
      await until(a, "a walks to the click", () => Math.hypot(gameState.players[gameState.me].x - 300, gameState.players[gameState.me].y - 200) < 3);
      await until(b, "b sees a at the click", (id) => Math.hypot(gameState.players[id].x - 300, gameState.players[id].y - 200) < 3, idA);
      await sleep(200);
      await b.screenshot({ path: shot("game.png"), fullPage: true });

      // A player who leaves disappears.
      await a.context().close();
      await b.locator("#players", { hasText: /^1$/ }).waitFor();
      assert.equal(await b.evaluate((id) => gameState.players[id], idA), undefined);
    } finally {
      await closeAll();
    }
  });
});
