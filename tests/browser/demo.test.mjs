// Drives the demo page served by `tether serve` in headless Chromium (Debian's /usr/bin/chromium):
// the page must connect with sub-protocol `json`, show the welcome packet, answer questions 1-3,
// echo the size of a binary message, and report the close when the server goes away.
//
// Env: TETHER_BIN (default ../../target/debug/tether), CHROMIUM (default /usr/bin/chromium).
// Run with `node --test` in this folder, or scripts/browser-test.sh from anywhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { chromiumBin, closeBrowser, launchBrowser, reportsDir, startServer, stopServer, tetherBin } from "./support.mjs";

const screenshotPath = resolve(reportsDir, "demo.png");

test("demo page talks to tether serve over the json sub-protocol", { timeout: 60_000 }, async () => {
  assert.ok(existsSync(tetherBin), `server binary not found: ${tetherBin} (build it with cargo build -p tether)`);
  assert.ok(existsSync(chromiumBin), `chromium not found: ${chromiumBin} (apt-get install chromium)`);

  const server = startServer();
  let browser;
  try {
    const port = await server.ready;
    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
    page.setDefaultTimeout(10_000);
    page.setDefaultNavigationTimeout(10_000);
    const pageErrors = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));

    const response = await page.goto(`http://127.0.0.1:${port}/`);
    assert.equal(response.status(), 200, "GET / status");
    assert.match(response.headers()["content-type"] ?? "", /^text\/html/, "GET / content-type");
    assert.equal(await page.title(), "Tether — WebSocket demo");

    // Welcome packet: connection id (16 url-safe chars) and the chosen sub-protocol.
    await page.locator('#status[data-state="OPEN"]').waitFor();
    await page.locator("#welcome-protocol", { hasText: "json" }).waitFor();
    const welcome = await page.locator("#welcome").innerText();
    assert.match(await page.locator("#welcome-id").innerText(), /^[A-Za-z0-9_-]{16}$/, `welcome: ${welcome}`);
    assert.match(welcome, /tether/, "welcome names the server");
    assert.equal(await page.evaluate(() => ws.protocol), "json", "handshake sub-protocol");

    /** Waits for the answer tagged `tag` and returns [answer text, whole #response text]. */
    const answerTo = async (tag) => {
      await page.locator(`#response[data-question="${tag}"]`).waitFor();
      return [await page.locator("#response .answer").innerText(), await page.locator("#response").innerText()];
    };

    await page.selectOption("#question", "1");
    const [name, nameBox] = await answerTo("1");
    assert.match(name, /tether/, `answer to 1: ${nameBox}`);

    await page.selectOption("#question", "2");
    const [os, osBox] = await answerTo("2");
    assert.match(os, /Linux/, `answer to 2: ${osBox}`);

    await page.selectOption("#question", "3");
    const [time, timeBox] = await answerTo("3");
    assert.match(time.trim(), /^\d\d:\d\d:\d\d$/, `answer to 3: ${timeBox}`);

    // The Ask button re-sends the selected question.
    await page.click("#ask");
    const [again] = await answerTo("3");
    assert.match(again.trim(), /^\d\d:\d\d:\d\d$/, "answer to 3 via the Ask button");

    // Any other text is an error, shown as such.
    await page.evaluate(() => send("hello", '"hello" (not a question)'));
    const [error] = await answerTo("error");
    assert.match(error, /^Error: ./, "error answer");
    assert.ok(await page.locator("#response.error").count(), "#response marked as error");

    await page.click("#send-binary");
    const [binary, binaryBox] = await answerTo("binary");
    assert.match(binary, /received 8 bytes/, `answer to binary: ${binaryBox}`);

    const logLines = await page.locator("#log li").count();
    assert.ok(logLines >= 12, `log has messages in and out (${logLines} lines)`);

    mkdirSync(dirname(screenshotPath), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true });

    // When the server goes away the page says so and offers to reconnect.
    await stopServer(server.child);
    await page.locator('#status[data-state="CLOSED"]').waitFor();
    await page.locator("#reconnect").waitFor({ state: "visible" });
    assert.match(await page.locator("#close-info").innerText(), /code \d+/, "close code shown");

    assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
  } finally {
    await closeBrowser(browser);
    await stopServer(server.child);
  }
});
