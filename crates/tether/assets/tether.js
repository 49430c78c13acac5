/*
 * tether.js — browser client for the Tether token protocol (`tether.json`, docs/protocol.md).
 *
 * No build step and no dependencies: load it with <script src="/tether.js"> and use window.Tether.
 *
 *   const client = new Tether.Client();              // ws(s)://<this host>/tether
 *   client.on("state", (s) => console.log(s));
 *   client.connect();
 *   const sub = await client.subscribe("chat.lobby", (data, msg) => show(data), { info: { nick } });
 *   await client.publish("chat.lobby", { text: "hi" }); // → { channel, offset }
 *
 *   // With a server that verifies tokens: a fresh one for every connection and before expiry.
 *   // A failure (network blip, 5xx) is retried; throw an error with `fatal: true` to give up.
 *   new Tether.Client({ token: async () => {
 *     const res = await fetch("/my/token");
 *     if (res.status === 401 || res.status === 403) throw Object.assign(new Error("signed out"), { fatal: true });
 *     if (!res.ok) throw new Error("token endpoint: HTTP " + res.status); // retried
 *     return (await res.json()).token;
 *   } });
 *
 * The connection is kept alive for you: an unexpected drop is followed by reconnection with
 * exponential backoff, and every subscription is renewed with the last offset it saw, so the
 * server hands back what was published meanwhile (each message once, in order).
 *
 * Options (second argument, or the first when the URL is left out):
 *   requestTimeout (10000 ms)   an unanswered request fails with `timeout`; also the wait for the
 *                               welcome and for the token function.
 *   minReconnectDelay (250 ms), maxReconnectDelay (10000 ms)   the backoff between attempts.
 *   protocols (["tether.json"]) the sub-protocols offered.
 *   token                       a connection token (JWT) for servers that verify them, sent as the
 *                               `token` query parameter (a browser cannot set headers on a
 *                               WebSocket; an existing `token` parameter in the URL is replaced,
 *                               and a `#fragment`, which a WebSocket URL cannot have, is dropped).
 *                               Either a string, or a function `({reason}) => token` that may be
 *                               async, `reason` being "connect", "reconnect" or "refresh"; any
 *                               other type is a TypeError (from the constructor or connect()):
 *     - a function is called before every connection attempt, so a reconnect never offers a
 *       stale token, and again before the token expires: the client sends
 *       `{"type":"refresh","token":...}` at 70-85 % (random, so a crowd of clients spreads out) of
 *       the time left, at least 1 s before expiry, and plans again from the ack. The time left is
 *       the welcome's (or ack's) `expiresIn`, measured from when it arrived on the page's
 *       monotonic clock, so a page whose wall clock is off still refreshes in time (`expiresAt`
 *       minus Date.now() only for servers that send no `expiresIn`). A failed refresh is retried
 *       while there is time; refreshes are never closer together than a tenth of the token's
 *       lifetime (1 s to 5 s; a third of the time left for a retry near the end), and one that is
 *       overdue (a background tab, a sleeping laptop) goes out as soon as the page is
 *       visible, focused or online again.
 *     - a string cannot be renewed: the server closes the connection with 4001 when it expires.
 *     - when the function throws or rejects, the attempt is retried like a failed connection (a
 *       refresh is retried while there is time): a network blip must not sign the user out.
 *       To stop for good, throw an error with `fatal: true` or return null (any non-string or
 *       empty answer): then the client stops (no reconnect) and says why in the `closed` event
 *       (`error`). A function that takes longer than requestTimeout is retried too. After a
 *       failed refresh, the next connection asks the function again.
 *     - client.options.token may also be set after construction (before connect()), e.g. once
 *       the page knows whether the server wants a token.
 *   maxHandshakeFailures (5 with a token, unlimited without)   consecutive attempts that fail
 *                               before the socket opens, or whose token function fails, after
 *                               which the client stops. With a token function it applies only
 *                               until the client has been open once since connect(): a server that refuses a token
 *                               answers the handshake with HTTP 401, which a browser reports only
 *                               as close code 1006, exactly like a server it cannot reach, so a
 *                               refused token is retried this many times (taking about 1-8 s with
 *                               the default backoff) and then given up; once connected, a lost
 *                               connection (e.g. a server restart) is retried without limit with a
 *                               token function. A string token keeps the limit (it cannot be
 *                               renewed: once it expired every attempt is refused).
 *                               Such `close` events have `opened: false`; `closed` has
 *                               `refused: true` when the last attempt was a refused handshake.
 *
 * Events (client.on(name, fn)):
 *   state     "connecting" | "open" | "reconnecting" | "closing" | "closed"
 *   open      the welcome; client.connectionId, client.user and client.expiresAt are set by then
 *             (and reset to null when the connection is lost)
 *   close     every lost connection: {code, reason, wasClean, opened, willReconnect}
 *   reconnect {attempt, delay} before each backoff wait
 *   closed    the client stopped for good and will not reconnect by itself (call connect() to
 *             start again): {code, reason, willReconnect: false, byClient, refused, error}.
 *             It stops after close(), after a close with code 4001 (token expired), 4003
 *             (forbidden, e.g. a banned user) or 1008 (policy violation), after
 *             maxHandshakeFailures, and when the token function fails for good (`fatal`). Also
 *             kept in client.closeInfo.
 *   refresh   {expiresAt, expiresIn} after the server acked a token refresh
 *   subscribed, join, leave, direct, error   see the methods below
 */
