// sockshift console: renders the lab from /api/events and starts hand-offs.
// Everything is drawn with textContent, never innerHTML: names and addresses
// come from the network.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "sockshift-token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let busy = false;

  // A token may come in the URL fragment (never sent to the server): #token=...
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const int = (n) => Number(n || 0).toLocaleString("en-US");
  function us(n) {
    n = Number(n || 0);
    if (n >= 10000) return (n / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " ms";
    return int(n) + " µs";
  }
  const server = (name) => (name ? "Server " + String(name).toUpperCase() : "nobody");

  function otherNode(st) {
    if (!st || !st.nodes) return "";
    const other = st.nodes.find((n) => n.name !== st.holder);
    return other ? other.name : "";
  }

  function renderState(st) {
    $("vip").textContent = st.vip || "–";
    $("holder").textContent = server(st.holder);

    const nodes = $("nodes");
    nodes.replaceChildren();
    for (const n of st.nodes || []) {
      const card = el("div", "node" + (n.holds_vip ? " holds" : ""));
      const title = el("div", "name", server(n.name));
      if (n.holds_vip) title.append(el("span", "badge vip", "holds VIP"));
      title.append(el("span", "badge " + (n.up ? "up" : "down"), n.up ? "up" : "down"));
      card.append(title);
      const dl = el("dl");
      dl.append(el("dt", "", "Address"), el("dd", "", n.address || "–"));
      dl.append(el("dt", "", "MAC"), el("dd", "", n.mac || "–"));
      dl.append(el("dt", "", "Connections"), el("dd", "count", int(n.connections)));
      card.append(dl);
      nodes.append(card);
    }

    const rows = $("connections");
    rows.replaceChildren();
    const conns = st.connections || [];
    for (const c of conns) {
      const tr = el("tr");
      tr.append(el("td", "", c.service), el("td", "", c.client), el("td", "", server(c.node)),
        el("td", "num", int(c.bytes_in)), el("td", "num", int(c.bytes_out)));
      rows.append(tr);
    }
    if (conns.length === 0) {
      const tr = el("tr");
      const td = el("td", "muted", "no connections");
      td.colSpan = 5;
      tr.append(td);
      rows.append(tr);
    }
    $("conncount").textContent = "(" + conns.length + ")";

    if (st.client) renderClient(st.client);
    const to = otherNode(st);
    $("direction").textContent = st.holder && to ? server(st.holder) + "  →  " + server(to) : "";
  }

  function renderClient(c) {
    const box = $("client");
    box.replaceChildren();
    const stat = (k, v, bad) => {
      const s = el("div", "stat" + (bad ? " bad" : ""));
      s.append(el("div", "v", v), el("div", "k", k));
      box.append(s);
    };
    stat("mode", c.mode || "–");
    stat("bytes", int(c.bytes));
    stat("errors", int(c.errors), Number(c.errors) > 0);
    stat("last RTT", us(c.last_rtt_us));
    stat("worst gap", us(c.worst_gap_us));
  }

  function renderReport(r) {
    const box = $("report");
    box.replaceChildren();
    const head = r.ok
      ? server(r.from) + "  →  " + server(r.to) + ":  " + int(r.connections) + " connection" +
        (r.connections === 1 ? "" : "s") + " moved in " + us(r.total_us)
      : "Hand-off " + (r.from ? server(r.from) + " → " + server(r.to) + " " : "") + "failed: " + (r.error || "unknown error");
    box.append(el("div", "title " + (r.ok ? "ok" : "bad"), head));
    const phases = r.phases || [];
    const most = Math.max(1, ...phases.map((p) => Number(p.us) || 0));
    for (const p of phases) {
      const row = el("div", "phase");
      const track = el("div", "track");
      const bar = el("div", "bar");
      bar.style.width = ((100 * (Number(p.us) || 0)) / most).toFixed(2) + "%";
      track.append(bar);
      row.append(el("div", "", p.name), track, el("div", "us", us(p.us)));
      box.append(row);
    }
    if (!r.ok && r.remaining && r.remaining.length) {
      box.append(el("p", "", "Still served by " + server(r.from) + ":"));
      const ul = el("ul");
      for (const c of r.remaining) ul.append(el("li", "", c.service + "  " + c.client));
      box.append(ul);
    }
  }

  function say(text, bad) {
    const m = $("message");
    m.textContent = text;
    m.className = "message" + (bad ? " bad" : "");
  }

  async function handOff() {
    if (busy) return;
    busy = true;
    const button = $("handoff");
    button.disabled = true;
    button.textContent = "Handing off…";
    say("");
    try {
      const headers = { "Content-Type": "application/json" };
      if (token) headers.Authorization = "Bearer " + token;
      const res = await fetch("/api/handoff", { method: "POST", headers, body: "{}" });
      let body = {};
      try { body = await res.json(); } catch (e) { /* not JSON */ }
      if (res.status === 401) {
        $("tokenbox").hidden = false;
        say("This console needs its token to hand off.", true);
      } else if (res.status === 409) {
        say(body.error || "a hand-off is already running", true);
      } else if (Array.isArray(body.phases)) {
        renderReport(body);
        say(body.ok ? "" : "Hand-off failed; the source kept its connections.", !body.ok);
      } else {
        say("Error " + res.status + ": " + (body.error || res.statusText), true);
      }
    } catch (e) {
      say("Console unreachable: " + e.message, true);
    } finally {
      busy = false;
      button.disabled = false;
      button.textContent = "Hand off";
    }
  }

  function connect() {
    const live = $("live");
    const es = new EventSource("/api/events");
    const on = (type, fn) => es.addEventListener(type, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      fn(data);
    });
    es.onopen = () => { live.textContent = "live"; live.className = "live on"; };
    es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
    on("state", (st) => { renderState(st); if ($("message").textContent.startsWith("Lab:")) say(""); });
    on("handoff", renderReport);
    on("client", renderClient);
    on("error", (e) => say("Lab: " + (e.error || "error"), true));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("handoff").addEventListener("click", handOff);
    $("tokensave").addEventListener("click", () => {
      token = $("token").value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      $("tokenbox").hidden = true;
      say("Token set; press Hand off again.");
    });
    connect();
  });
})();
