// mrm-edge central station. No dependencies, nothing fetched from elsewhere: it talks only
// to the monitor that served it (/ws for frames, /api for the 12-lead view and acks).
"use strict";

const LAG = 40;        // samples (0.4 s at 100 Hz) the strip plays behind the newest sample
const MAX_LAG = 150;   // further behind than this, the strip jumps forward
const STRIP_S = 5;     // seconds across a tile's strip
const KEEP = 1200;     // samples kept per bed in the page

const S = {
  fs: 100, lead: localStorage.getItem("mrm-lead") || "II", header: {}, beds: {},
  alarms: [], ws: null, retry: 500,
};
// Counters the browser tests (and anyone curious) read.
window.__station = { frames: 0, snapshots: 0, renders: 0, connected: false, heads: {}, opens: 0 };

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
// An element's content from pieces: a string as text, [string] as bold text. Everything the
// server sends (model and stream names, reasons) is shown as text, never parsed as markup.
const setText = (id, ...parts) => $(id).replaceChildren(
  ...parts.map((p) => (Array.isArray(p) ? el("b", "", String(p[0])) : String(p))));
const fmt = (v, d = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const clock = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");

// ------------------------------------------------------------------------ connection

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?lead=${encodeURIComponent(S.lead)}`);
  S.ws = ws;
  ws.onopen = () => {
    S.retry = 500;
    window.__station.connected = true;
    window.__station.opens += 1;
    setConn(true);
  };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = () => {
    window.__station.connected = false;
    setConn(false);
    // The monitor restarted or the network blinked: try again, backing off to 5 s.
    setTimeout(connect, S.retry);
    S.retry = Math.min(S.retry * 2, 5000);
  };
}

function setConn(up) {
  const c = $("conn");
  c.textContent = up ? "live" : "reconnecting…";
  c.className = "conn " + (up ? "up" : "down");
}

function onMessage(m) {
  if (m.type === "snapshot") {
    window.__station.snapshots += 1;
    for (const b of Object.values(S.beds)) { b.buf = []; b.i0 = 0; b.play = null; b.drawn = null; }
  }
  window.__station.frames += 1;
  if (m.header) setHeader(m.header);
  if (m.header) showNotice(m.header.notice);
  for (const [id, info] of Object.entries(m.beds || {})) updateBed(id, info);
  for (const [id, strip] of Object.entries(m.strips || {})) addStrip(id, strip);
  if (m.alarms) { S.alarms = m.alarms; drawAlarms(); }
}

// ------------------------------------------------------------------------ header

// A system notice from the monitor (e.g. the event log's disk is full): text only.
function showNotice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

function setHeader(h) {
  S.header = h;
  S.fs = h.fs || 100;
  setText("model", "model ", [h.model || ""]);
  setText("backend", "backend ", [h.backend || ""]);
  $("why").textContent = h.backend_reason ? `why: ${h.backend_reason}` : "";
  $("why").title = h.backend_reason || "";
  setText("stats", [fmt(h.windows_per_s, 1)], " windows/s · p50 ", [fmt(h.p50_ms)], " ms · p99 ",
    [fmt(h.p99_ms)], " ms · queue ", [fmt(h.queue)], " · dropped ", [fmt(h.dropped)], " · beds ",
    [`${fmt(h.streams_live)}/${fmt(h.streams)}`], " · clients ", [fmt(h.clients)],
    h.clients_missed ? ` (missed ${fmt(h.clients_missed)})` : "");
  const sel = $("lead");
  if (!sel.options.length && h.leads) {
    for (const l of h.leads) sel.add(new Option(l, l, false, l === S.lead));
  }
}

$("lead").addEventListener("change", (e) => {
  S.lead = e.target.value;
  localStorage.setItem("mrm-lead", S.lead);
  if (S.ws && S.ws.readyState === 1) S.ws.send(JSON.stringify({ lead: S.lead }));
});

// ------------------------------------------------------------------------ beds

function bedTile(id) {
  let b = S.beds[id];
  if (b) return b;
  const tile = el("div", "tile");
  tile.dataset.bed = id;
  const head = el("div", "tile-head");
  head.append(el("span", "name", id), el("span", "state", ""));
  const canvas = el("canvas");
  canvas.width = 300; canvas.height = 70;
  const findings = el("div", "findings");
  const foot = el("div", "tile-foot");
  foot.append(el("span", "quality", ""), el("span", "alarmtxt", ""));
  tile.append(head, canvas, findings, foot);
  tile.addEventListener("click", () => openBed(id));
  b = S.beds[id] = { id, tile, canvas, buf: [], i0: 0, play: null, info: {} };
  // Keep tiles in bed order.
  const grid = $("beds");
  const after = [...grid.children].find((t) => t.dataset.bed > id);
  grid.insertBefore(tile, after || null);
  return b;
}

function updateBed(id, info) {
  const b = bedTile(id);
  b.info = info;
  const th = S.header.thresholds || {};
  const alarmLabels = S.header.alarm_labels || [];
  const f = b.tile.querySelector(".findings");
  f.textContent = "";
  for (const [lab, p] of Object.entries(info.smoothed || {})) {
    const t = th[lab] ?? 0.5;
    const isAlarmLabel = alarmLabels.includes(lab);
    const pos = isAlarmLabel && p >= t;
    const span = el("span", "finding" + (pos ? " pos" : ""));
    const bar = el("span", "bar");
    const fill = el("i"); fill.style.width = `${Math.min(100, p * 100)}%`;
    const mark = el("em"); mark.style.left = `${Math.min(100, t * 100)}%`;
    bar.append(fill, mark);
    span.append(el("span", "", lab), bar, el("span", "", fmt(p, 2)));
    span.title = `${lab}: smoothed p ${fmt(p, 3)}, threshold ${fmt(t, 3)}` +
      (isAlarmLabel ? "" : " (not an alarm finding)");
    f.append(span);
  }
  if (!Object.keys(info.smoothed || {}).length) f.append(el("span", "finding", "waiting for the first window"));
  else if (!info.findings.length) f.append(el("span", "finding nofind", "no finding"));
  const q = b.tile.querySelector(".quality");
  q.textContent = info.quality_detail;
  q.className = "quality " + (info.quality === "ok" ? "q-ok" : "q-bad");
  b.tile.querySelector(".alarmtxt").textContent = info.alarms.length ? `ALARM ${info.alarms.join(", ")}` : "";
  const st = b.tile.querySelector(".state");
  st.textContent = info.state === "live" ? "live" : `${info.state}${info.state_detail ? ": " + info.state_detail : ""}`;
  st.title = st.textContent;
  const acked = info.alarms.length && S.alarms.filter((a) => a.bed === id && a.active).every((a) => a.acked);
  b.tile.className = "tile" + (info.alarms.length ? (acked ? " acked" : " alarm") : "") +
    (info.state !== "live" ? " " + info.state : "");
  b.tile.dataset.alarm = info.alarms.join(",");
  b.tile.dataset.state = info.state;
  b.tile.dataset.quality = info.quality;
}

function addStrip(id, strip) {
  const b = bedTile(id);
  const end = b.i0 + b.buf.length;
  if (!b.buf.length || strip.i0 !== end) { b.buf = []; b.i0 = strip.i0; b.play = null; b.drawn = null; }
  for (const v of strip.v) b.buf.push(v);
  if (b.buf.length > KEEP) { const cut = b.buf.length - KEEP; b.buf.splice(0, cut); b.i0 += cut; }
}

// ------------------------------------------------------------------------ drawing

let lastT = null;
function render(t) {
  const dt = lastT === null ? 0 : Math.min(0.25, (t - lastT) / 1000);
  lastT = t;
  for (const b of Object.values(S.beds)) drawStrip(b, dt);
  window.__station.renders += 1;
  requestAnimationFrame(render);
}

function drawStrip(b, dt) {
  // A sweep, as bedside monitors draw: the pen moves left to right at 25 mm/s-like pace and
  // an erase bar runs ahead of it. Each frame draws only the samples new since the last
  // frame, so 64 tiles cost a few line segments each per frame, not a full redraw.
  const c = b.canvas, g = c.getContext("2d");
  const w = c.width, h = c.height;
  const newest = b.i0 + b.buf.length;
  if (!b.buf.length) return;
  // Play at the sampling rate, LAG behind the newest sample; jump when far behind.
  if (b.play === null || newest - b.play > MAX_LAG) {
    b.play = newest - LAG;
    b.drawn = null;
  } else b.play = Math.min(newest, b.play + dt * S.fs);
  window.__station.heads[b.id] = b.play;
  const n = STRIP_S * S.fs, upto = Math.floor(b.play);
  const scale = h / 3.0; // 3 mV across the tile
  if (b.drawn === null || b.drawn === undefined || upto - b.drawn > n) {
    g.fillStyle = "#060a0e"; g.fillRect(0, 0, w, h);
    b.drawn = Math.max(b.i0, upto - Math.floor(n * 0.9));
    b.px = null;
  }
  if (upto <= b.drawn) return;
  const xOf = (i) => ((i % n) / n) * w;
  // Erase ahead of the pen (a gap of 4 % of the width), wrapping at the right edge.
  const gap = w * 0.04, x1 = xOf(upto);
  g.fillStyle = "#060a0e";
  g.fillRect(x1, 0, Math.min(gap, w - x1), h);
  if (x1 + gap > w) g.fillRect(0, 0, x1 + gap - w, h);
  g.strokeStyle = b.info.quality === "ok" || !b.info.quality ? "#3ef08a" : "#ffb020";
  g.lineWidth = 1.2;
  g.beginPath();
  let pen = b.px !== null && b.px !== undefined;
  if (pen) g.moveTo(b.px[0], b.px[1]);
  for (let i = b.drawn; i < upto; i++) {
    const v = i >= b.i0 ? b.buf[i - b.i0] : null;
    const x = xOf(i);
    if (v === null || v === undefined) { pen = false; b.px = null; continue; }
    const y = h / 2 - v * scale;
    if (pen && x >= b.px[0]) g.lineTo(x, y); else g.moveTo(x, y);
    pen = true;
    b.px = [x, y];
  }
  g.stroke();
  b.drawn = upto;
  g.fillStyle = "#7d8a97"; g.font = "10px sans-serif"; g.fillText(S.lead, 3, 11);
}

// ------------------------------------------------------------------------ alarms

function drawAlarms() {
  const banner = $("banner");
  banner.textContent = "";
  for (const a of S.alarms.filter((x) => x.active)) {
    const card = el("div", "alarm-card" + (a.acked ? " acked" : ""));
    card.dataset.alarm = a.id;
    card.append(el("span", "", `${a.label} · ${a.bed} · ${clock(a.onset)} · p ${fmt(a.probability, 2)} ≥ ${fmt(a.threshold, 2)}`));
    if (!a.acked) {
      const btn = el("button", "ack", "ACK");
      btn.type = "button";
      btn.addEventListener("click", (e) => { e.stopPropagation(); ack(a.id); });
      card.append(btn);
    } else card.append(el("span", "", "acknowledged"));
    banner.append(card);
  }
  const rows = $("history-rows");
  rows.textContent = "";
  for (const a of [...S.alarms].reverse()) {
    const tr = el("tr");
    const state = a.active ? (a.acked ? "on (acked)" : "ON") : `cleared ${clock(a.cleared)}${a.cause ? " (" + a.cause + ")" : ""}${a.acked ? ", acked" : ""}`;
    for (const v of [clock(a.onset), a.bed, a.label, `${fmt(a.probability, 2)} / ${fmt(a.threshold, 2)}`, state]) tr.append(el("td", "", v));
    rows.append(tr);
  }
  for (const b of Object.values(S.beds)) if (b.info.alarms) updateBed(b.id, b.info);
}

async function ack(id) {
  // The custom header marks the request as the station page's own: a page of another
  // origin cannot send it without a preflight, which the station never answers.
  const r = await fetch(`/api/alarms/${encodeURIComponent(id)}/ack`,
    { method: "POST", headers: { "X-MRM-Station": "1" } });
  if (r.ok) {
    const a = S.alarms.find((x) => x.id === id);
    if (a) a.acked = Date.now() / 1000;
    drawAlarms();
  }
}

// ------------------------------------------------------------------------ 12-lead view

const LAYOUT = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]];

async function openBed(id) {
  const r = await fetch(`/api/bed/${encodeURIComponent(id)}`);
  if (!r.ok) return;
  const doc = await r.json();
  $("modal-title").textContent = `${id} — 12-lead`;
  $("modal-probs").textContent = Object.entries(doc.probabilities)
    .map(([k, v]) => `${k} ${fmt(v, 2)}`).join("  ") || "no classified window yet";
  $("modal").classList.remove("hidden");
  drawTwelve($("twelve"), doc);
  window.__station.twelve = { bed: id, samples: doc.signal[0].length };
}

function drawTwelve(c, doc) {
  // Paper: 250 mm (10 s at 25 mm/s) x 4 rows of 30 mm; 10 mm/mV.
  const PX = 4, W = 250, ROW = 30, H = ROW * 4;
  c.width = W * PX; c.height = H * PX;
  const g = c.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  for (let mm = 0; mm <= W; mm++) {
    g.strokeStyle = mm % 5 ? "#f6caca" : "#e58a8a"; g.lineWidth = mm % 5 ? 0.5 : 1;
    g.beginPath(); g.moveTo(mm * PX, 0); g.lineTo(mm * PX, c.height); g.stroke();
  }
  for (let mm = 0; mm <= H; mm++) {
    g.strokeStyle = mm % 5 ? "#f6caca" : "#e58a8a"; g.lineWidth = mm % 5 ? 0.5 : 1;
    g.beginPath(); g.moveTo(0, mm * PX); g.lineTo(c.width, mm * PX); g.stroke();
  }
  const fs = doc.fs, n = doc.signal[0].length;
  const trace = (lead, row, t0, t1) => {
    const sig = doc.signal[doc.leads.indexOf(lead)];
    const base = (row + 0.6) * ROW * PX;
    g.strokeStyle = "#000"; g.lineWidth = 1.1; g.beginPath();
    let pen = false;
    for (let i = Math.round(t0 * fs); i < Math.min(n, Math.round(t1 * fs)); i++) {
      const v = sig[i];
      if (v === null) { pen = false; continue; }
      const x = (i / fs) * 25 * PX, y = base - v * 10 * PX;
      if (pen) g.lineTo(x, y); else { g.moveTo(x, y); pen = true; }
    }
    g.stroke();
    g.fillStyle = "#000"; g.font = `${3.2 * PX}px sans-serif`;
    g.fillText(lead, t0 * 25 * PX + 2 * PX, (row + 0.22) * ROW * PX);
  };
  LAYOUT.forEach((leads, row) => leads.forEach((lead, col) => trace(lead, row, col * 2.5, (col + 1) * 2.5)));
  trace("II", 3, 0, 10);
}

$("modal-close").addEventListener("click", () => $("modal").classList.add("hidden"));
$("modal").addEventListener("click", (e) => { if (e.target.id === "modal") $("modal").classList.add("hidden"); });

connect();
requestAnimationFrame(render);
