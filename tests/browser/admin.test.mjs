// Drives the admin dashboard (/admin, docs/admin.md) in headless Chromium against
// `tether serve --admin-password ...`: a wrong password is refused, the right one (typed and
// submitted from the keyboard) opens the dashboard; the live connection count rises when 3 test
// clients connect; search finds one by id and Disconnect closes it with 4000; the Publish box
// reaches a subscriber. Screenshots of the dashboard at desktop size and at 375 px wide land in
// reports/browser/admin-desktop.png and admin-phone.png. A second test: a page whose CSRF token
// went stale (signed in again elsewhere) reloads itself; with too many dashboards open the page
// says so (1013); a page whose session ended while its socket was down (the server restarted)
// goes back to the login form instead of retrying for ever.
//
// Env: TETHER_BIN (default ../../target/debug/tether; skipped with ./fake-tether.mjs, which has no
// dashboard), CHROMIUM (default /usr/bin/chromium).
// Run with `node --test` in this folder, or scripts/browser-test.sh from anywhere.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import WebSocket from "ws";
import { chromiumBin, closeBrowser, launchBrowser, reportsDir, startServer, stopServer, tetherBin } from "./support.mjs";

const PASSWORD = "browser-admin-pw";
const shot = (name) => resolve(reportsDir, name);

/** A token-protocol client on /tether: its id (from the welcome), its messages, its close. */
function tokenClient(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/tether`, "tether.json");
  const client = { ws, id: null, messages: [], closed: null };
  client.closedPromise = new Promise((r) => ws.on("close", (code, reason) => r((client.closed = { code, reason: reason.toString() }))));
  client.ready = new Promise((resolveReady, reject) => {
    ws.on("error", reject);
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === "welcome") {
        client.id = message.connectionId;
        resolveReady(client);
      } else {
        client.messages.push(message);
      }
    });
  });
  return client;
}

/** Resolves when `predicate()` is true (polled), or rejects after `ms`. */
async function until(predicate, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The JavaScript stand-in (fake-tether.mjs) plays the token protocol only. */
const fake = tetherBin.endsWith(".mjs");

let server;
let browser;
let base;
let port;

before(async () => {
  if (fake) return;
  assert.ok(existsSync(tetherBin), `server binary not found: ${tetherBin} (build it with cargo build -p tether)`);
  assert.ok(existsSync(chromiumBin), `chromium not found: ${chromiumBin} (apt-get install chromium)`);
  mkdirSync(reportsDir, { recursive: true });
  server = startServer(15_000, ["--admin-password", PASSWORD]);
  port = await server.ready;
  base = `http://127.0.0.1:${port}`;
  browser = await launchBrowser();
});

after(async () => {
  await closeBrowser(browser);
  await stopServer(server?.child);
});