(function (root) {
  "use strict";

  const DEFAULTS = { requestTimeout: 10000, minReconnectDelay: 250, maxReconnectDelay: 10000, protocols: ["tether.json"], token: undefined, maxHandshakeFailures: undefined };
  /** Closes after which reconnecting cannot help: token expired, forbidden, policy violation. */
  const FINAL_CLOSE_CODES = new Set([4001, 4003, 1008]);
  const DEFAULT_MAX_HANDSHAKE_FAILURES_WITH_TOKEN = 5;
  /**
   * A refresh goes out at a random share between these of the time left (jitter, so clients that
   * connected together do not refresh together), and at least REFRESH_MARGIN ms before it ends.
   */
  const REFRESH_AT_MIN = 0.70;
  const REFRESH_AT_MAX = 0.85;
  const REFRESH_MARGIN = 1000;
  /**
   * Safety net against refresh loops (an ack with no time left, a server bug): two refreshes are at
   * least a tenth of the token's lifetime apart, clamped to these bounds; while time is left, a
   * retry after a failed refresh may come sooner (a third of what is left, at least
   * MIN_RETRY_GAP), so it still lands before the expiry.
   */
  const MIN_REFRESH_GAP = 1000;
  const MAX_REFRESH_GAP = 5000;
  const MIN_RETRY_GAP = 250;
  /** setTimeout fires at once for delays above 2^31-1 ms (~24.8 days); longer waits are chained. */
  const MAX_TIMER_DELAY = 2147483647;
  /**
   * A clock (ms) that never runs backwards and keeps counting while the machine sleeps: it advances
   * by the larger of what performance.now() and the wall clock advanced since it was last read.
   * performance.now() alone stops during a suspend on some systems (a refresh planned by it would
   * go out after the token expired); the wall clock alone can be set back or be off. A wall clock
   * set forward only makes a refresh come early, which is harmless.
   */
  const hasPerformance = !!(root.performance && typeof root.performance.now === "function");
  let lastPerf = hasPerformance ? root.performance.now() : 0;
  let lastWall = Date.now();
  let clock = 0;
  const monotonicNow = () => {
    const perf = hasPerformance ? root.performance.now() : 0;
    const wall = Date.now();
    clock += Math.max(perf - lastPerf, wall - lastWall, 0);
    lastPerf = perf;
    lastWall = wall;
    return clock;
  };

  /** TypeError unless `token` is a valid `token` option: absent, a string, or a function. */
  function checkTokenOption(token) {
    if (token == null || typeof token === "string" || typeof token === "function") return;
    throw new TypeError("Tether.Client: the token option must be a string or a function returning one, not " + (typeof token === "object" && token && typeof token.then === "function" ? "a Promise (pass the async function itself)" : typeof token));
  }

  /**
   * `url` with its `token` query parameter set to `token` (URL-encoded), replacing any already
   * there; the other parameters are kept byte for byte.
   */
  function withToken(url, token) {
    const hash = url.indexOf("#");
    if (hash >= 0) url = url.slice(0, hash); // a fragment after ?token=... would make the URL invalid
    const q = url.indexOf("?");
    const path = q >= 0 ? url.slice(0, q) : url;
    const keyOf = (pair) => { const key = pair.split("=")[0]; try { return decodeURIComponent(key); } catch (e) { return key; } };
    const params = q >= 0 ? url.slice(q + 1).split("&").filter((pair) => pair && keyOf(pair) !== "token") : [];
    params.push("token=" + encodeURIComponent(token));
    return path + "?" + params.join("&");
  }

  /** A failed request: `code` is the server's error code, or `timeout`, `disconnected`, `closed`. */
  class TetherError extends Error {
    constructor(code, message) {
      super(message || code);
      this.name = "TetherError";
      this.code = code;
    }
  }

  /**
   * One joined channel. It outlives connections: the client re-subscribes it after a reconnect.
   * `lastOffset` is the newest offset delivered to the handler (the recovery point), `epoch` the
   * history generation it belongs to, `recovered` what the last (re)subscribe ack said, and
   * `truncated` whether that ack's recovery was cut at the server's reply cap (then `recovered` is
   * false: the oldest missed messages were delivered, and the rest from `gapAfter` on can be
   * fetched with `client.history(channel, {since: gapAfter})`).
   */
  class Subscription {
    constructor(client, channel) {
      this.client = client;
      this.channel = channel;
      this.handler = null;
      this.info = undefined;
      this.lastOffset = null;
      this.epoch = null;
      this.recovered = null;
      this.truncated = false;
      this.gapAfter = null;
      /** Acked at least once: only such subscriptions are renewed by a reconnect. */
      this.active = false;
      /** Subscribe requests in flight; live messages wait in `buffer` meanwhile (see deliver). */
      this.inflight = 0;
      this.buffer = [];
      /** connectionId → info, from presence answers and join events, so `leave` can carry info. */
      this.members = new Map();
    }
    unsubscribe() { return this.client.unsubscribe(this.channel); }
  }

  class Client {
    /**
     * @param {string} [url] default: ws(s)://<location.host>/tether
     * @param {{requestTimeout?:number, minReconnectDelay?:number, maxReconnectDelay?:number, protocols?:string[],
     *   token?:string|function({reason:string}):(string|Promise<string>), maxHandshakeFailures?:number}} [options]
     *   (see the header comment)
     */
    constructor(url, options) {
      if (url && typeof url === "object") { options = url; url = undefined; }
      this.url = url || (root.location.protocol === "https:" ? "wss://" : "ws://") + root.location.host + "/tether";
      this.options = Object.assign({}, DEFAULTS, options);
      checkTokenOption(this.options.token);
      /** The current raw WebSocket (null between connections). Closing it counts as a drop. */
      this.socket = null;
      this.state = "closed";
      this.connectionId = null;
      this.welcome = null;
      /** From the welcome: the user the server verified the token for (null when anonymous). */
      this.user = null;
      /** When the connection's token expires (ms since epoch, from the welcome or the last refresh ack), or null. */
      this.expiresAt = null;
      /** Why the client stopped for good (the `closed` event's payload); null while it runs. */
      this.closeInfo = null;
      this.subscriptions = new Map();
      this._listeners = new Map();
      this._pending = new Map(); // id → {build, resolve, reject, timer, sent}; Map keeps id order
      this._nextId = 1;
      this._attempt = 0;
      this._timer = null; // reconnect delay or welcome deadline
      this._stopped = false; // close() was called or the client gave up: no reconnect, new requests fail at once
      this._stoppedByClient = false;
      this._openSeq = 0; // bumped by every attempt and by close(): a late token answer for an old attempt is dropped
      this._connectedOnce = false;
      this._openedSinceConnect = false; // maxHandshakeFailures applies only until the first open
      this._handshakeFailures = 0; // consecutive attempts that failed before the socket opened
      this._refreshTimer = null;
      /** Refresh plan on the monotonic clock: when the token runs out, when to refresh, when the last one went out. */
      this._expiresBy = null;
      this._lifetime = null;
      this._refreshDue = null;
      this._lastRefreshAt = -Infinity;
      this._refreshing = false;
      /** The token function failed for good during a refresh: no more refreshes on this connection. */
      this._tokenFailure = null;
      if (root.addEventListener) {
        // Coming back online is the best moment to retry; skip the rest of the backoff.
        root.addEventListener("online", () => { if (this.state === "reconnecting") this._open(); this._refreshIfOverdue(); });
        // Timers of a background tab or a sleeping machine run late: catch up when the page is back.
        root.addEventListener("focus", () => this._refreshIfOverdue());
      }
      if (root.document && root.document.addEventListener) {
        root.document.addEventListener("visibilitychange", () => { if (root.document.visibilityState !== "hidden") this._refreshIfOverdue(); });
      }
    }

    on(name, fn) { if (!this._listeners.has(name)) this._listeners.set(name, new Set()); this._listeners.get(name).add(fn); return this; }
    off(name, fn) { const set = this._listeners.get(name); if (set) set.delete(fn); return this; }

    /** Listener errors are rethrown asynchronously: visible in the console, harmless to the client. */
    _emit(name, arg) {
      for (const fn of Array.from(this._listeners.get(name) || [])) {
        try { fn(arg); } catch (e) { setTimeout(() => { throw e; }); }
      }
    }

    _setState(state) {
      if (this.state === state) return;
      this.state = state;
      this._emit("state", state);
    }

    /** Opens the connection (no-op while one is open or being opened). */
    connect() {
      checkTokenOption(this.options.token);
      this._stopped = false;
      this._stoppedByClient = false;
      this._tokenFailure = null;
      this.closeInfo = null;
      if (this.socket || this.state === "connecting") return this;
      if (this.state === "closed") this._openedSinceConnect = false; // a fresh start gets the cap again
      this._handshakeFailures = 0;
      this._open();
      return this;
    }

    /** Closes for good: no reconnect; requests still waiting are rejected with code `closed`. */
    close(code = 1000, reason = "") {
      const wasStopped = this._stopped;
      this._stopped = true;
      this._stoppedByClient = true;
      this._openSeq++;
      clearTimeout(this._timer);
      this._clearRefresh();
      this._failPending(new TetherError("closed", "client closed"), () => true);
      if (this.socket) { this._setState("closing"); this.socket.close(code, reason); return; }
      this._setState("closed");
      if (!wasStopped) this._finish({ code, reason, byClient: true });
    }

    /** Whether connections carry a token (a string or a function giving one). */
    _hasToken() { return this.options.token != null && this.options.token !== ""; }

    _maxHandshakeFailures() {
      const max = this.options.maxHandshakeFailures;
      if (typeof max === "number" && max > 0) return max;
      return this._hasToken() ? DEFAULT_MAX_HANDSHAKE_FAILURES_WITH_TOKEN : Infinity;
    }

    /**
     * Calls the token function (bounded by requestTimeout). Resolves with the token string, or
     * rejects with a TetherError: `token` (the function said stop: an error with `fatal: true`, or
     * no token string), or `token_unavailable` / `token_timeout` (it threw or rejected otherwise, or
     * gave no answer in time: `retryable`, since that is what a fetch() in a network blip does).
     */
    _fetchToken(reason) {
      const fn = this.options.token;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const err = new TetherError("token_timeout", "the token function did not answer within " + this.options.requestTimeout + " ms");
          err.retryable = true;
          reject(err);
        }, this.options.requestTimeout);
        let answer;
        try { answer = Promise.resolve(fn({ reason })); } catch (e) { answer = Promise.reject(e); }
        answer.then((token) => {
          clearTimeout(timer);
          if (typeof token === "string" && token !== "") resolve(token);
          else reject(new TetherError("token", "the token function returned no token"));
        }, (e) => {
          clearTimeout(timer);
          const fatal = !!(e && e.fatal === true);
          const err = new TetherError(fatal ? "token" : "token_unavailable", "could not get a token: " + (e && e.message ? e.message : String(e)));
          err.cause = e;
          err.retryable = !fatal;
          reject(err);
        });
      });
    }

    _open() {
      clearTimeout(this._timer);
      this._setState("connecting");
      const seq = ++this._openSeq;
      const token = this.options.token;
      try { checkTokenOption(token); } catch (e) { this._emit("error", e); this._stop({ code: null, reason: e.message, error: e }); return; }
      if (typeof token !== "function") { this._openSocket(this._hasToken() ? token : null); return; }
      this._fetchToken(this._connectedOnce ? "reconnect" : "connect").then((fresh) => {
        if (seq === this._openSeq && !this._stopped) this._openSocket(fresh);
      }, (err) => {
        if (seq !== this._openSeq || this._stopped) return;
        this._emit("error", err);
        if (err.retryable) this._dropped(null, { code: 1006, reason: err.message, wasClean: false }, false, err);
        else this._stop({ code: null, reason: err.message, error: err });
      });
    }

    _openSocket(token) {
      let ws;
      const url = token == null ? this.url : withToken(this.url, token);
      try { ws = new WebSocket(url, this.options.protocols); } catch (e) {
        // The browser's message quotes the URL, token included: say it with this.url instead.
        const err = new TetherError("socket", "cannot open a WebSocket to " + this.url + " (" + (e && e.name ? e.name : "error") + ")");
        this._emit("error", err);
        this._dropped(null, { code: 1006, reason: err.message, wasClean: false }, false);
        return;
      }
      ws.binaryType = "arraybuffer";
      this.socket = ws;
      let opened = false;
      // A socket that never gets to the welcome (half-open network, stuck proxy) counts as a drop.
      this._timer = setTimeout(() => { if (this.socket === ws && this.state !== "open") ws.close(); }, this.options.requestTimeout);
      ws.onopen = () => { opened = true; };
      ws.onmessage = (ev) => { if (this.socket === ws) this._onFrame(ev.data); };
      ws.onerror = () => { if (this.socket === ws) this._emit("error", new TetherError("socket", "WebSocket error (details arrive with the close)")); };
      ws.onclose = (ev) => { if (this.socket === ws) this._dropped(ws, ev, opened); };
    }

    /** Stops for good without a socket to close (the token function failed): see `closed`. */
    _stop(info) {
      this._stopped = true;
      this._openSeq++;
      clearTimeout(this._timer);
      this._clearRefresh();
      this._failPending(new TetherError("closed", info.reason || "client stopped"), () => true);
      this._setState("closed");
      this._finish(info);
    }

    _finish(info) {
      this.closeInfo = Object.assign({ code: null, reason: "", willReconnect: false, byClient: false, refused: false, error: null }, info);
      this._emit("closed", this.closeInfo);
    }

    /** A connection (or an attempt) ended; `tokenError`: the attempt's token function failed (retryable). */
    _dropped(ws, ev, opened, tokenError) {
      clearTimeout(this._timer);
      this._clearRefresh();
      this.socket = null;
      this.connectionId = null;
      this.user = null;
      this.expiresAt = null;
      this._expiresBy = null;
      // A refresh that failed belonged to the lost connection; the reconnect's own token call decides.
      const refreshFailure = this._tokenFailure;
      this._tokenFailure = null;
      // Only requests already on the wire are lost; queued ones wait for the next connection.
      this._failPending(new TetherError("disconnected", "connection lost"), (req) => req.sent);
      const code = ev.code;
      const reason = ev.reason || "";
      // Why reconnecting cannot help, when it cannot: then the client stops instead.
      let final = null;
      if (this._stopped) final = { code, reason, byClient: this._stoppedByClient };
      else if (FINAL_CLOSE_CODES.has(code)) final = refreshFailure ? { code, reason, error: refreshFailure } : { code, reason };
      else if (!opened && (!this._openedSinceConnect || typeof this.options.token === "string") && ++this._handshakeFailures >= this._maxHandshakeFailures()) {
        // Only before the first open, for a token function: afterwards the token and the server
        // have been fine, and a run of failures is an outage (a restart), which is waited out. A
        // string token cannot be renewed: once it expired every attempt is refused, so the cap
        // stays.
        final = tokenError
          ? { code: null, reason: tokenError.message, error: tokenError }
          : { code, reason: reason || "the server did not accept the connection " + this._handshakeFailures + " times in a row (refused, or unreachable)", refused: this._hasToken() };
      }
      if (opened) this._handshakeFailures = 0;
      this._emit("close", { code, reason, wasClean: ev.wasClean, opened: !!opened, willReconnect: !final });
      if (final) {
        if (!this._stopped) this._stopped = true;
        this._failPending(new TetherError("closed", final.reason || "connection closed (" + code + ")"), () => true);
        this._setState("closed");
        this._finish(final);
        return;
      }
      // Exponential backoff with full jitter above a floor: a crowd of clients dropped by one
      // server restart spreads out instead of reconnecting in lockstep.
      const { minReconnectDelay: min, maxReconnectDelay: max } = this.options;
      const attempt = ++this._attempt;
      const ceiling = Math.min(Math.max(max, min), min * Math.pow(2, attempt));
      const delay = Math.round(min + Math.random() * (ceiling - min));
      this._setState("reconnecting");
      this._emit("reconnect", { attempt, delay });
      this._timer = setTimeout(() => this._open(), delay);
    }

    _failPending(error, which) {
      for (const [id, req] of Array.from(this._pending)) if (which(req)) this._settle(id, error);
    }

    _onFrame(text) {
      if (typeof text !== "string") return this._emit("error", new TetherError("bad_frame", "binary frame from the server"));
      let msg;
      try { msg = JSON.parse(text); } catch (e) { return this._emit("error", new TetherError("bad_frame", "invalid JSON from the server")); }
      const sub = msg && typeof msg.channel === "string" ? this.subscriptions.get(msg.channel) : undefined;
      switch (msg && msg.type) {
        case "welcome": return this._onWelcome(msg);
        case "ack": return this._settle(msg.id, null, msg);
        case "error": {
          const err = new TetherError(msg.code, msg.message);
          if (this._pending.has(msg.id)) return this._settle(msg.id, err);
          return this._emit("error", err);
        }
        case "message":
          if (!sub) return;
          // Until the subscribe ack has told us where recovery ends, live messages wait.
          if (sub.inflight > 0) sub.buffer.push(msg); else this._deliver(sub, msg);
          return;
        case "join":
          if (sub) sub.members.set(msg.connectionId, msg.info);
          return this._emit("join", { channel: msg.channel, connectionId: msg.connectionId, info: msg.info });
        case "leave": {
          const info = msg.info !== undefined ? msg.info : sub && sub.members.get(msg.connectionId);
          if (sub) sub.members.delete(msg.connectionId);
          return this._emit("leave", { channel: msg.channel, connectionId: msg.connectionId, info });
        }
        case "direct": return this._emit("direct", { from: msg.from, data: msg.data });
        default: return; // unknown types are ignored so newer servers can add some
      }
    }

    _onWelcome(msg) {
      clearTimeout(this._timer);
      this.welcome = msg;
      this.connectionId = msg.connectionId;
      this.user = typeof msg.user === "string" ? msg.user : null;
      this.expiresAt = typeof msg.expiresAt === "number" ? msg.expiresAt : null;
      this._attempt = 0;
      this._handshakeFailures = 0;
      this._connectedOnce = true;
      this._openedSinceConnect = true;
      this._lastRefreshAt = -Infinity;
      this._refreshing = false;
      this._noteExpiry(msg);
      this._scheduleRefresh();
      this._setState("open");
      // Renew subscriptions first, so queued publishes come back to us as live messages.
      for (const sub of this.subscriptions.values()) {
        if (!sub.active) continue; // its first subscribe is still queued and goes out below
        this._subscribe(sub).catch((err) => {
          if (err.code === "disconnected") return; // renewed again on the next connection
          if (err.code !== "timeout" && this.subscriptions.get(sub.channel) === sub) this.subscriptions.delete(sub.channel);
          err.channel = sub.channel;
          this._emit("error", err);
        });
      }
      for (const req of Array.from(this._pending.values())) if (!req.sent) this._transmit(req);
      this._emit("open", msg);
    }

    _clearRefresh() {
      clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
      this._refreshDue = null;
    }

    /**
     * Takes the expiry from a welcome or a refresh ack: `expiresAt` as the server says it, and the
     * deadline on our monotonic clock from `expiresIn` (the server's own count of what is left),
     * so a wrong wall clock here cannot make us refresh too early, too late or in a loop.
     */
    _noteExpiry(msg) {
      this.expiresAt = typeof msg.expiresAt === "number" ? msg.expiresAt : null;
      let left = null;
      if (typeof msg.expiresIn === "number" && isFinite(msg.expiresIn)) left = msg.expiresIn;
      else if (this.expiresAt !== null) left = this.expiresAt - Date.now(); // an older server: trust our clock
      this._lifetime = left;
      this._expiresBy = left === null ? null : monotonicNow() + left;
    }

    /**
     * Plans the next token refresh from the deadline. Only a token function can give a new token;
     * with a string (or no expiry) nothing is planned and the server's 4001 ends the connection.
     */
    _scheduleRefresh() {
      this._clearRefresh();
      if (typeof this.options.token !== "function" || this._expiresBy === null || this._tokenFailure || !this.socket) return;
      const now = monotonicNow();
      const left = this._expiresBy - now;
      const share = REFRESH_AT_MIN + Math.random() * (REFRESH_AT_MAX - REFRESH_AT_MIN);
      let gap = Math.min(MAX_REFRESH_GAP, Math.max(MIN_REFRESH_GAP, (this._lifetime || 0) / 10));
      if (left > 0) gap = Math.min(gap, Math.max(MIN_RETRY_GAP, left / 3));
      this._refreshDue = Math.max(now + Math.max(0, Math.min(left * share, left - REFRESH_MARGIN)), this._lastRefreshAt + gap);
      this._armRefresh(this.socket);
    }

    /** Waits for _refreshDue in steps setTimeout can take; a timer that fires early re-arms. */
    _armRefresh(ws) {
      clearTimeout(this._refreshTimer);
      const wait = Math.min(MAX_TIMER_DELAY, Math.max(0, this._refreshDue - monotonicNow()));
      this._refreshTimer = setTimeout(() => {
        this._refreshTimer = null;
        if (this.socket !== ws || this._refreshDue === null) return;
        if (monotonicNow() < this._refreshDue) this._armRefresh(ws);
        else this._refresh(ws);
      }, wait);
    }

    /** A refresh whose time has come while timers were held back (background tab, sleep) goes now. */
    _refreshIfOverdue() {
      if (this.state !== "open" || this._refreshing || this._refreshDue === null || monotonicNow() < this._refreshDue) return;
      this._clearRefresh();
      this._refresh(this.socket);
    }

    /** Gets a fresh token and sends it; the ack's `expiresIn` plans the next refresh. */
    _refresh(ws) {
      this._refreshDue = null;
      this._refreshing = true;
      this._lastRefreshAt = monotonicNow();
      // Ours to report only while this connection is current and nobody closed the client.
      const current = () => this.socket === ws && !this._stopped;
      const failed = (err) => {
        this._refreshing = false;
        if (!current() || err.code === "closed") return false;
        err.refresh = true;
        this._emit("error", err);
        return true;
      };
      this._fetchToken("refresh").then((token) => {
        if (!current() || this.state !== "open") { this._refreshing = false; return; } // a newer connection got its own token
        return this._request(() => ({ type: "refresh", token })).then((ack) => {
          this._refreshing = false;
          if (!current()) return;
          this._noteExpiry(ack);
          this._emit("refresh", { expiresAt: this.expiresAt, expiresIn: this._lifetime });
          this._scheduleRefresh();
        }, (err) => {
          // No answer: try again while there is time. A refusal (invalid_token, forbidden) will
          // not change by asking again; the server closes with 4001 at expiry.
          if (failed(err) && err.code === "timeout") this._scheduleRefresh();
        });
      }, (err) => {
        if (!failed(err)) return;
        if (err.retryable) { this._scheduleRefresh(); return; }
        // The function said stop: no more refreshes; this connection lives until it expires.
        this._tokenFailure = err;
      });
    }

    /**
     * Sends a request and resolves with its ack (rejects with a TetherError). `build` makes the
     * frame when it is actually sent, so a request queued across a reconnect carries fresh offsets.
     */
    _request(build) {
      if (this._stopped) return Promise.reject(new TetherError("closed", "client closed"));
      return new Promise((resolve, reject) => {
        const id = this._nextId++;
        const req = { id, build, resolve, reject, sent: false };
        req.timer = setTimeout(() => this._settle(id, new TetherError("timeout", "no answer within " + this.options.requestTimeout + " ms")), this.options.requestTimeout);
        this._pending.set(id, req);
        if (this.state === "open") this._transmit(req);
      });
    }

    _transmit(req) {
      try {
        this.socket.send(JSON.stringify(Object.assign(req.build(), { id: req.id })));
        req.sent = true;
      } catch (e) { this._settle(req.id, new TetherError("disconnected", e.message)); }
    }

    _settle(id, error, ack) {
      const req = this._pending.get(id);
      if (!req) return; // late answer to a request that timed out
      this._pending.delete(id);
      clearTimeout(req.timer);
      if (error) req.reject(error); else req.resolve(ack);
    }

    /**
     * Joins `channel`; `handler(data, message)` gets every message once, in offset order, starting
     * after `since` when given (those are recovered from history). Subscribing again to a joined
     * channel replaces the handler and updates `info`. Resolves with the Subscription.
     * `since` needs the `epoch` it belongs to (both come from a history answer or a subscription):
     * an offset alone could be from another life of the channel.
     * @param {{since?:number, epoch?:string, info?:any}} [opts]
     */
    subscribe(channel, handler, opts = {}) {
      if (opts.since != null && opts.epoch == null) {
        return Promise.reject(new TetherError("bad_request", "subscribe: since needs the epoch it belongs to"));
      }
      let sub = this.subscriptions.get(channel);
      if (!sub) {
        sub = new Subscription(this, channel);
        if (opts.since != null) sub.lastOffset = opts.since;
        if (opts.epoch != null) sub.epoch = opts.epoch;
        this.subscriptions.set(channel, sub);
      }
      sub.handler = handler;
      if (opts.info !== undefined) sub.info = opts.info;
      return this._subscribe(sub).then(() => sub, (err) => {
        if (!sub.active && this.subscriptions.get(channel) === sub) this.subscriptions.delete(channel);
        throw err;
      });
    }

    _subscribe(sub) {
      sub.inflight++;
      const done = () => { sub.inflight--; const held = sub.buffer.splice(0); held.forEach((m) => this._deliver(sub, m)); };
      return this._request(() => {
        const frame = { type: "subscribe", channel: sub.channel };
        // The server refuses since without epoch; an offset means nothing outside its epoch.
        if (sub.lastOffset != null && sub.epoch != null) {
          frame.since = sub.lastOffset;
          frame.epoch = sub.epoch;
        }
        if (sub.info !== undefined) frame.info = sub.info;
        return frame;
      }).then((ack) => {
        // A different epoch means the channel's history started over (server restart): our old
        // offsets say nothing about the new ones, so nothing may be skipped as "already seen".
        if (sub.epoch != null && ack.epoch != null && ack.epoch !== sub.epoch) sub.lastOffset = null;
        const renewed = sub.active;
        sub.epoch = ack.epoch != null ? ack.epoch : sub.epoch;
        sub.recovered = ack.recovered != null ? ack.recovered : null;
        sub.truncated = ack.truncated === true;
        sub.active = true;
        for (const p of ack.publications || []) this._deliver(sub, Object.assign({ type: "message", channel: sub.channel, recovered: true }, p));
        // Cut at the reply cap: what was delivered is contiguous from `since`; the rest is not.
        sub.gapAfter = sub.truncated ? sub.lastOffset : null;
        // Whatever is not recovered by now is gone; live messages continue after the ack's offset.
        if (typeof ack.offset === "number" && (sub.lastOffset == null || ack.offset > sub.lastOffset)) sub.lastOffset = ack.offset;
        done();
        this._emit("subscribed", { channel: sub.channel, offset: ack.offset, epoch: sub.epoch, recovered: sub.recovered, truncated: sub.truncated, gapAfter: sub.gapAfter, renewed, subscription: sub });
        return ack;
      }, (err) => { done(); throw err; });
    }

    /** Hands a message to the handler unless its offset was already delivered. */
    _deliver(sub, msg) {
      if (typeof msg.offset === "number") {
        if (sub.lastOffset != null && msg.offset <= sub.lastOffset) return;
        sub.lastOffset = msg.offset;
      }
      if (!sub.handler) return;
      try { sub.handler(msg.data, msg); } catch (e) { setTimeout(() => { throw e; }); }
    }

    /** Leaves `channel` (forgotten at once locally; `not_subscribed` from the server is fine). */
    unsubscribe(channel) {
      this.subscriptions.delete(channel);
      return this._request(() => ({ type: "unsubscribe", channel })).then(() => undefined, (err) => {
        if (err.code !== "not_subscribed") throw err;
      });
    }

    /** Publishes `data` (any JSON) to `channel`; resolves with `{channel, offset}`. */
    publish(channel, data) {
      return this._request(() => ({ type: "publish", channel, data })).then((ack) => ({ channel: ack.channel, offset: ack.offset }));
    }

    /** Resolves with the members of a joined channel: `[{connectionId, info}]`. */
    presence(channel) {
      return this._request(() => ({ type: "presence", channel })).then((ack) => {
        const members = ack.members || [];
        const sub = this.subscriptions.get(channel);
        if (sub) sub.members = new Map(members.map((m) => [m.connectionId, m.info]));
        return members;
      });
    }

    /**
     * Resolves with `{channel, offset, epoch, publications, truncated}` (oldest first); no
     * subscription needed. `truncated`: the server's reply cap left some out (with `since`, the
     * newer ones: ask again from the last offset returned; without, the older ones).
     */
    history(channel, opts = {}) {
      return this._request(() => {
        const frame = { type: "history", channel };
        if (opts.since != null) frame.since = opts.since;
        if (opts.limit != null) frame.limit = opts.limit;
        return frame;
      }).then((ack) => ({ channel: ack.channel, offset: ack.offset, epoch: ack.epoch, publications: ack.publications || [], truncated: ack.truncated === true }));
    }

    /** Sends `data` straight to one connection (it gets a `direct` event). */
    send(to, data) {
      return this._request(() => ({ type: "send", to, data })).then(() => undefined);
    }
  }

  const Tether = { Client, Subscription, TetherError, version: "0.1.0" };
  root.Tether = Tether;
  if (typeof module === "object" && module.exports) module.exports = Tether;
})(typeof window !== "undefined" ? window : globalThis);
