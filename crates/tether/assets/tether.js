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
 * The connection is kept alive for you: an unexpected drop is followed by reconnection with
 * exponential backoff, and every subscription is renewed with the last offset it saw, so the
 * server hands back what was published meanwhile (each message once, in order).
 */
(function (root) {
  "use strict";

  const DEFAULTS = { requestTimeout: 10000, minReconnectDelay: 250, maxReconnectDelay: 10000, protocols: ["tether.json"] };

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
     * @param {{requestTimeout?:number, minReconnectDelay?:number, maxReconnectDelay?:number, protocols?:string[]}} [options]
     */
    constructor(url, options) {
      if (url && typeof url === "object") { options = url; url = undefined; }
      this.url = url || (root.location.protocol === "https:" ? "wss://" : "ws://") + root.location.host + "/tether";
      this.options = Object.assign({}, DEFAULTS, options);
      /** The current raw WebSocket (null between connections). Closing it counts as a drop. */
      this.socket = null;
      this.state = "closed";
      this.connectionId = null;
      this.welcome = null;
      this.subscriptions = new Map();
      this._listeners = new Map();
      this._pending = new Map(); // id → {build, resolve, reject, timer, sent}; Map keeps id order
      this._nextId = 1;
      this._attempt = 0;
      this._timer = null; // reconnect delay or welcome deadline
      this._stopped = false; // close() was called: no reconnect, new requests fail at once
      if (root.addEventListener) {
        // Coming back online is the best moment to retry; skip the rest of the backoff.
        root.addEventListener("online", () => { if (this.state === "reconnecting") this._open(); });
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
      this._stopped = false;
      if (this.socket || this.state === "connecting") return this;
      this._open();
      return this;
    }

    /** Closes for good: no reconnect; requests still waiting are rejected with code `closed`. */
    close(code = 1000, reason = "") {
      this._stopped = true;
      clearTimeout(this._timer);
      this._failPending(new TetherError("closed", "client closed"), () => true);
      if (this.socket) { this._setState("closing"); this.socket.close(code, reason); } else this._setState("closed");
    }

    _open() {
      clearTimeout(this._timer);
      this._setState("connecting");
      let ws;
      try { ws = new WebSocket(this.url, this.options.protocols); } catch (e) { this._emit("error", e); this._dropped(null, { code: 1006, reason: e.message, wasClean: false }); return; }
      ws.binaryType = "arraybuffer";
      this.socket = ws;
      // A socket that never gets to the welcome (half-open network, stuck proxy) counts as a drop.
      this._timer = setTimeout(() => { if (this.socket === ws && this.state !== "open") ws.close(); }, this.options.requestTimeout);
      ws.onmessage = (ev) => { if (this.socket === ws) this._onFrame(ev.data); };
      ws.onerror = () => { if (this.socket === ws) this._emit("error", new TetherError("socket", "WebSocket error (details arrive with the close)")); };
      ws.onclose = (ev) => { if (this.socket === ws) this._dropped(ws, ev); };
    }

    _dropped(ws, ev) {
      clearTimeout(this._timer);
      this.socket = null;
      this.connectionId = null;
      // Only requests already on the wire are lost; queued ones wait for the next connection.
      this._failPending(new TetherError("disconnected", "connection lost"), (req) => req.sent);
      this._emit("close", { code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
      if (this._stopped) { this._setState("closed"); return; }
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
      this._attempt = 0;
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
