// Unit-level checks of tether.js's token logic in headless Chromium, against the in-process fake
// of fake-auth.mjs (so they run without the Rust side): the token in the query, refresh before
// expiry planned from `expiresIn` (whatever the page's clock says), with jitter, no storm for a
// distant or already-past expiry, catching up after a throttled timer, rescheduling from the ack,
// the token function called again on reconnect (also after a failed refresh), its failures retried
// unless `fatal`, no reconnect after 4001/4003/1008, a refused handshake given up after
// maxHandshakeFailures but an outage after the first open waited out, close() during a refresh
// kept quiet, and nothing changed for clients without a token. The chat demo's own handling
// (stopped without tokens, /demo/config failing, its token function) is checked here too.
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
 * `failOn` with a TypeError as fetch() does in a network blip, with a `temporary` error on those in
 * `temporaryOn`, with a `fatal` error on those in `fatalOn`, and on those in `holdOn` returning a
 * promise the test settles through window.held), "throw" (throws synchronously), "empty"
 * (resolves ""), a string, or undefined. spec.skew: ms added to the page's Date.now().
 */
function harness(spec) {
  window.log = [];
  window.calls = [];
  window.held = [];
  if (spec.skew) { const realNow = Date.now; Date.now = () => realNow() + spec.skew; }
  let n = 0;
  let token = spec.token;
  if (spec.token === "fn") {
    token = async (ctx) => {
      n++;
      window.calls.push(ctx && ctx.reason);
      if ((spec.failOn || []).includes(n)) throw new TypeError("Failed to fetch (" + n + ")");
      if ((spec.temporaryOn || []).includes(n)) throw Object.assign(new Error("endpoint down (" + n + ")"), { temporary: true });
      if ((spec.fatalOn || []).includes(n)) throw Object.assign(new Error("no token for you (" + n + ")"), { fatal: true });
      if ((spec.holdOn || []).includes(n)) return new Promise((resolve, reject) => window.held.push({ resolve, reject }));
      return `ok.${spec.user}.${spec.lifetime}.${n}`;
    };
  } else if (spec.token === "throw") {
    token = (ctx) => { window.calls.push(ctx && ctx.reason); throw new Error("sync failure"); };
  } else if (spec.token === "empty") {
    token = async (ctx) => { window.calls.push(ctx && ctx.reason); return ""; };
  }
  const options = Object.assign({}, spec.options, token !== undefined ? { token } : {});
  const c = new Tether.Client(spec.url, options);
  const plain = (x) => JSON.parse(JSON.stringify(x === undefined ? null : x, (k, v) => (v instanceof Error ? { code: v.code, message: v.message, refresh: v.refresh, retryable: v.retryable } : v)));
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

  test("a token function that rejects with fatal: true on reconnect stops the client and says why", async () => {
    await start({ token: "fn", fatalOn: [2], options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
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

  test("token failures before the first open count against maxHandshakeFailures, and are not called refusals", async () => {
    await start({ token: "fn", failOn: [1, 2, 3, 4, 5, 6, 7], options: { minReconnectDelay: 20, maxReconnectDelay: 50, maxHandshakeFailures: 3 } });
    await waitEvent("closed", 1, 5_000);
    await sleep(500);
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "connect", "connect"]);
    assert.equal(fake.handshakes.length, 0);
    const [closed] = await events("closed");
    assert.equal(closed.x.refused, false, "the server refused nothing");
    assert.equal(closed.x.error.code, "token_unavailable");
    assert.match(closed.x.reason, /Failed to fetch \(3\)/);
  });

  test("a fetch-style TypeError from the token function is retried, at connect and at refresh", async () => {
    await start({ token: "fn", lifetime: 3000, failOn: [1, 2, 4], options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    assert.equal(fake.handshakes.length, 1, "no handshake for the failed calls");
    assert.equal(fake.handshakes[0].token, "ok.ada.3000.3");
    // Call 4 (the first refresh) fails too; it is asked again while there is time.
    await waitEvent("refresh", 1, 6_000);
    assert.equal(fake.connections[0].refreshes[0].token, "ok.ada.3000.5");
    assert.equal(fake.connections.length, 1, "the connection was kept");
    const errs = (await events("error")).map((e) => [e.x.code, e.x.refresh ?? null]);
    assert.deepEqual(errs, [["token_unavailable", null], ["token_unavailable", null], ["token_unavailable", true]]);
    assert.deepEqual(await events("closed"), []);
  });

  test("a token function that throws synchronously is retried like a rejection, then given up before the first open", async () => {
    await start({ token: "throw", options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("closed", 1, 5_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.error.code, "token_unavailable");
    assert.match(closed.x.error.message, /sync failure/);
    await sleep(500);
    assert.equal(fake.handshakes.length, 0);
    assert.equal((await page.evaluate(() => window.calls)).length, 5, "the default cap with a token");
  });

  test("a token function that gives an empty token at connect: no handshake, stopped, reported", async () => {
    await start({ token: "empty" });
    await waitEvent("closed", 1, 5_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.error.code, "token");
    assert.match(closed.x.error.message, /no token/);
    await sleep(800);
    assert.equal(fake.handshakes.length, 0);
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect"]);
  });

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

  test("a fatal token failure at refresh time: reported, no more refreshes, and a later drop asks the function again", async () => {
    await start({ token: "fn", lifetime: 3000, fatalOn: [2], options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    await page.waitForFunction(() => window.log.some((e) => e.ev === "error" && e.x.code === "token"), null, { timeout: 5_000 });
    const err = (await events("error")).find((e) => e.x.code === "token");
    assert.equal(err.x.refresh, true);
    assert.equal(fake.connections[0].refreshes.length, 0, "nothing sent without a token");
    assert.equal(fake.connections[0].ws.readyState, 1, "the connection lives on until it expires");
    // A close that is normally retried: the reconnect's own token call decides (here it works).
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("open", 2, 5_000);
    assert.equal(fake.handshakes.length, 2);
    assert.equal(fake.handshakes[1].token, "ok.ada.3000.3");
    // The new connection refreshes again: the old failure did not carry over.
    await waitEvent("refresh", 1, 5_000);
    assert.equal(fake.connections[1].refreshes[0].token, "ok.ada.3000.4");
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "refresh", "reconnect", "refresh"]);
    assert.deepEqual(await events("closed"), []);
  });

  test("a fatal refresh failure, then the 4001 at expiry: stopped, with the token failure as the error", async () => {
    await start({ token: "fn", lifetime: 2000, fatalOn: [2] });
    await waitEvent("closed", 1, 6_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.code, 4001);
    assert.equal(closed.x.error.code, "token");
    await sleep(600);
    assert.equal(fake.handshakes.length, 1, "no reconnect after 4001");
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
  test("a distant expiry (beyond setTimeout's 2^31-1 ms) plans no refresh storm", async () => {
    // 70 % of 60 days is above 2^31-1 ms, which setTimeout would treat as 0: count the timers too,
    // since a refresh timer firing at once and re-arming would spin without refreshing.
    await page.evaluate(() => {
      const realSetTimeout = window.setTimeout;
      window.timersSet = 0;
      window.setTimeout = (fn, ms, ...args) => { window.timersSet++; return realSetTimeout(fn, ms, ...args); };
    });
    await start({ token: "fn", lifetime: String(60 * 24 * 3600 * 1000) });
    await waitEvent("open");
    await sleep(2000);
    assert.equal(fake.connections[0].refreshes.length, 0, "no refresh 2 s into a 60-day token");
    const timers = await page.evaluate(() => window.timersSet);
    assert.ok(timers < 20, `${timers} timers set in 2 s`);
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect"]);
    assert.equal((await clientState()).state, "open");
  });

  test("a refresh timer longer than setTimeout allows is chained: it fires early, re-arms, and refreshes once when due", async () => {
    await page.clock.install(); // fake timers, flowing with real time until fast-forwarded
    const lifetime = 60 * 24 * 3600 * 1000; // refresh due at 42-51 days
    await start({ token: "fn", lifetime: String(lifetime) });
    await waitEvent("open");
    await page.clock.fastForward(30 * 24 * 3600 * 1000); // the first, capped timer (24.8 days) fires
    await sleep(300);
    assert.equal(fake.connections[0].refreshes.length, 0, "not due yet after 30 days: re-armed instead");
    await page.clock.fastForward(22 * 24 * 3600 * 1000); // day 52: past the planned point
    await waitEvent("refresh", 1, 5_000);
    await sleep(300);
    assert.equal(fake.connections[0].refreshes.length, 1, "one refresh, when due");
  });

  for (const skew of [10 * 60_000, -10 * 60_000]) {
    test(`a page clock ${skew > 0 ? "ahead" : "behind"} by 10 minutes: refreshes follow expiresIn, not expiresAt`, async () => {
      await start({ token: "fn", lifetime: 3000, skew });
      await waitEvent("open");
      const welcomeAt = Date.now();
      await waitEvent("refresh", 2, 9_000);
      const conn = fake.connections[0];
      const [r1, r2] = conn.refreshes;
      assert.ok(r1.at - welcomeAt >= 1500 && r1.at - welcomeAt <= 2400, `first refresh ${r1.at - welcomeAt} ms after the welcome`);
      assert.ok(r2.at - r1.at >= 1500 && r2.at - r1.at <= 2700, `second refresh ${r2.at - r1.at} ms after the first`);
      assert.equal(conn.refreshes.length, 2, "no refresh loop");
      assert.equal(conn.ws.readyState, 1, "kept past the first expiry");
      assert.equal(fake.connections.length, 1);
      assert.deepEqual(await events("closed"), []);
    });
  }

  test("the refresh point has jitter: 70 % of the time left when Math.random() gives 0", async () => {
    await page.evaluate(() => { Math.random = () => 0; });
    await start({ token: "fn", lifetime: 6000 });
    await waitEvent("open");
    const welcomeAt = Date.now();
    await waitEvent("refresh", 1, 8_000);
    const at = fake.connections[0].refreshes[0].at - welcomeAt;
    assert.ok(at >= 4000 && at <= 4400, `refresh ${at} ms after the welcome, expected about 4200 (70 % of 6000)`);
  });

  test("a server that acks with no time left gets refreshes at most once a second (no loop)", async () => {
    // The connection does not expire (the fake closes nothing), but every ack says expiresIn 0.
    fake.onRefresh = (token, conn) => ({ expiresAt: conn.expiresAt, expiresIn: 0 });
    await start({ token: "fn", lifetime: 3000 });
    await waitEvent("open");
    fake.connections[0].expiresAt = Date.now() + 60_000; // keep the fake's sweeper away
    await waitEvent("refresh", 1, 5_000);
    const first = Date.now();
    await sleep(3000);
    const n = fake.connections[0].refreshes.filter((r) => r.at > first).length;
    assert.ok(n >= 2 && n <= 4, `${n} refreshes in 3 s after an ack with expiresIn 0`);
  });

  test("an overdue refresh (timer held back, as in a background tab) goes out on visibilitychange or focus", async () => {
    await start({ token: "fn", lifetime: 4000 });
    await waitEvent("open");
    // Stand-in for a throttled timer: stop it, and let the planned point (about 3 s) pass.
    await page.evaluate(() => clearTimeout(c._refreshTimer));
    await sleep(3200);
    assert.equal(fake.connections[0].refreshes.length, 0);
    await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
    await waitEvent("refresh", 1, 2_000);
    assert.equal(fake.connections[0].ws.readyState, 1, "refreshed before the 4001");
    // Focus with nothing overdue sends nothing.
    await page.evaluate(() => window.dispatchEvent(new Event("focus")));
    await sleep(300);
    assert.equal(fake.connections[0].refreshes.length, 1);
    await page.evaluate(() => clearTimeout(c._refreshTimer));
    await sleep(3200);
    await page.evaluate(() => window.dispatchEvent(new Event("focus")));
    await waitEvent("refresh", 2, 2_000);
  });

  test("an outage after the first open (5+ failed attempts) is waited out: the client reconnects", async () => {
    await start({ token: "fn", options: { minReconnectDelay: 20, maxReconnectDelay: 60 } });
    await waitEvent("open");
    fake.verify = () => null; // every handshake fails, as with a server restarting
    fake.connections[0].ws.terminate();
    await page.waitForFunction(() => window.log.filter((e) => e.ev === "close" && !e.x.opened).length >= 8, null, { timeout: 8_000 });
    fake.verify = verifyTestToken;
    await waitEvent("open", 2, 5_000);
    assert.ok(fake.handshakes.length >= 10);
    assert.deepEqual(await events("closed"), [], "never gave up");
    const closes = await events("close");
    assert.ok(closes.every((e) => e.x.willReconnect), "every close says it will reconnect");
  });

  test("a string token keeps the attempt cap after the first open: once refused it stops, it cannot be renewed", async () => {
    await start({ token: "ok.ada.none.s", options: { minReconnectDelay: 20, maxReconnectDelay: 60 } });
    await waitEvent("open");
    fake.verify = () => null; // the secret changed, or the token expired: every handshake is refused
    fake.connections[0].ws.terminate();
    await waitEvent("closed", 1, 8_000);
    const [closed] = await events("closed");
    assert.equal(closed.x.refused, true);
    assert.equal(fake.handshakes.length, 1 + 5, "the first connection and the 5 refused attempts");
    await sleep(500);
    assert.equal(fake.handshakes.length, 6, "then no more");
  });

  test("an expiring token across a reconnect: the old refresh timer is cleared, the new welcome re-arms it", async () => {
    await start({ token: "fn", lifetime: 3000, options: { minReconnectDelay: 20, maxReconnectDelay: 50 } });
    await waitEvent("open");
    await sleep(1000);
    fake.connections[0].ws.close(4000, "disconnected by server");
    await waitEvent("open", 2, 5_000);
    const secondAt = Date.now();
    const [first, second] = fake.connections;
    await waitEvent("refresh", 1, 5_000);
    await sleep(300);
    assert.equal(first.refreshes.length, 0, "nothing planned for the old connection");
    assert.equal(second.refreshes.length, 1);
    const at = second.refreshes[0].at - secondAt;
    assert.ok(at >= 1500 && at <= 2400, `refresh ${at} ms after the new welcome (planned from it)`);
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "reconnect", "refresh"]);
  });

  test("close() while a refresh waits for its token or its ack: no error event, nothing after", async () => {
    // Token function held at the refresh, then rejected right after close().
    await start({ token: "fn", lifetime: 2500, holdOn: [2] });
    await waitEvent("open");
    await page.waitForFunction(() => window.held.length === 1, null, { timeout: 5_000 });
    await page.evaluate(() => { c.close(); window.held[0].reject(new TypeError("Failed to fetch")); });
    await waitEvent("closed", 1, 3_000);
    await sleep(1200);
    assert.deepEqual(await events("error"), [], "no error for a refresh the page cancelled");
    assert.deepEqual(await page.evaluate(() => window.calls), ["connect", "refresh"], "no retry planned after close()");

    // A refresh sent but never answered, when close() fails it with `closed`.
    await page.evaluate(() => { window.c = null; });
    fake.reset();
    fake.onRefresh = () => ({ silent: true });
    await start({ token: "fn", lifetime: 2500 });
    await waitEvent("open");
    await page.waitForFunction(() => c._pending.size === 1, null, { timeout: 5_000 });
    await page.evaluate(() => c.close());
    await waitEvent("closed", 1, 3_000);
    await sleep(300);
    assert.deepEqual(await events("error"), []);
    assert.equal((await events("closed")).length, 1);
  });

  test("a token of the wrong type (a Promise, a number) is a TypeError, not \"[object Promise]\" on the wire", async () => {
    const thrown = await page.evaluate((url) => {
      const out = [];
      try { new Tether.Client(url, { token: Promise.resolve("x") }); out.push("no throw"); } catch (e) { out.push(e.name + ": " + e.message); }
      const c2 = new Tether.Client(url);
      c2.options.token = 42;
      try { c2.connect(); out.push("no throw"); } catch (e) { out.push(e.name + ": " + e.message); }
      return out;
    }, fake.wsUrl);
    assert.match(thrown[0], /^TypeError: .*Promise/);
    assert.match(thrown[1], /^TypeError: .*number/);
    await sleep(300);
    assert.equal(fake.handshakes.length, 0, "nothing sent");
  });

  test("a #fragment is dropped from a URL with a token, and error messages never carry the token", async () => {
    await start({ url: fake.wsUrl + "?room=a#frag", token: "ok.ada.none.FRAG" });
    await waitEvent("open");
    assert.equal(fake.handshakes[0].rawQuery, "room=a&token=ok.ada.none.FRAG");
    await page.evaluate(() => c.close());
    // A URL the browser refuses: the message names this.url, never the one carrying the token.
    // (Chromium's SyntaxError for an invalid URL quotes it whole.)
    await start({ url: "ws://[bad/tether", token: "ok.ada.none.SECRET", options: { maxHandshakeFailures: 1 } });
    await waitEvent("closed", 1, 5_000);
    const everything = JSON.stringify(await page.evaluate(() => ({ log: window.log, info: c.closeInfo })));
    assert.ok(!everything.includes("SECRET"), everything);
    assert.match(everything, /cannot open a WebSocket to ws:\/\/\[bad\/tether \(SyntaxError\)/);
  });

  test("user and expiresAt are reset when the connection is lost", async () => {
    await start({ token: "fn", lifetime: 60000 });
    await waitEvent("open");
    const s = await clientState();
    assert.equal(s.user, "ada");
    assert.equal(typeof s.expiresAt, "number");
    fake.connections[0].ws.close(4003, "banned");
    await waitEvent("closed", 1, 5_000);
    const after = await clientState();
    assert.equal(after.user, null);
    assert.equal(after.expiresAt, null);
  });
});