test("admin dashboard: login, live count, search, disconnect, publish", { timeout: 120_000, skip: fake && "fake-tether.mjs has no dashboard" }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  // A CSP violation (an inline script or style the policy refused) shows as a console error.
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  const clients = [];
  try {
    // The login form; a wrong password is refused (after the server's delay).
    const first = await page.goto(`${base}/admin`);
    assert.equal(first.status(), 200);
    assert.equal(first.headers()["x-frame-options"], "DENY");
    assert.match(first.headers()["content-security-policy"], /frame-ancestors 'none'/);
    await page.getByLabel("Password").fill("not-the-password");
    const [refused] = await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
    assert.equal(refused.status(), 401);
    await page.locator("#error", { hasText: "Wrong password." }).waitFor();
    assert.equal(await page.locator("#status").count(), 0, "no dashboard");

    // The right one, from the keyboard: type it, press Enter.
    await page.getByLabel("Password").focus();
    await page.keyboard.type(PASSWORD);
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    await page.locator('#status[data-state="open"]').waitFor();
    const cookies = await context.cookies();
    const cookie = cookies.find((c) => c.name === "tether_admin");
    assert.ok(cookie, "the session cookie");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.path, "/admin");

    // The live count: wait for a first sample, then 3 clients connect.
    await until(async () => /^\d+$/.test(await page.locator("#c-connections").innerText()), "a first sample");
    const before = Number(await page.locator("#c-connections").innerText());
    for (let i = 0; i < 3; i++) clients.push(tokenClient(port));
    await Promise.all(clients.map((c) => c.ready));
    await until(async () => Number(await page.locator("#c-connections").innerText()) === before + 3, "the count to rise by 3");

    // Search for the second client by id: exactly its row.
    const target = clients[1];
    await page.getByLabel("Search id, user, route or address").fill(target.id);
    await page.locator("#connections-search button[type=submit]").click();
    await page.locator("#connections-summary", { hasText: "1 connection match" }).waitFor();
    const rows = page.locator("#connections tbody tr");
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute("data-id"), target.id);

    // Disconnect it: that client gets 4000.
    await page.getByRole("button", { name: `Disconnect ${target.id}` }).click();
    const closed = await Promise.race([
      target.closedPromise,
      new Promise((_, reject) => setTimeout(() => reject(new Error("no close within 5 s")), 5_000)),
    ]);
    assert.deepEqual(closed, { code: 4000, reason: "disconnected by admin" });
    await until(async () => Number(await page.locator("#c-connections").innerText()) === before + 2, "the count to drop");

    // Publish from the Publish box: a subscriber receives it.
    const subscriber = clients[0];
    subscriber.ws.send(JSON.stringify({ type: "subscribe", channel: "admin-test", id: 1 }));
    await until(() => subscriber.messages.some((m) => m.type === "ack" && m.id === 1), "the subscribe ack");
    await page.getByLabel("Channel", { exact: true }).fill("admin-test");
    await page.getByLabel("Data (JSON)").fill('{"hello":"from the dashboard"}');
    await page.click("#publish-send");
    await page.locator("#publish-result", { hasText: "Published to admin-test at offset 1" }).waitFor();
    await until(
      () => subscriber.messages.some((m) => m.type === "message" && m.channel === "admin-test" && m.data?.hello === "from the dashboard"),
      "the subscriber to receive the publication",
    );
    // Text mode sends a JSON string.
    await page.getByLabel("Data (JSON)").fill("just words");
    await page.getByLabel("Send as text (a JSON string)").check();
    await page.click("#publish-send");
    await until(() => subscriber.messages.some((m) => m.type === "message" && m.data === "just words"), "the text publication");

    // The channels table lists it; its history peek shows the newest first.
    await page.locator("#channels-q").fill("admin");
    await page.locator("#channels-search button[type=submit]").click();
    const channelRow = page.locator('#channels tbody tr[data-name="admin-test"]');
    await channelRow.waitFor();
    assert.deepEqual(await channelRow.locator("td").allInnerTexts().then((t) => t.slice(0, 4)), ["admin-test", "1", "2", "2"]);
    await page.getByRole("button", { name: "History of admin-test" }).click();
    await page.locator("#peek-list li").first().waitFor();
    assert.match(await page.locator("#peek-list li").first().innerText(), /"just words"/);

    // Wait for a few samples so the chart has a line, then the screenshots.
    await page.locator("#connections-q").fill("");
    await page.locator("#connections-search button[type=submit]").click();
    await page.locator("#connections-summary", { hasText: "2 connections" }).waitFor();
    await until(async () => (await page.locator("#chart-connections polyline").getAttribute("points"))?.split(" ").length >= 4, "a chart line", 15_000);
    await until(async () => (await page.locator("#c-channels").innerText()) === "1", "the channel in the live counters");
    await page.screenshot({ path: shot("admin-desktop.png"), fullPage: true });

    await page.setViewportSize({ width: 375, height: 812 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 375, `no sideways scrolling of the page at 375 px (scrollWidth ${overflow})`);
    await page.screenshot({ path: shot("admin-phone.png"), fullPage: true });

    // Keyboard: every control can take the focus, and focus is visible.
    await page.locator("#connections-q").focus();
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none", "a visible focus ring");

    // Sign out: back to the login form; the API refuses the old session.
    await Promise.all([page.waitForNavigation(), page.click("#logout")]);
    await page.getByLabel("Password").waitFor();
    assert.deepEqual(problems, [], "no page errors and no CSP violations");
  } finally {
    for (const client of clients) client.ws.terminate();
    await context.close();
  }
});

