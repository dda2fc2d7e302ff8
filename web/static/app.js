// sockshift console: renders the lab from /api/events, starts hand-offs
// (whole, or one phase per click in step mode), and shows what moved.
// Everything is drawn with textContent and DOM/SVG nodes, never innerHTML:
// names and addresses come from the network.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "sockshift-token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let busy = false;
  let state = null; // the latest state
  let report = null; // the latest hand-off report

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
    if (n >= 1000000) return (n / 1000000).toLocaleString("en-US", { maximumFractionDigits: 2 }) + " s";
    if (n >= 1000) return (n / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " ms";
    return int(n) + " µs";
  }
  function rate(bps) {
    bps = Number(bps || 0);
    if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " MB/s";
    if (bps >= 1e3) return (bps / 1e3).toFixed(0) + " kB/s";
    return bps.toFixed(0) + " B/s";
  }
  const server = (name) => (name ? "Server " + String(name).toUpperCase() : "nobody");
  const nodeOf = (st, name) => ((st && st.nodes) || []).find((n) => n.name === name);

  // otherNode is where a hand-off without "to" goes: the server after the
  // VIP's holder, in the lab's order (the first after the last).
  function otherNode(st) {
    if (!st || !st.nodes || !st.nodes.length) return "";
    const i = st.nodes.findIndex((n) => n.name === st.holder);
    if (i < 0) return "";
    const next = st.nodes[(i + 1) % st.nodes.length];
    return next.name !== st.holder ? next.name : "";
  }

  // ---- The lab, as a picture ----------------------------------------
  // The <svg> element is in the page, so its namespace comes from there.
  const topo = $("topo");
  const SVGNS = topo.namespaceURI;
  function svg(tag, attrs, parent, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.append(e);
    return e;
  }
  const T = {}; // the picture's parts that change
  function box(id, x, y, w, h, title) {
    const g = svg("g", { class: "host", id: "topo-" + id }, topo);
    T[id] = {
      g,
      rect: svg("rect", { x, y, width: w, height: h, rx: 12, class: "hostbox" }, g),
      title: svg("text", { x: x + 16, y: y + 36, class: "t1" }, g, title),
      l1: svg("text", { x: x + 16, y: y + 68, class: "t2" }, g, ""),
      l2: svg("text", { x: x + 16, y: y + 96, class: "t3" }, g, ""),
      l3: svg("text", { x: x + 16, y: y + 124, class: "t3" }, g, ""),
      badge: svg("g", { class: "badge" }, g),
    };
    return T[id];
  }
  function buildTopo() {
    T.linkC = svg("line", { x1: 330, y1: 185, x2: 500, y2: 185, class: "link" }, topo);
    box("client", 10, 95, 320, 180, "Client");
    const sw = svg("g", { class: "host" }, topo);
    svg("rect", { x: 500, y: 150, width: 200, height: 70, rx: 12, class: "hostbox switch" }, sw);
    svg("text", { x: 600, y: 183, class: "t1", "text-anchor": "middle" }, sw, "switch");
    T.swns = svg("text", { x: 600, y: 208, class: "t3", "text-anchor": "middle" }, sw, "");
    T.arrow = svg("text", { x: 600, y: 128, class: "t3 arplabel", "text-anchor": "middle" }, topo, "");
    buildServers(["a", "b"]);
  }

  // buildServers draws a box per server, one under the other (the picture
  // grows for more than two), each with its link from the switch.
  let drawn = "";
  function buildServers(names) {
    if (names.join() === drawn) return;
    for (const id of drawn ? drawn.split(",") : []) {
      T[id].g.remove();
      T[id].link.remove();
      delete T[id];
    }
    drawn = names.join();
    const mid = (names.length - 1) / 2;
    names.forEach((id, i) => {
      const y = 8 + 170 * i, cy = y + 72, sy = 185 + (i - mid) * 30;
      const link = svg("path", { d: `M 700 ${sy} C 780 ${sy}, 780 ${cy}, 860 ${cy}`, class: "link" }, null);
      topo.prepend(link); // under the boxes, as the others
      const t = box(id, 860, y, 330, 150, server(id));
      t.link = link;
      t.badgeRect = svg("rect", { x: 1030, y: y + 14, width: 150, height: 34, rx: 17, class: "vipbadge" }, t.badge);
      t.badgeText = svg("text", { x: 1105, y: y + 38, "text-anchor": "middle", class: "vipbadgetext" }, t.badge, "holds VIP");
    });
    topo.setAttribute("viewBox", `0 0 1200 ${Math.max(330, 170 * names.length - 10)}`);
  }

  function renderTopo(st) {
    const ch = st.client_host || {};
    T.client.l1.textContent = ch.address || "";
    T.client.l2.textContent = ch.mac ? "MAC " + ch.mac : "";
    let via = "";
    if (st.nodes && st.nodes.length) buildServers(st.nodes.map((n) => n.name));
    for (const n of st.nodes || []) {
      const t = T[n.name];
      if (!t) continue;
      t.l1.textContent = (n.address || "") + (n.holds_vip ? "  +  " + (st.vip || "") : "");
      t.l2.textContent = "MAC " + (n.mac || "–");
      t.l3.textContent = n.up ? int(n.connections) + " connection" + (n.connections === 1 ? "" : "s") : "down";
      t.g.classList.toggle("holds", !!n.holds_vip);
      t.g.classList.toggle("down", !n.up);
      t.badge.classList.toggle("shown", !!n.holds_vip);
      if (ch.arp_mac && n.mac && ch.arp_mac.toLowerCase() === n.mac.toLowerCase()) via = n.name;
    }
    T.client.l3.textContent = ch.arp_mac ? "ARP: " + (st.vip || "VIP") + " → " + server(via) : "ARP: " + (st.vip || "VIP") + " unresolved";
    T.arrow.textContent = via ? "the client's packets for the VIP go to " + server(via) : "";
    // The path the client's packets take follows its ARP entry, not the
    // holder: with the announce skipped they differ.
    T.linkC.classList.toggle("active", !!via);
    for (const id of drawn.split(",")) T[id].link.classList.toggle("active", via === id);
    T.client.g.classList.toggle("astray", !!via && via !== st.holder);
  }

  function renderState(st) {
    state = st;
    $("vip").textContent = st.vip || "–";
    $("holder").textContent = server(st.holder);
    renderTopo(st);
    renderServices(st.services || []);

    const rows = $("connections");
    rows.replaceChildren();
    const conns = st.connections || [];
    for (const c of conns) {
      const tr = el("tr");
      tr.append(el("td", "", c.service), el("td", "", c.client), el("td", "", server(c.node)),
        el("td", "num", int(c.bytes_in)), el("td", "num", int(c.bytes_out)),
        el("td", c.handoff === "stayed" ? "stayed" : "", c.handoff ? c.handoff + (c.reason ? ": " + c.reason : "") : ""));
      if (c.local) tr.title = "connected to " + c.local;
      rows.append(tr);
    }
    if (conns.length === 0) {
      const tr = el("tr");
      const td = el("td", "muted", "no connections");
      td.colSpan = 6;
      tr.append(td);
      rows.append(tr);
    }
    $("conncount").textContent = "(" + conns.length + ")";

    if (st.client) renderClient(st.client);
    const to = otherNode(st);
    $("direction").textContent = st.holder && to ? server(st.holder) + "  →  " + server(to) : "";
    $("classroom").hidden = !(st.features && st.features.step);
    renderStep(st.step || null);
  }

  // Each service's address and its holder; the picker offers each one.
  function renderServices(svcs) {
    const rows = $("services");
    rows.replaceChildren();
    for (const s of svcs) {
      const tr = el("tr");
      tr.append(el("td", "", s.name), el("td", "", s.address + ":" + s.port), el("td", "holder", server(s.holder)));
      rows.append(tr);
    }
    const pick = $("servicepick");
    const have = Array.from(pick.options).map((o) => o.value).filter(Boolean).join(",");
    if (have !== svcs.map((s) => s.name).join(",")) {
      const keep = pick.value;
      pick.replaceChildren(el("option", "", "every service"));
      pick.options[0].value = "";
      for (const s of svcs) {
        const o = el("option", "", s.name + " (" + s.address + ")");
        o.value = s.name;
        pick.append(o);
      }
      pick.value = keep;
    }
  }

  // ---- The demo client ----------------------------------------------
  const clients = {};
  function renderClient(c) {
    clients[c.mode || "client"] = c;
    const box = $("client");
    box.replaceChildren();
    const stat = (k, v, bad) => {
      const s = el("div", "stat" + (bad ? " bad" : ""));
      s.append(el("div", "v", v), el("div", "k", k));
      box.append(s);
    };
    for (const mode of Object.keys(clients).sort()) {
      const s = clients[mode];
      if (mode === "ping") {
        stat("ping: last round trip", us(s.last_rtt_us));
        stat("ping: worst gap", us(s.worst_gap_us));
      } else {
        stat(mode + ": bytes echoed", int(s.bytes));
      }
      stat(mode + ": errors", int(s.errors), Number(s.errors) > 0);
    }
    if (graph.tput.length) {
      const last = graph.tput[graph.tput.length - 1];
      stat("throughput to / from the VIP", rate(last[1]) + " / " + rate(last[2]));
    }
  }

  // ---- The live graph ------------------------------------------------
  const graph = { rtt: [], tput: [], marks: [], now: 0 };
  const WINDOW_MS = 30000;
  function addSample(s) {
    for (const p of s.rtt || []) graph.rtt.push(p);
    graph.waiting = Number(s.waiting_us || 0);
    if (s.at) {
      graph.tput.push([s.at, s.up, s.down]);
      graph.now = Math.max(graph.now, s.at);
    }
    const cut = graph.now - 2 * WINDOW_MS;
    while (graph.rtt.length && graph.rtt[0][0] < cut) graph.rtt.shift();
    while (graph.tput.length && graph.tput[0][0] < cut) graph.tput.shift();
    while (graph.marks.length && graph.marks[0].end < cut) graph.marks.shift();
    drawGraph();
  }

  function drawGraph() {
    const c = $("graph");
    const dpr = window.devicePixelRatio || 1;
    const cssW = c.clientWidth || 1200, cssH = c.clientHeight || 380;
    if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
      c.width = Math.round(cssW * dpr);
      c.height = Math.round(cssH * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const W = cssW, H = cssH;
    g.clearRect(0, 0, W, H);
    const left = 90, right = 16, top = 14, split = Math.round(H * 0.64), bottom = H - 26;
    // The last 30 s; less while the demo is younger, so the graph is full.
    const first = graph.tput.length ? graph.tput[0][0] : graph.now;
    const span = Math.max(10000, Math.min(WINDOW_MS, graph.now - first + 500));
    const x0 = graph.now - span;
    const X = (t) => left + ((t - x0) / span) * (W - left - right);
    const font = (px) => px + "px system-ui, 'DejaVu Sans', sans-serif";
    const css = getComputedStyle(document.body);
    const col = (v) => css.getPropertyValue(v).trim();

    // Round trips on a log scale: 10 µs .. 10 s.
    const lo = Math.log10(10), hi = Math.log10(10e6);
    const Y = (v) => split - 8 - ((Math.log10(Math.max(10, Math.min(10e6, v))) - lo) / (hi - lo)) * (split - 8 - top);
    g.font = font(15);
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const [v, label] of [[100, "100 µs"], [1000, "1 ms"], [10000, "10 ms"], [100000, "100 ms"], [1e6, "1 s"]]) {
      g.strokeStyle = "#343a46";
      g.lineWidth = 1;
      g.beginPath(); g.moveTo(left, Y(v)); g.lineTo(W - right, Y(v)); g.stroke();
      g.fillStyle = col("--muted");
      g.fillText(label, left - 8, Y(v));
    }
    // Hand-offs: a band from start to end, a line and a label.
    g.textAlign = "left";
    g.textBaseline = "top";
    for (const mk of graph.marks) {
      if (mk.end < x0) continue;
      const xs = Math.max(left, X(mk.start)), xe = Math.max(xs + 3, X(mk.end));
      g.fillStyle = mk.ok ? "rgba(255,212,0,0.25)" : "rgba(255,92,92,0.3)";
      g.fillRect(xs, top, xe - xs, bottom - top);
      g.fillStyle = mk.ok ? col("--accent") : col("--bad");
      g.fillRect(xs, top, 2, bottom - top);
      g.font = font(15);
      g.fillText(mk.label, Math.max(left, Math.min(xs + 6, W - right - g.measureText(mk.label).width - 4)), top + 2);
    }
    g.fillStyle = col("--ping");
    for (const [t, v] of graph.rtt) {
      if (t < x0) continue;
      g.fillRect(X(t) - 2, Y(v) - 2, 4, 4);
    }
    if (graph.waiting > 0) {
      // A round trip still waiting: the client is stalled right now.
      const xs = Math.max(left, X(graph.now - graph.waiting / 1000));
      g.fillStyle = col("--bad");
      g.fillRect(xs, Y(graph.waiting) - 3, X(graph.now) - xs, 6);
      g.font = font(17);
      g.textAlign = "right";
      g.textBaseline = "top";
      g.fillText("the client has waited " + us(graph.waiting) + " for its echo", W - right - 4, Y(graph.waiting) + 8);
    }
    g.fillStyle = col("--muted");
    g.textAlign = "left";
    g.textBaseline = "bottom";
    g.font = font(15);
    g.fillText("round trip (log scale)", left + 6, split - 10);

    // Throughput, linear.
    const most = Math.max(1, ...graph.tput.filter((p) => p[0] >= x0).map((p) => Math.max(p[1], p[2])));
    const Yt = (v) => bottom - (v / most) * (bottom - split - 14);
    g.strokeStyle = "#343a46";
    g.beginPath(); g.moveTo(left, bottom); g.lineTo(W - right, bottom); g.stroke();
    g.textAlign = "right";
    g.textBaseline = "middle";
    g.fillStyle = col("--muted");
    g.fillText(rate(most), left - 8, Yt(most));
    g.fillText("0", left - 8, bottom);
    for (const [i, key] of [[1, "--up"], [2, "--down"]]) {
      g.strokeStyle = col(key);
      g.lineWidth = 3;
      g.beginPath();
      let started = false;
      for (const p of graph.tput) {
        if (p[0] < x0) continue;
        if (!started) { g.moveTo(X(p[0]), Yt(p[i])); started = true; } else g.lineTo(X(p[0]), Yt(p[i]));
      }
      g.stroke();
    }
    g.textAlign = "left";
    g.textBaseline = "bottom";
    g.fillStyle = col("--up");
    g.fillText("client → VIP", left + 6, split + 26);
    g.fillStyle = col("--down");
    g.fillText("VIP → client", left + 150, split + 26);
    // Time axis: seconds before now.
    g.fillStyle = col("--muted");
    g.textAlign = "center";
    g.textBaseline = "top";
    const tick = span > 15000 ? 5 : 2;
    for (let s = 0; s * 1000 <= span; s += tick) g.fillText(s === 0 ? "now" : "−" + s + " s", X(graph.now - s * 1000), bottom + 4);
  }

  function markHandOff(r) {
    if (!r.started_ms) return;
    const label = server(r.from) + " → " + server(r.to) + (r.ok ? (r.gap_us ? ": gap " + us(r.gap_us) : "") : ": failed");
    graph.marks.push({ start: r.started_ms, end: r.ended_ms || r.started_ms, ok: r.ok, label });
    drawGraph();
  }

  // ---- The last hand-off ---------------------------------------------
  function renderReport(r) {
    report = r;
    const box = $("report");
    box.replaceChildren();
    // The headline says what the client's frames show (r.fate), not what
    // the servers meant to do: a reset connection did not move.
    const f = r.fate;
    const lost = (f && f.reset) || 0;
    const plural = (n, w) => int(n) + " " + w + (n === 1 ? "" : "s");
    let head;
    const aborted = !r.ok && /stopped by the operator/.test(r.error || "");
    if (aborted) {
      // The library names the phase it was waiting to start.
      const at = /failed at (\w+)/.exec(r.error || "");
      const phase = at && PHASES[at[1]] ? PHASES[at[1]][0].toLowerCase() : at ? at[1] : "the commit";
      head = "Hand-off " + (r.from ? server(r.from) + " → " + server(r.to) + " " : "") + "aborted before " + phase +
        (r.rolled_back ? ": rolled back — nothing moved; the connections stay on " + server(r.from) : "");
    } else if (!r.ok) {
      head = "Hand-off " + (r.from ? server(r.from) + " → " + server(r.to) + " " : "") + "failed: " + (r.error || "unknown error") +
        (r.rolled_back ? " — nothing moved; the connections stay on " + server(r.from) : "");
    } else if (lost) {
      head = server(r.from) + "  →  " + server(r.to) + ":  " + plural(lost, "connection") + " reset (lost)" +
        (f.moved ? ", " + int(f.moved) + " answered by " + server(r.to) : "");
    } else {
      head = server(r.from) + "  →  " + server(r.to) + ":  " + plural(r.connections, "connection") + " moved" +
        (f && f.stalled && !r.step ? ", stalled up to " + us(f.worst_stall_ms * 1000) : "");
    }
    box.append(el("div", "title " + (r.ok && !lost ? "ok" : "bad"), head));
    const chips = el("div", "chips");
    const chip = (k, v, cls) => {
      const s = el("div", "stat" + (cls ? " " + cls : ""));
      s.append(el("div", "v", v), el("div", "k", k));
      chips.append(s);
    };
    if (r.ok) chip("connections moved", int(Math.max(0, r.connections - lost)));
    else chip("stayed on " + server(r.from), int((r.remaining || []).length));
    if (r.ok && r.stayed && r.stayed.length) chip("stayed on the source", int(r.stayed.length));
    if (r.services && r.services.length) chip("services moved", r.services.join(", "));
    if (lost) chip("connections reset", int(lost), "bad");
    if (f && f.stalled) chip("longest stall (client waited for an answer)", us(f.worst_stall_ms * 1000), "bad");
    chip("freeze to resume", us(r.total_us));
    if (r.gap_us) chip("client-visible gap (worst round trip)", us(r.gap_us), "accent");
    chip("client frames caught and delivered (reached the source from the freeze on)", int(r.caught));
    if (r.rolled_back) chip("rolled back", "yes", "bad");
    box.append(chips);
    if (r.break && (r.break.skip_announce || r.break.keep_vip)) {
      box.append(el("p", "breaknote", "Broken on purpose: " +
        [r.break.skip_announce ? "announce skipped" : "", r.break.keep_vip ? "address kept on the source" : ""].filter(Boolean).join(", ") + "."));
    }
    for (const st of r.stayed || []) {
      box.append(el("p", "stayednote", "Stayed: " + st.service + " " + st.client + " → " + st.local + ": " + st.reason));
    }
    if (r.note) box.append(el("p", "note", r.note));

    const phases = r.phases || [];
    const most = Math.max(1, ...phases.map((p) => Number(p.us) || 0));
    const tl = el("div", "timeline");
    for (const p of phases) {
      const row = el("div", "phase");
      const track = el("div", "track");
      const bar = el("div", "bar");
      bar.style.width = ((100 * (Number(p.us) || 0)) / most).toFixed(2) + "%";
      track.append(bar);
      row.append(el("div", "pname", p.name), track, el("div", "us", us(p.us)));
      tl.append(row);
    }
    box.append(tl);
    if (!r.ok && r.remaining && r.remaining.length) {
      box.append(el("p", "", "Still served by " + server(r.from) + ":"));
      const ul = el("ul");
      for (const c of r.remaining) ul.append(el("li", "", c.service + "  " + c.client));
      box.append(ul);
    }
    renderMoved(r);
    renderSequence(r);
  }

  // Short labels for a projector; the title says more.
  const TCP_FIELDS = [
    ["send_seq", "send sequence", "the next byte the server sends"],
    ["recv_seq", "receive sequence", "the next byte the server expects"],
    ["snd_wnd", "send window", "how much the client lets the server send"],
    ["rcv_wnd", "receive window", "how much the server lets the client send"],
    ["snd_wscale", "send window scale", ""],
    ["rcv_wscale", "receive window scale", ""],
    ["mss", "MSS", "the largest segment the client takes, from its SYN; ss's mss: is what a segment carries, the 12 bytes of the timestamp option less"],
    ["sack", "SACK", "selective acknowledgements"],
    ["timestamps", "timestamps", "the TCP timestamps option"],
    ["timestamp", "timestamp clock", "moves on with time: restored so it never goes back"],
    ["recv_queue", "received, unread", "bytes received, not yet read by the service"],
    ["unacked", "sent, unacknowledged", "bytes sent, not yet acknowledged by the client"],
    ["unsent", "written, unsent", "bytes written by the service, not yet sent"],
    ["sndbuf", "send buffer", ""],
    ["rcvbuf", "receive buffer", ""],
  ];

  function renderMoved(r) {
    const moved = r.moved || [];
    $("moved").hidden = moved.length === 0 && !r.arp_before;
    const pick = $("movedpick");
    const keep = pick.value;
    pick.replaceChildren();
    moved.forEach((mv, i) => {
      const o = el("option", "", mv.client);
      o.value = String(i);
      pick.append(o);
    });
    if (keep && Number(keep) < moved.length) pick.value = keep;
    pick.hidden = moved.length === 0;
    showMoved();
    $("arpbefore").textContent = r.arp_before || "–";
    $("arpafter").textContent = r.arp_after || "–";
  }

  function showMoved() {
    const rows = $("movedrows");
    rows.replaceChildren();
    const moved = (report && report.moved) || [];
    const mv = moved[Number($("movedpick").value) || 0];
    if (!mv) {
      const tr = el("tr");
      const td = el("td", "muted", "no connection moved");
      td.colSpan = 3;
      tr.append(td);
      rows.append(tr);
      return;
    }
    for (const [k, label, title] of TCP_FIELDS) {
      const b = mv.before ? mv.before[k] : undefined, a = mv.after ? mv.after[k] : undefined;
      // ss counts the MSS without the timestamp option: show its figure too.
      const ts = (side) => side && side.timestamps;
      const fmt = (v, side) => (typeof v === "boolean" ? (v ? "on" : "off") : v === undefined ? "–" :
        k === "mss" && ts(side) ? int(v) + " (ss: " + int(v - 12) + ")" : int(v));
      const tr = el("tr", b === a ? "" : "diff");
      const name = el("td", "", label);
      if (title) name.title = title;
      tr.append(name, el("td", "num", fmt(b, mv.before)), el("td", "num", fmt(a, mv.after)));
      rows.append(tr);
    }
  }

  function renderSequence(r) {
    const cap = r.capture;
    $("sequence").hidden = !cap;
    if (!cap) return;
    $("seqimg").src = "/api/handoffs/latest.svg?id=" + encodeURIComponent(cap.id);
    $("pcaplink").href = "/api/handoffs/latest.pcap?id=" + encodeURIComponent(cap.id);
    $("capsum").textContent = int(cap.frames) + " frames: " + int(cap.tcp) + " TCP, " + int(cap.arp) + " ARP" +
      (cap.announced ? " (gratuitous ARP seen)" : " (no gratuitous ARP)") + ", " + int(cap.resets) + " reset" + (cap.resets === 1 ? "" : "s");
  }

  // ---- Step mode ----------------------------------------------------
  // Each phase in two sentences, and the shell command that does or shows
  // the same by hand; {src}, {dst}, {cl}, {if}, {vip} are filled in.
  const PHASES = {
    quiesce: ["Quiesce",
      "Each service stops at a clean point on every connection: nothing read but not yet handled. It snapshots its own state (the chat's nicks and channels, the echo's pending bytes) so the other server can carry on exactly there.",
      "ip netns exec {src} ss -tn state established '( sport = :7 or sport = :6667 )'"],
    freeze: ["Freeze",
      "The source switches every socket on the VIP into TCP repair mode (setsockopt TCP_REPAIR): the services can no longer read or write them, and closing them later sends neither FIN nor RST. The kernel's TCP goes on: until the address leaves, the source still takes in and acknowledges what the client sends (Recv-Q grows), so no retransmission timeout fires on the client yet.",
      "ip netns exec {src} ss -tnie '( sport = :7 )'    # still there; Recv-Q grows: the kernel still acknowledges"],
    release: ["Release the address",
      "The source removes the VIP from its interface. A client segment that still reaches it is dropped by its IP layer before any socket sees it, never answered with a reset, and nothing leaves the frozen sockets: from now on the client gets no acknowledgement, and its retransmission timeouts fire, further and further apart.",
      "ip -n {src} addr del {vip}/32 dev {if}\nip netns exec {cl} ss -tnie dst {vip}    # a client with data unacknowledged: lastack: grows, rto: doubles, backoff: counts"],
    dump: ["Dump",
      "For each socket the source reads out what the kernel knows: both sequence numbers, the bytes queued each way, MSS, window scale, SACK, timestamps. Repair mode is what lets a program read (and later write) all of it; coming after the release, it reads a state nothing can change any more. ss shows only part of it, and no sequence numbers: the What moved panel shows them after the hand-off.",
      "ip netns exec {src} ss -tnie '( sport = :7 )'    # Recv-Q, Send-Q, wscale, mss: part of what is dumped (sequence numbers: What moved)"],
    transfer: ["Transfer",
      "The source sends the dumped states and the services' snapshots to the target over the hand-off channel (TCP 7070). Every message carries a MAC under the lab's shared key and a sequence number, so nothing forged or replayed is ever restored.",
      "ip netns exec {dst} ss -tn '( sport = :7070 )'    # the authenticated channel"],
    restore: ["Restore",
      "The target has rebuilt each socket in repair mode as its state arrived: bind to the VIP and port, set the sequence numbers and queues, “connect” without a SYN, then the options and windows. It does not take the VIP: no target does before the commit, so one that dies now leaves no address behind; the sockets are rebuilt transparent (they may bind an address the host does not have). Now it tells the source that all are rebuilt. The console counts them once they resume; ss lists them now.",
      "ip netns exec {dst} ss -tn state established '( sport = :7 or sport = :6667 )'    # rebuilt, frozen\nip -n {dst} addr show dev {if}    # no {vip} yet"],
    announce: ["Commit and announce",
      "The source writes its decision down and commits: the point of no return. The target takes the VIP, sends a gratuitous ARP (“{vip} is at my MAC”), leaves repair mode, and its services carry on from their snapshots. The client updates its ARP entry, and its next segments go to the target's MAC.",
      "ip -n {dst} addr add {vip}/32 dev {if}\nip netns exec {dst} arping -U -c 1 -I {if} {vip}\nip -n {cl} neigh show {vip}    # the client's entry now names the target"],
    resume: ["Resume",
      "The target serves already (it left repair mode at the commit). The source now hands over the client frames it caught meanwhile and closes its frozen sockets silently. No reconnect, no byte lost or repeated.",
      "ip netns exec {dst} ss -tnie '( sport = :7 )'    # new sockets (another ino:): rtt: and the byte counters start again"],
  };

  function fill(cmd, st, step) {
    const src = nodeOf(st, step.from) || {}, dst = nodeOf(st, step.to) || {};
    const ch = (st && st.client_host) || {};
    return cmd.replace(/\{(\w+)\}/g, (all, k) => ({
      src: src.namespace || "<source ns>", dst: dst.namespace || "<target ns>", cl: ch.namespace || "<client ns>",
      if: src.interface || dst.interface || "eth0", vip: (st && st.vip) || "192.0.2.100",
    })[k] || all);
  }

  // stepActive is set while a step-mode hand-off runs and until its
  // report arrives (the demo measures and records for a moment after the
  // last phase).
  let stepActive = false;
  let finishTimer = 0;
  function renderStep(step) {
    const box = $("stepper");
    if (!step && stepActive) {
      $("stepname").textContent = "Finishing: measuring the gap, cutting the capture…";
      $("steptext").textContent = "";
      $("stepcmd").textContent = "";
      $("stepnext").disabled = true;
      $("stepabort").disabled = true;
      // A report missed (a reconnect) must not leave the panel up.
      if (!finishTimer) finishTimer = setTimeout(() => { stepActive = false; finishTimer = 0; renderStep(null); }, 15000);
      return;
    }
    stepActive = !!step;
    box.hidden = !step;
    $("handoff").disabled = busy || !!step;
    if (!step) return;
    $("stepdir").textContent = server(step.from) + " → " + server(step.to) +
      (step.break && (step.break.skip_announce || step.break.keep_vip) ? "  (broken on purpose)" : "");
    const list = $("steplist");
    list.replaceChildren();
    const done = new Set(step.done || []);
    for (const p of step.phases || []) {
      const cls = done.has(p) ? "done" : p === step.waiting ? "waiting" : "";
      list.append(el("li", cls, (PHASES[p] ? PHASES[p][0] : p)));
    }
    const info = PHASES[step.waiting];
    if (step.waiting && info) {
      $("stepname").textContent = "Next: " + info[0];
      $("steptext").textContent = fill(info[1], state, step);
      $("stepcmd").textContent = "$ " + fill(info[2], state, step).replace(/\n/g, "\n$ ");
    } else if (step.waiting) {
      $("stepname").textContent = "Next: " + step.waiting;
      $("steptext").textContent = "";
      $("stepcmd").textContent = "";
    } else {
      $("stepname").textContent = "running…";
    }
    $("stepnext").disabled = !step.waiting;
    $("stepabort").disabled = !step.waiting || done.has("announce") || step.waiting === "resume";
  }

  // holdText says how long break-it leaves the lab broken, if the lab says.
  function holdText() {
    const ms = state && state.features && Number(state.features.break_hold_ms);
    return ms ? " " + (ms / 1000).toLocaleString("en-US") + " s later (time to run ss on the client and read the capture)" : " a moment later";
  }

  function breakHelp() {
    const skip = $("skipannounce").checked, keep = $("keepvip").checked;
    let t = "";
    if (skip && keep) t = "The source keeps the address and nobody tells the client: it keeps sending to the source, whose kernel has no socket left and answers with a reset (RST). The connection is lost.";
    else if (skip) t = "The target takes over silently: the client keeps sending to the source's MAC, where the address is gone. Its segments are dropped and it stalls, until the console sends the missing announce" + holdText() + ".";
    else if (keep) t = "Both servers hold the address for a while; the client follows the announce, but the next ARP query would get two answers. Tick “skip the announce” too to see the reset.";
    $("breakhelp").textContent = t;
    $("handoff").classList.toggle("danger", skip || keep);
  }

  // ---- Requests -----------------------------------------------------
  async function post(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 401) {
      $("tokenbox").hidden = false;
      say("This console needs its token.", true);
    }
    return [res, data];
  }

  function say(text, bad) {
    const m = $("message");
    m.textContent = text;
    m.className = "message" + (bad ? " bad" : "");
  }

  // failureText says what a failed hand-off left: only one that rolled
  // back kept every connection on the source; after the commit it could
  // only go forward, and the report says what is still where.
  function failureText(r) {
    const left = (r.remaining || []).length;
    if (r.rolled_back) return "Hand-off failed and rolled back; " + server(r.from) + " kept its connections.";
    return "Hand-off failed: " + (r.error || "no reason given") +
      (left ? " (" + server(r.from) + " still serves " + left + " connection" + (left === 1 ? "" : "s") + ")" : "");
  }

  async function handOff() {
    if (busy || stepActive) return;
    busy = true;
    const button = $("handoff");
    button.disabled = true;
    const step = !$("classroom").hidden && $("stepmode").checked;
    const brk = {};
    if (!$("classroom").hidden) {
      if ($("skipannounce").checked) brk.skip_announce = true;
      if ($("keepvip").checked) brk.keep_vip = true;
    }
    button.textContent = step ? "Starting…" : "Handing off…";
    say("");
    try {
      const body = {};
      if (step) body.step = true;
      if ($("servicepick").value) body.services = [$("servicepick").value];
      if (Object.keys(brk).length) body.break = brk;
      const [res, r] = await post("/api/handoff", body);
      if (res.status === 401) {
        // said
      } else if (res.status === 202) {
        say("Step mode: press “Next step” to run each phase.");
        renderStep(r.step || { phases: [], done: [] });
      } else if (res.status === 409) {
        say(r.error || "a hand-off is already running", true);
      } else if (Array.isArray(r.phases)) {
        renderReport(r);
        say(r.ok ? "" : failureText(r), !r.ok);
      } else {
        say("Error " + res.status + ": " + (r.error || res.statusText), true);
      }
    } catch (e) {
      say("Console unreachable: " + e.message, true);
    } finally {
      busy = false;
      button.textContent = "Hand off";
      button.disabled = stepActive;
    }
  }

  async function step(abort) {
    $("stepnext").disabled = true;
    $("stepabort").disabled = true;
    try {
      const [res, r] = await post("/api/step", { abort });
      if (res.ok) {
        say((abort ? "Aborted at " : "Ran ") + (PHASES[r.phase] ? PHASES[r.phase][0] : r.phase) + (abort ? ": rolling back." : "."));
        if (r.step) renderStep(r.step);
      } else if (res.status !== 401) {
        say(r.error || "step refused", true);
      }
    } catch (e) {
      say("Console unreachable: " + e.message, true);
    }
  }

  function addChat(c) {
    const ul = $("chat");
    if (ul.firstElementChild && ul.firstElementChild.classList.contains("muted")) ul.replaceChildren();
    const li = el("li");
    li.append(el("span", "nick", (c.from || "?") + ":"), document.createTextNode(" " + (c.text || "")));
    if (c.server) li.append(el("span", "via", " via " + server(c.server)));
    ul.append(li);
    while (ul.children.length > 12) ul.firstElementChild.remove();
  }

  // A page loaded after a hand-off shows it; a live one that came first wins.
  async function latestReport() {
    try {
      const res = await fetch("/api/handoffs/latest.json", { cache: "no-store" });
      if (res.status !== 200) return; // 204: none yet
      const r = await res.json();
      if (!report) renderReport(r);
    } catch (e) { /* none yet, or the console is gone: the events say so */ }
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
    on("handoff", (r) => {
      if (r.step) {
        stepActive = false;
        clearTimeout(finishTimer);
        finishTimer = 0;
        renderStep(null);
        $("handoff").disabled = busy;
      }
      renderReport(r);
      markHandOff(r);
      if (r.step) say(r.ok ? "Step-mode hand-off complete." : "Step-mode hand-off ended: " + (r.error || "failed"), !r.ok);
    });
    on("client", renderClient);
    on("sample", addSample);
    on("chat", addChat);
    on("error", (e) => say("Lab: " + (e.error || "error"), true));
  }

  document.addEventListener("DOMContentLoaded", () => {
    buildTopo();
    $("handoff").addEventListener("click", handOff);
    $("stepnext").addEventListener("click", () => step(false));
    $("stepabort").addEventListener("click", () => step(true));
    $("movedpick").addEventListener("change", showMoved);
    $("skipannounce").addEventListener("change", breakHelp);
    $("keepvip").addEventListener("change", breakHelp);
    $("tokensave").addEventListener("click", () => {
      token = $("token").value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      $("tokenbox").hidden = true;
      say("Token set; press the button again.");
    });
    window.addEventListener("resize", drawGraph);
    drawGraph();
    connect();
    latestReport();
  });
})();
