// Unit-level checks of tether.js's token logic in headless Chromium, against the in-process fake
// of fake-auth.mjs (so they run without the Rust side): the token in the query, refresh before
// `expiresAt` and rescheduling from the ack, the token function called again on reconnect, no
// reconnect after 4001/4003/1008 or a failing token function, a refused handshake given up after
// maxHandshakeFailures, and nothing changed for clients without a token.
//
// Env: CHROMIUM (default /usr/bin/chromium). Run with `node --test` in this folder, or
// scripts/browser-test.sh from anywhere.
import { after, before, beforeEach, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startFakeAuth } from "./fake-auth.mjs";
import { chromiumBin, closeBrowser, launchBrowser } from "./support.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The tokens the fake accepts: `ok.USER.LIFETIME_MS` or `ok.USER.none` (no expiry), with any
 * suffix after another dot. Everything else (e.g. "garbage") is refused with 401.
 */
function verifyTestToken(token) {
  const m = /^ok\.([a-z]+)\.(\d+|none)(\..*)?$/s.exec(token ?? "");
  if (!m) return null;
  return { user: m[1], expiresAt: m[2] === "none" ? null : Date.now() + Number(m[2]) };
}

/**
 * Runs in the page: makes `window.c`, a Tether.Client for `spec`, logs its events into
 * `window.log` ({ev, at, x}) and the token function's calls into `window.calls`, and connects.
 * spec.token: "fn" (a function answering `ok.USER.LIFETIME.N`, rejecting on the calls listed in
 * `failOn`, and with a `temporary` error on those in `temporaryOn`), "throw" (throws synchronously), "empty" (resolves ""), a string, or undefined.
 */
function harness(spec) {
  window.log = [];
  window.calls = [];
  let n = 0;
  let token = spec.token;
  if (spec.token === "fn") {
    token = async (ctx) => {
      n++;
      window.calls.push(ctx && ctx.reason);
      if ((spec.failOn || []).includes(n)) throw new Error("no token for you (" + n + ")");
      if ((spec.temporaryOn || []).includes(n)) throw Object.assign(new Error("endpoint down (" + n + ")"), { temporary: true });
      return `ok.${spec.user}.${spec.lifetime}.${n}`;
    };
  } else if (spec.token === "throw") {
    token = (ctx) => { window.calls.push(ctx && ctx.reason); throw new Error("sync failure"); };
  } else if (spec.token === "empty") {
    token = async (ctx) => { window.calls.push(ctx && ctx.reason); return ""; };
  }
  const options = Object.assign({}, spec.options, token !== undefined ? { token } : {});
  const c = new Tether.Client(spec.url, options);
  const plain = (x) => JSON.parse(JSON.stringify(x === undefined ? null : x, (k, v) => (v instanceof Error ? { code: v.code, message: v.message, refresh: v.refresh } : v)));
  for (const ev of ["state", "open", "close", "closed", "refresh", "error", "reconnect"]) {
    c.on(ev, (x) => window.log.push({ ev, at: Date.now(), x: ev === "open" ? null : plain(x) }));
  }
  window.c = c;
  c.connect();
}