test("admin dashboard: a stale token reloads, 1013 is shown, an ended session returns to the login", { timeout: 120_000, skip: fake && "fake-tether.mjs has no dashboard" }, async () => {
  let own = startServer(15_000, ["--admin-password", PASSWORD]);
  const ownPort = await own.ready;
  const ownBase = `http://127.0.0.1:${ownPort}`;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const sockets = [];
  let restarted;
  try {
    await page.goto(`${ownBase}/admin`);
    await page.getByLabel("Password").fill(PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
    await page.locator('#status[data-state="open"]').waitFor();
    assert.equal(await page.locator("#counters").getAttribute("aria-live"), null, "the counters are not read out every second");
    await until(async () => (await page.locator("#announce").innerText()) === "Live updates connected.", "the announcement");
    const token = await page.locator('meta[name="csrf-token"]').getAttribute("content");

    // Signed in again elsewhere in this browser: a new session (the cookie is replaced), a new token.
    const again = await context.request.post(`${ownBase}/admin/login`, { form: { password: PASSWORD }, maxRedirects: 0 });
    assert.equal(again.status(), 303);
    await Promise.all([page.waitForNavigation(), page.locator("#connections-search button[type=submit]").click()]);
    await page.locator('#status[data-state="open"]').waitFor();
    const fresh = await page.locator('meta[name="csrf-token"]').getAttribute("content");
    assert.notEqual(fresh, token, "the reloaded page has the new session's token");

    // 32 dashboards open elsewhere: this page's socket is one too many and says so.
    const cookie = (await context.cookies()).find((c) => c.name === "tether_admin");
    await page.goto("about:blank");
    // Until the server has seen the page's own socket close (a navigation does not wait for
    // it), one of these is refused: open them until 32 of our own are held, so the page's next
    // socket is one too many whenever its old one went. Held = the server sent it the chart's
    // history (what an accepted socket gets first); refused = closed (1013) without it.
    const accepted = async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${ownPort}/admin/ws`, { headers: { Cookie: `tether_admin=${cookie.value}`, Origin: ownBase } });
      const held = await new Promise((r, reject) => {
        ws.once("message", () => r(true));
        ws.once("close", () => r(false));
        ws.once("error", reject);
      });
      return held ? ws : null;
    };
    const holding = Date.now() + 20_000;
    while (sockets.length < 32) {
      assert.ok(Date.now() < holding, `only ${sockets.length} dashboard sockets held`);
      const ws = await accepted();
      if (ws) sockets.push(ws);
      else await new Promise((r) => setTimeout(r, 200));
    }
    await page.goto(`${ownBase}/admin`);
    await page.locator("#error", { hasText: "Too many dashboards are open" }).waitFor();
    for (const ws of sockets) ws.terminate();

    // The server restarts (sessions are in memory): the socket's upgrade is refused (1006 to the
    // page), the page asks the API, gets 401 and shows the login form.
    await page.reload();
    await page.locator('#status[data-state="open"]').waitFor();
    await stopServer(own.child);
    own = null;
    restarted = spawn(tetherBin, ["serve", "--port", String(ownPort), "--admin-password", PASSWORD], { stdio: "ignore", env: { ...process.env, TETHER_LOG: "warn" } });
    await page.getByLabel("Password").waitFor({ timeout: 20_000 });
  } finally {
    for (const ws of sockets) ws.terminate();
    await context.close();
    if (own) await stopServer(own.child);
    if (restarted) await stopServer(restarted);
  }
});
