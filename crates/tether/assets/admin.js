// The admin dashboard (served at /admin/admin.js; docs/admin.md). Live counters and the chart
// come over the dashboard's own WebSocket (/admin/ws: the history of samples on open, then one a
// second); the tables ask POST /admin/api/* for one page at a time, with the session's CSRF token
// in X-CSRF-Token. No library, no inline script (the page's CSP forbids both).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const RING = 300;
  const samples = [];

  // ----- helpers -----
  const fmtInt = (n) => Math.round(n).toLocaleString("en-US");
  const fmtRate = (n) => (n >= 100 ? fmtInt(n) : n.toFixed(n >= 10 ? 1 : 2).replace(/\.?0+$/, "") || "0");
  const fmtBytes = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
  };
  const fmtUptime = (secs) => {
    const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60), s = secs % 60;
    return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m ${s}s` : m ? `${m}m ${s}s` : `${s}s`;
  };
  const fmtSince = (ms) => {
    const date = new Date(ms);
    const sameDay = new Date().toDateString() === date.toDateString();
    return sameDay ? date.toLocaleTimeString("en-GB") : date.toLocaleString("en-GB");
  };
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  };
  const showError = (message) => { $("error").textContent = message || ""; };

  async function call(name, body = {}) {
    const response = await fetch(`/admin/api/${name}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (response.status === 401) {
      location.assign("/admin");
      throw new Error("signed out");
    }
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    // A stale token (signed in again in another tab: a new session, a new token): reload the
    // page, which carries the current one.
    if (response.status === 403 && /X-CSRF-Token/.test(answer.error || "")) {
      location.assign("/admin");
      throw new Error("reloading");
    }
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    return answer;
  }

  // ----- live counters and chart -----
  function showSample(s) {
    $("c-connections").textContent = fmtInt(s.connections);
    $("c-users").textContent = fmtInt(s.users);
    $("c-channels").textContent = fmtInt(s.channels);
    $("c-msg-in").textContent = fmtRate(s.messages_in_per_sec);
    $("c-msg-out").textContent = fmtRate(s.messages_out_per_sec);
    $("c-bytes-in").textContent = `${fmtBytes(s.bytes_in_per_sec)}/s`;
    $("c-bytes-out").textContent = `${fmtBytes(s.bytes_out_per_sec)}/s`;
    $("c-slow").textContent = fmtInt(s.slow_consumer_closes);
    $("c-uptime").textContent = fmtUptime(s.uptime_secs);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function drawChart(svg, series) {
    const width = 300, height = 100, top = 4;
    const max = Math.max(1, ...series.flatMap((line) => line.values));
    const nodes = [];
    for (const line of series) {
      const n = line.values.length;
      const points = line.values.map((v, i) => {
        const x = n > 1 ? (width * (RING - n + i)) / (RING - 1) : width;
        const y = height - 2 - ((height - top - 2) * v) / max;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      const path = document.createElementNS(SVG, "polyline");
      path.setAttribute("class", `line ${line.kind}`);
      path.setAttribute("points", points.join(" "));
      nodes.push(path);
    }
    svg.replaceChildren(...nodes);
    // The scale in the caption (text inside the stretched SVG would be stretched too).
    svg.closest("figure").querySelector(".max").textContent = `(top: ${fmtRate(max)})`;
  }

  function drawCharts() {
    drawChart($("chart-connections"), [{ kind: "in", values: samples.map((s) => s.connections) }]);
    drawChart($("chart-messages"), [
      { kind: "in", values: samples.map((s) => s.messages_in_per_sec) },
      { kind: "out", values: samples.map((s) => s.messages_out_per_sec) },
    ]);
  }

  let socket;
  let retry = 500;
  // Screen readers hear only the changes between connected and closed (not every retry, and
  // not the counters, which change every second).
  let announced = "";
  const TOO_MANY = "Too many dashboards are open (the server takes 32): live updates resume when one closes.";
  function setStatus(state) {
    $("status").dataset.state = state;
    $("status").textContent = state;
    if (state !== "connecting" && state !== announced) {
      announced = state;
      $("announce").textContent = state === "open" ? "Live updates connected." : "Live updates disconnected.";
    }
  }
  function connect() {
    setStatus("connecting");
    let opened = false;
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/admin/ws`);
    socket.onopen = () => {
      opened = true;
      retry = 500;
      setStatus("open");
      if ($("error").textContent === TOO_MANY) showError("");
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "history") {
        samples.splice(0, samples.length, ...message.samples.slice(-RING));
      } else if (message.type === "sample") {
        samples.push(message.sample);
        if (samples.length > RING) samples.shift();
      }
      if (samples.length) showSample(samples[samples.length - 1]);
      drawCharts();
    };
    socket.onclose = (event) => {
      setStatus("closed");
      if (event.code === 4001) { location.assign("/admin"); return; }
      if (event.code === 1013) {
        showError(TOO_MANY);
        retry = 30_000;
      } else if (!opened) {
        // A refused upgrade reads as 1006 like a network error: ask the API, whose 401 sends an
        // expired session to the login form.
        call("session").catch(() => {});
      }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, event.code === 1013 ? 30_000 : 10_000);
    };
  }

  // ----- tables -----
  function pagedTable(name, render) {
    const state = { search: "", page: 1, pages: 1 };
    const body = $(name).tBodies[0];
    async function load() {
      try {
        const answer = await call(name, { search: state.search, page: state.page });
        state.page = answer.page;
        state.pages = answer.pages;
        body.replaceChildren(...answer.rows.map(render));
        const what = name === "connections" ? "connection" : "channel";
        const plural = answer.total === 1 ? what : `${what}s`;
        $(`${name}-summary`).textContent = state.search
          ? `${fmtInt(answer.total)} ${plural} match “${state.search}”`
          : `${fmtInt(answer.total)} ${plural}`;
        $(`${name}-page`).textContent = `Page ${answer.page} of ${answer.pages}`;
        $(`${name}-prev`).disabled = answer.page <= 1;
        $(`${name}-next`).disabled = answer.page >= answer.pages;
        showError("");
      } catch (error) {
        showError(`${name}: ${error.message}`);
      }
    }
    $(`${name}-search`).addEventListener("submit", (event) => {
      event.preventDefault();
      state.search = $(`${name}-q`).value.trim();
      state.page = 1;
      load();
    });
    $(`${name}-refresh`).addEventListener("click", load);
    $(`${name}-prev`).addEventListener("click", () => { state.page = Math.max(1, state.page - 1); load(); });
    $(`${name}-next`).addEventListener("click", () => { state.page += 1; load(); });
    return load;
  }

  const loadConnections = pagedTable("connections", (row) => {
    const button = el("button", { type: "button", class: "danger", textContent: "Disconnect", "aria-label": `Disconnect ${row.id}` });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await call("disconnect", { id: row.id });
        $("connections-summary").textContent = `Disconnected ${row.id} (close code 4000).`;
        setTimeout(loadConnections, 300);
      } catch (error) {
        showError(`disconnect: ${error.message}`);
        button.disabled = false;
      }
    });
    return el("tr", { "data-id": row.id },
      el("td", { class: "mono", textContent: row.id }),
      el("td", { textContent: row.user ?? "–" }),
      el("td", { class: "mono", textContent: row.route }),
      el("td", { textContent: row.protocol ?? "–" }),
      el("td", { class: "mono", textContent: row.remote }),
      el("td", { textContent: fmtSince(row.connected_at) }),
      el("td", { class: "num", textContent: fmtInt(row.messages_in) }),
      el("td", { class: "num", textContent: fmtInt(row.messages_out) }),
      el("td", { class: "num", textContent: fmtBytes(row.queued_bytes) }),
      el("td", {}, button));
  });

  async function peek(channel) {
    try {
      const answer = await call("history", { channel });
      $("peek-title").textContent = `History of ${channel} (newest ${answer.entries.length}, last offset ${answer.offset})`;
      const items = answer.entries.map((entry) =>
        el("li", {},
          el("span", { class: "muted", textContent: `offset ${entry.offset}${entry.from ? ` from ${entry.from}` : " from the server"}` }),
          el("pre", { textContent: entry.data + (entry.truncated ? " …" : "") })));
      $("peek-list").replaceChildren(...(items.length ? items : [el("li", { textContent: "No history kept." })]));
      $("peek").hidden = false;
    } catch (error) {
      showError(`history: ${error.message}`);
    }
  }

  const loadChannels = pagedTable("channels", (row) => {
    const show = el("button", { type: "button", class: "secondary", textContent: "History", "aria-label": `History of ${row.name}` });
    show.addEventListener("click", () => peek(row.name));
    const pick = el("button", { type: "button", class: "secondary", textContent: "Publish…", "aria-label": `Publish to ${row.name}` });
    pick.addEventListener("click", () => { $("publish-channel").value = row.name; $("publish-data").focus(); });
    return el("tr", { "data-name": row.name },
      el("td", { class: "mono", textContent: row.name }),
      el("td", { class: "num", textContent: fmtInt(row.subscribers) }),
      el("td", { class: "num", textContent: fmtInt(row.last_offset) }),
      el("td", { class: "num", textContent: fmtInt(row.history_size) }),
      el("td", {}, el("div", { class: "actions" }, show, pick)));
  });

  $("publish").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("publish-result");
    const channel = $("publish-channel").value.trim();
    try {
      const answer = await call("publish", { channel, data: $("publish-data").value, text: $("publish-text").checked });
      result.className = "";
      result.textContent = `Published to ${channel} at offset ${answer.offset}.`;
      loadChannels();
    } catch (error) {
      result.className = "bad";
      result.textContent = `Not published: ${error.message}`;
    }
  });

  $("logout").addEventListener("click", async () => {
    try { await call("logout"); } catch (_) { /* signed out either way */ }
    location.assign("/admin");
  });

  connect();
  loadConnections();
  loadChannels();
})();
