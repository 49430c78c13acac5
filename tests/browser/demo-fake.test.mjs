// The demo pages' own connection handling, in headless Chromium against the in-process fake of
// fake-auth.mjs (which serves the real chat.html, live.html and game.html): a client stopped by a
// 4003 or 1008 close says so in every page, with or without sign-in, and Join / Reconnect starts
// over; /demo/config failing is asked again rather than read as "no tokens"; and the chat's own
// token function: a token the server refuses, a token endpoint that keeps failing (not called a
// refusal) and one that refuses the nickname (not retried).
//
// Env: CHROMIUM (default /usr/bin/chromium). Run with `node --test` in this folder, or
// scripts/browser-test.sh from anywhere.
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startFakeAuth } from "./fake-auth.mjs";
import { chromiumBin, closeBrowser, launchBrowser } from "./support.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Anonymous connections are fine; tokens `ok.USER.none` are accepted, anything else refused. */
function verify(token) {
  if (token === null) return { user: null, expiresAt: null };
  const m = /^ok\.([a-z]+)\.none/.exec(token);
  return m ? { user: m[1], expiresAt: null } : null;
}
const json = (status, body) => (req, res) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
const noTokens = null; // /demo/config answers 404: the chat works without sign-in

describe("demo pages: stopped clients and sign-in edge cases (fake server)", { timeout: 120_000 }, () => {
  let fake;
  let browser;
  let context;
  let page;
  let errors;

  before(async () => {
    assert.ok(existsSync(chromiumBin), `chromium not found: ${chromiumBin} (apt-get install chromium)`);
    fake = await startFakeAuth({ verify });
    browser = await launchBrowser();
  });
  after(async () => {
    await closeBrowser(browser);
    await fake?.stop();
  });
  beforeEach(async () => {
    fake.reset();
    fake.verify = verify;
    context = await browser.newContext();
    page = await context.newPage();
    page.setDefaultTimeout(10_000);
    errors = [];
    page.on("pageerror", (err) => errors.push(err.message));
  });
  afterEach(async () => {
    await context.close();
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  });

  const errorText = () => page.locator("#error").innerText();
  const joinedNotices = () => page.locator("#messages li.notice", { hasText: "You joined" }).count();

  for (const code of [4003, 1008]) {
    test(`chat without sign-in, stopped by a ${code} close: says so, and Join starts over`, async () => {
      fake.demoConfig = noTokens;
      await page.goto(fake.base + "/chat.html?nick=bob&autojoin=1&reconnectDelay=20");
      await page.locator("#messages li.notice", { hasText: "You joined" }).waitFor();
      assert.equal(fake.handshakes[0].token, null, "no token asked for");
      fake.open()[0].ws.close(code, "banned");
      await page.locator("#error", { hasText: "banned" }).waitFor({ timeout: 5_000 });
      assert.match(await errorText(), code === 4003 ? /^Disconnected by the server: banned\. Press Join/ : /^Closed by the server: banned\. Press Join/);
      assert.equal(await page.locator("#message").isDisabled(), true, "cannot send while stopped");
      await sleep(500);
      assert.equal(fake.handshakes.length, 1, "not reconnected by itself");
      await page.click("#join");
      await page.waitForFunction(() => document.querySelectorAll("#messages li.notice").length >= 1 && client.state === "open");
      await page.locator("#messages li.notice", { hasText: "You joined" }).waitFor();
      assert.equal(fake.handshakes.length, 2, "a new connection");
      assert.equal(await page.locator("#error").isHidden(), true, "the message is gone");
      assert.equal(await page.locator("#message").isDisabled(), false, "can send again");
      assert.equal(await joinedNotices(), 1, "joined anew (the room was redrawn)");
    });
  }

  test("chat: a failing /demo/config is asked again, not read as \"no tokens\"", async () => {
    let failures = 2;
    fake.demoConfig = (req, res) => (failures-- > 0 ? json(500, { error: "starting" })(req, res) : json(200, { tokens: true })(req, res));
    fake.demoToken = json(200, { token: "ok.bob.none.1", user: "bob", expiresAt: null });
    await page.goto(fake.base + "/chat.html?nick=bob&autojoin=1");
    await page.locator("#messages li.notice", { hasText: "You joined" }).waitFor({ timeout: 8_000 });
    assert.equal(fake.handshakes.length, 1);
    assert.equal(fake.handshakes[0].token, "ok.bob.none.1", "signed in once the config answered");
    assert.equal(await page.locator("#signed-in").innerText(), "bob");
  });

  test("chat: /demo/config failing for good shows an error and connects nowhere", { timeout: 30_000 }, async () => {
    fake.demoConfig = json(503, { error: "down" });
    await page.goto(fake.base + "/chat.html?nick=bob&autojoin=1");
    await page.locator("#error", { hasText: "Cannot tell whether this server wants a sign-in" }).waitFor({ timeout: 15_000 });
    assert.match(await errorText(), /HTTP 503.*Reload the page/);
    assert.equal(await page.locator("#join").isDisabled(), true);
    assert.equal(fake.handshakes.length, 0);
  });

  test("chat's token function with a token the server refuses: neutral retry text, then \"Sign-in refused\"", async () => {
    fake.demoConfig = json(200, { tokens: true });
    fake.demoToken = json(200, { token: "refused-by-the-server", user: "bob", expiresAt: null });
    await page.goto(fake.base + "/chat.html?nick=bob&autojoin=1");
    await page.locator("#error", { hasText: "Cannot connect; trying again…" }).waitFor({ timeout: 5_000 });
    await page.locator("#error", { hasText: "Sign-in refused: the server did not accept" }).waitFor({ timeout: 15_000 });
    assert.equal(fake.handshakes.length, 5);
    assert.ok(fake.handshakes.every((h) => h.token === "refused-by-the-server"), "the chat's own token, every time");
    assert.equal(await page.evaluate(() => client.closeInfo.refused), true);
  });

  test("chat: a token endpoint that keeps failing (503) is not called a refusal", { timeout: 30_000 }, async () => {
    let calls = 0;
    fake.demoConfig = json(200, { tokens: true });
    fake.demoToken = (req, res) => { calls++; json(503, { error: "overloaded" })(req, res); };
    await page.goto(fake.base + "/chat.html?nick=bob&autojoin=1");
    await page.locator("#error", { hasText: "Could not sign in" }).waitFor({ timeout: 15_000 });
    assert.match(await errorText(), /^Could not sign in: the token endpoint answered HTTP 503\. Press Join to try again\.$/);
    assert.equal(calls, 5, "retried up to maxHandshakeFailures");
    assert.equal(await page.evaluate(() => client.closeInfo.refused), false);
    assert.equal(fake.handshakes.length, 0);
  });

  test("chat: a nickname the token endpoint refuses (400) stops at once with its reason", async () => {
    let calls = 0;
    fake.demoConfig = json(200, { tokens: true });
    fake.demoToken = (req, res) => { calls++; json(400, { error: "user must be 1-32 characters" })(req, res); };
    await page.goto(fake.base + "/chat.html?nick=bob&autojoin=1");
    await page.locator("#error", { hasText: "Sign-in refused" }).waitFor({ timeout: 5_000 });
    assert.match(await errorText(), /^Sign-in refused: user must be 1-32 characters$/);
    await sleep(800);
    assert.equal(calls, 1, "a refusal is not retried");
  });

  for (const name of ["live", "game"]) {
    test(`${name}.html stopped by a 4003 close: says so, stops retrying, and Reconnect starts over`, async () => {
      await page.goto(fake.base + `/${name}.html`);
      await page.waitForFunction(() => client.state === "open" && client.subscriptions.size === 1);
      fake.open()[0].ws.close(4003, "banned");
      await page.locator("#error", { hasText: "not reconnecting" }).waitFor({ timeout: 5_000 });
      assert.match(await errorText(), /code 4003, banned/);
      await sleep(2500); // live retries its feed every 2 s, game its join every 1 s, while running
      assert.equal(fake.handshakes.length, 1, "no reconnect");
      await page.click("#reconnect");
      await page.waitForFunction(() => client.state === "open");
      assert.equal(fake.handshakes.length, 2);
      assert.equal(await page.locator("#error").isHidden(), true);
    });
  }
});