describe("tether.js tokens (fake server)", { timeout: 120_000 }, () => {
  let fake;
  let browser;
  let context;
  let page;
  let errors;

  before(async () => {
    assert.ok(existsSync(chromiumBin), `chromium not found: ${chromiumBin} (apt-get install chromium)`);
    fake = await startFakeAuth({ verify: verifyTestToken });
    browser = await launchBrowser();
  });
  after(async () => {
    await closeBrowser(browser);
    await fake?.stop();
  });
  beforeEach(async () => {
    fake.reset();
    fake.verify = verifyTestToken;
    context = await browser.newContext();
    page = await context.newPage();
    page.setDefaultTimeout(10_000);
    errors = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(fake.base + "/blank.html");
    await page.waitForFunction(() => window.Tether);
  });
  afterEach(async () => {
    await page.evaluate(() => window.c && window.c.close()).catch(() => {});
    await context.close();
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  });

  const start = (spec) => page.evaluate(harness, { url: fake.wsUrl, user: "ada", lifetime: "none", ...spec });
  const events = (name) => page.evaluate((n) => window.log.filter((e) => e.ev === n), name);
  const waitEvent = (name, count = 1, timeout = 10_000) =>
    page.waitForFunction(([n, k]) => window.log.filter((e) => e.ev === n).length >= k, [name, count], { timeout });
  const clientState = () => page.evaluate(() => ({ state: c.state, user: c.user, expiresAt: c.expiresAt, closeInfo: c.closeInfo }));

  test("a string token goes in the query, URL-encoded, replacing a token already in the URL", async () => {
    const token = "ok.ada.none.x y+z/é&=?";
    await start({ url: fake.wsUrl + "?room=a%20b&token=old", token });
    await waitEvent("open");
    assert.equal(fake.handshakes.length, 1);
    assert.equal(fake.handshakes[0].rawQuery, "room=a%20b&token=" + encodeURIComponent(token), "other parameters kept as they were");
    assert.equal(fake.handshakes[0].token, token, "the server decodes the same token");
    const s = await clientState();
    assert.equal(s.state, "open");
    assert.equal(s.user, "ada", "client.user from the welcome");
    assert.equal(s.expiresAt, null, "no expiry in the welcome");
  });

  test("without a token: no token parameter, and a failing handshake is retried as before", async () => {
    // The first 7 handshakes are refused; a client without a token keeps trying (no cap).
    let refusals = 7;
    fake.verify = (token) => (token === null && refusals-- <= 0 ? { user: null, expiresAt: null } : null);
    await start({ token: undefined, options: { minReconnectDelay: 10, maxReconnectDelay: 40 } });
    await waitEvent("open", 1, 10_000);
    assert.equal(fake.handshakes.length, 8);
    assert.ok(fake.handshakes.every((h) => h.rawQuery === ""), "no query added");
    assert.deepEqual(await events("closed"), [], "never gave up");
    const closes = await events("close");
    assert.equal(closes.length, 7);
    assert.ok(closes.every((e) => e.x.opened === false && e.x.willReconnect === true), JSON.stringify(closes));
    const s = await clientState();
    assert.equal(s.user, null);
    assert.equal(s.expiresAt, null);
  });

  test("a token function: refreshed before expiresAt, rescheduled from the ack, connection kept past the first expiry", async () => {
    await start({ token: "fn", lifetime: 3000 });
    await waitEvent("open");
    const conn = fake.connections[0];
    const welcomeAt = Date.now();
    const firstExpiry = conn.expiresAt;
    assert.equal(typeof firstExpiry, "number");
    assert.equal((await clientState()).expiresAt, firstExpiry, "client.expiresAt from the welcome");
    await waitEvent("refresh", 2, 9_000);
    assert.equal(fake.connections.length, 1, "one connection all along");
    assert.equal(conn.ws.readyState, 1, "still open");
    assert.ok(Date.now() > firstExpiry, "past the original token's expiry");
    const [r1, r2] = conn.refreshes;
    assert.equal(fake.handshakes[0].token, "ok.ada.3000.1");
    assert.equal(r1.token, "ok.ada.3000.2", "a fresh token from the function");
    assert.equal(r2.token, "ok.ada.3000.3");
    assert.deepEqual(await page.evaluate(() => window.calls.slice(0, 3)), ["connect", "refresh", "refresh"]);
    // 3 s left: 75 % would be 2.25 s, but at least 1 s before expiry wins: about 2 s.
    assert.ok(r1.at - welcomeAt >= 1500 && r1.at < firstExpiry - 700, `first refresh ${r1.at - welcomeAt} ms after the welcome`);
    // Rescheduled from the ack's expiresAt (r1.at + 3 s), not from the old one.
    assert.ok(r2.at - r1.at >= 1500 && r2.at - r1.at <= 2700, `second refresh ${r2.at - r1.at} ms after the first`);
    const refreshes = await events("refresh");
    assert.ok(Math.abs(refreshes[0].x.expiresAt - (r1.at + 3000)) < 200, "the ack's expiresAt");
    await page.waitForFunction((e) => c.expiresAt === e, conn.expiresAt, { timeout: 2_000 });
    assert.deepEqual(await events("closed"), []);
  });

  test("a string token is not refreshed: the 4001 at expiry stops the client", async () => {
    await start({ token: "ok.ada.1500.s" });
    await waitEvent("open");
    await waitEvent("closed", 1, 5_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.code, 4001);
    assert.equal(closed.x.reason, "token expired");
    assert.equal(closed.x.willReconnect, false);
    assert.equal(fake.connections[0].refreshes.length, 0, "nothing to refresh with");
    await sleep(1500);
    assert.equal(fake.handshakes.length, 1, "no reconnect");
    assert.equal((await clientState()).state, "closed");
    const [close] = await events("close");
    assert.equal(close.x.willReconnect, false);
  });

  for (const code of [4001, 4003, 1008]) {
    test(`no reconnect after the server closes with ${code}; the close is reported`, async () => {
      await start({ token: "fn" });
      await waitEvent("open");
      fake.connections[0].ws.close(code, `reason ${code}`);
      await waitEvent("closed", 1, 5_000);
      const [closed] = await events("closed");
      assert.deepEqual({ code: closed.x.code, reason: closed.x.reason, willReconnect: closed.x.willReconnect, byClient: closed.x.byClient }, { code, reason: `reason ${code}`, willReconnect: false, byClient: false });
      const s = await clientState();
      assert.equal(s.state, "closed");
      assert.equal(s.closeInfo.code, code, "client.closeInfo");
      // A request made while the client is stopped fails at once instead of waiting forever.
      const failed = await page.evaluate(() => c.publish("x", 1).then(() => "sent", (e) => e.code));
      assert.equal(failed, "closed");
      await sleep(1200);
      assert.equal(fake.handshakes.length, 1, "no second handshake");
      assert.deepEqual(await page.evaluate(() => window.calls), ["connect"], "token function not called again");
    });
  }

  test("after another close (4000) the client reconnects and asks the token function again", async () => {
    await start({ token: "fn", options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("open", 2, 5_000);
    assert.equal(fake.handshakes.length, 2);
    assert.equal(fake.handshakes[1].token, "ok.ada.none.2", "the reconnect carries a fresh token");
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "reconnect"]);
    const [close] = await events("close");
    assert.equal(close.x.code, 4000);
    assert.equal(close.x.willReconnect, true);
    assert.deepEqual(await events("closed"), []);
  });

  test("a token function that rejects on reconnect stops the client and says why", async () => {
    await start({ token: "fn", failOn: [2], options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("closed", 1, 5_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.willReconnect, false);
    assert.equal(closed.x.error.code, "token");
    assert.match(closed.x.error.message, /no token for you \(2\)/);
    await sleep(800);
    assert.equal(fake.handshakes.length, 1, "no handshake without a token");
    assert.equal((await clientState()).state, "closed");
  });

  test("a temporary token failure (error.temporary) is retried like a failed attempt", async () => {
    await start({ token: "fn", temporaryOn: [2, 3], options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("open", 2, 5_000);
    assert.equal(fake.handshakes.length, 2, "no handshake for the failed calls");
    assert.equal(fake.handshakes[1].token, "ok.ada.none.4");
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "reconnect", "reconnect", "reconnect"]);
    const errs = (await events("error")).map((e) => e.x.code);
    assert.deepEqual(errs, ["token_unavailable", "token_unavailable"]);
    assert.deepEqual(await events("closed"), []);
  });

  test("temporary token failures count against maxHandshakeFailures", async () => {
    await start({ token: "fn", temporaryOn: [2, 3, 4, 5, 6, 7], options: { minReconnectDelay: 20, maxReconnectDelay: 50, maxHandshakeFailures: 3 } });
    await waitEvent("open");
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("closed", 1, 5_000);
    await sleep(500);
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "reconnect", "reconnect", "reconnect"]);
    assert.equal(fake.handshakes.length, 1);
  });

  for (const kind of ["throw", "empty"]) {
    test(`a token function that ${kind === "throw" ? "throws" : "gives an empty token"} at connect: no handshake, stopped, reported`, async () => {
      await start({ token: kind });
      await waitEvent("closed", 1, 5_000);
      const [closed] = await events("closed");
      assert.equal(closed.x.error.code, "token");
      assert.match(closed.x.error.message, kind === "throw" ? /sync failure/ : /no token/);
      await sleep(800);
      assert.equal(fake.handshakes.length, 0);
      assert.deepEqual(await page.evaluate(() => window.calls), ["connect"]);
    });
  }

  test("a refused handshake (401 -> 1006 before open) is retried maxHandshakeFailures times, then given up", async () => {
    await start({ token: "garbage", options: { minReconnectDelay: 20, maxReconnectDelay: 100 } });
    await waitEvent("closed", 1, 8_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.refused, true);
    assert.equal(closed.x.code, 1006);
    assert.match(closed.x.reason, /5 times/);
    assert.equal(fake.handshakes.length, 5, "the default cap with a token");
    assert.ok(fake.handshakes.every((h) => !h.accepted && h.token === "garbage"));
    const closes = await events("close");
    assert.equal(closes.length, 5);
    assert.ok(closes.every((e) => e.x.opened === false), "all before open");
    assert.deepEqual(closes.map((e) => e.x.willReconnect), [true, true, true, true, false]);
    await sleep(1500);
    assert.equal(fake.handshakes.length, 5, "no more attempts");
    // connect() starts over.
    await page.evaluate(() => c.connect());
    await waitEvent("closed", 2, 8_000);
    assert.equal(fake.handshakes.length, 10);
  });

  test("maxHandshakeFailures is an option", async () => {
    await start({ token: "garbage", options: { minReconnectDelay: 20, maxReconnectDelay: 50, maxHandshakeFailures: 2 } });
    await waitEvent("closed", 1, 5_000);
    await sleep(500);
    assert.equal(fake.handshakes.length, 2);
  });

  test("a refresh the server refuses is reported; the connection ends at expiry and the client stops", async () => {
    fake.onRefresh = () => ({ error: "invalid_token" });
    await start({ token: "fn", lifetime: 2000 });
    await waitEvent("open");
    await page.waitForFunction(() => window.log.some((e) => e.ev === "error" && e.x.code === "invalid_token"), null, { timeout: 5_000 });
    const err = (await events("error")).find((e) => e.x.code === "invalid_token");
    assert.equal(err.x.refresh, true, "marked as a refresh error");
    await waitEvent("closed", 1, 5_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.code, 4001);
    assert.equal(fake.connections[0].refreshes.length, 1, "a refusal is not retried");
    await sleep(800);
    assert.equal(fake.handshakes.length, 1);
  });

  test("a token function that fails at refresh time: reported, the connection lives on, no reconnect after it ends", async () => {
    await start({ token: "fn", lifetime: 2000, failOn: [2], options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    await page.waitForFunction(() => window.log.some((e) => e.ev === "error" && e.x.code === "token"), null, { timeout: 5_000 });
    const err = (await events("error")).find((e) => e.x.code === "token");
    assert.equal(err.x.refresh, true);
    assert.equal(fake.connections[0].refreshes.length, 0, "nothing sent without a token");
    assert.equal(fake.connections[0].ws.readyState, 1, "the connection lives on until it expires");
    // Even a close that would normally be retried (here before the expiry) ends the client now.
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("closed", 1, 5_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.code, 4000);
    assert.equal(closed.x.error.code, "token", "the token failure is the reason");
    await sleep(800);
    assert.equal(fake.handshakes.length, 1, "no reconnect");
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "refresh"]);
  });

  test("close() by the page: one closed event with byClient", async () => {
    await start({ token: "fn" });
    await waitEvent("open");
    await page.evaluate(() => c.close());
    await waitEvent("closed", 1, 5_000);
    await sleep(300);
    const closed = await events("closed");
    assert.equal(closed.length, 1);
    assert.equal(closed[0].x.byClient, true);
    assert.equal(fake.handshakes.length, 1);
  });
});
