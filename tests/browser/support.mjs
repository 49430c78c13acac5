// Shared by the browser tests: where the server and Chromium are, starting and stopping
// `tether serve --port 0`, and launching headless Chromium with the options that work here.
//
// Env: TETHER_BIN (default ../../target/debug/tether; a node script such as ./fake-tether.mjs
// works too, it is spawned directly), CHROMIUM (default /usr/bin/chromium).
import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const here = dirname(fileURLToPath(import.meta.url));
export const tetherBin = process.env.TETHER_BIN
  ? resolve(process.env.TETHER_BIN)
  : resolve(here, "../../target/debug/tether");
export const chromiumBin = process.env.CHROMIUM || "/usr/bin/chromium";
export const reportsDir = resolve(here, "../../reports/browser");

/**
 * Starts `tether serve --port 0 ...extraArgs`; `ready` resolves with its port once it is listening.
 */
export function startServer(timeoutMs = 15_000, extraArgs = []) {
  const child = spawn(tetherBin, ["serve", "--port", "0", ...extraArgs], {
    env: { ...process.env, TETHER_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
  });
  const ready = new Promise((resolvePort, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening on" line within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`)),
      timeoutMs,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const m = /listening on ws:\/\/[^\s:]+:(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${tetherBin}: ${err.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal}); stderr: ${stderr}`));
    });
  });
  return { child, ready, stderr: () => stderr };
}

/**
 * Stops the server: SIGINT (its Ctrl-C path), then SIGKILL if it has not exited in `graceMs`
 * (a graceful shutdown may wait for the browser's idle keep-alive HTTP connection).
 */
export async function stopServer(child, graceMs = 3_000) {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const timers = [];
  const exited = new Promise((r) => {
    child.once("exit", r);
    timers.push(setTimeout(r, graceMs + 2_000));
  });
  child.kill("SIGINT");
  timers.push(setTimeout(() => child.kill("SIGKILL"), graceMs));
  await exited;
  timers.forEach(clearTimeout);
}

/** Launches headless Debian Chromium (Playwright's own browser downloads cannot work here). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumBin,
    timeout: 20_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Closes the browser, giving up after `ms` so a wedged browser cannot hang the test run. */
export async function closeBrowser(browser, ms = 5_000) {
  let timer;
  await Promise.race([browser?.close(), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
