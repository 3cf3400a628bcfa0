// Overview: per class its cutoff, how far back its packets reach, disk use against budget,
// rates and drops; the flow records' reach; the recorder's health; a chart of the rates kept
// by the server (/api/v1/history). Refreshed every 5 s while shown.
import { $, el, api, apiJson, state, refreshStats, fmtBytes, fmtNum, fmtRate, fmtTime, ago } from "./app.js";

let timer = null, chart = null, chartKey = "";

export function init() {}
export function show() { refresh(); timer = setInterval(refresh, 5000); }
export function hide() { clearInterval(timer); timer = null; }

async function refresh() {
  try {
    const [stats, history, health] = await Promise.all([
      refreshStats(),
      apiJson("/api/v1/history").catch(() => ({ samples: [] })),
      fetch("/health").then((r) => r.json()).catch(() => null),
    ]);
    render(stats, history, health);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#updated").textContent = "not updated: " + e.message;
  }
}

function budgetCell(used, budget) {
  if (typeof budget !== "number") return el("td", { class: "num" }, fmtBytes(used) + (budget ? " / " + budget : ""));
  const pct = Math.min(100, (100 * used) / budget);
  return el("td", { class: "num" }, el("span", { class: "bar" }, el("span", { style: `width:${pct.toFixed(1)}%` })),
    `${fmtBytes(used)} / ${fmtBytes(budget)}`);
}

function render(s, history, health) {
  const store = (s.store && s.store.classes) || {};
  const cap = (s.capture && s.capture.classes) || {};
  const last = history.samples && history.samples.length ? history.samples[history.samples.length - 1] : null;
  const names = [...new Set([...Object.keys(store), ...Object.keys(cap)])].sort();
  const tb = $("#classes tbody");
  tb.replaceChildren();
  for (const n of names) {
    const st = store[n] || {}, c = cap[n] || {};
    const r = last && last.classes[n];
    const cutoff = c.cutoff === undefined ? "—" : c.cutoff === "none" ? "none" : fmtBytes(c.cutoff);
    const drops = c.cutoff === undefined ? "—" : `${fmtNum(c.dropped_ring_full)}, ${fmtNum(c.dropped_too_large)}`;
    tb.append(el("tr", { "data-class": n },
      el("td", {}, n),
      el("td", { class: "num" }, cutoff),
      el("td", { class: "reach" }, st.first_ns ? el("span", { title: String(st.first_ns) }, fmtTime(st.first_ns), el("br"), el("small", {}, ago(st.first_ns))) : "no packets"),
      el("td", {}, st.open ? "recording now" : st.last_ns ? fmtTime(st.last_ns) : "—"),
      el("td", { class: "num" }, fmtNum(st.packets) + (st.open ? " + open segments" : "")),
      // (a class without a budget of its own is under the store's: "none" read as unlimited)
      budgetCell((st.pcap_bytes || 0) + (st.index_bytes || 0), c.disk_budget === "none" && s.capture.store_disk_budget !== undefined &&
        s.capture.store_disk_budget !== "none" ? `store's ${typeof s.capture.store_disk_budget === "number"
          ? fmtBytes(s.capture.store_disk_budget) : s.capture.store_disk_budget}` : c.disk_budget),
      el("td", { class: "num" }, r ? `${fmtRate(r.stored_pps)} pkt, ${fmtBytes(r.stored_bps)}` : "—"),
      el("td", { class: "num" }, r ? `${fmtRate(r.cut_pps)} pkt, ${fmtBytes(r.cut_bps)}` : "—"),
      el("td", { class: "num" }, drops)));
  }
  const f = s.flows;
  $("#flows-reach").textContent = !f ? "—" : f.first_ns
    ? `${fmtNum(f.records)} records in ${f.files} files (${fmtBytes(f.disk_bytes)}), from ${fmtTime(f.first_ns)} (${ago(f.first_ns)}) to ${fmtTime(f.last_ns)}`
    : "no flow records";
  const h = $("#health tbody");
  h.replaceChildren();
  const row = (k, v, cls) => h.append(el("tr", {}, el("td", {}, k), el("td", { class: cls || "" }, v)));
  if (health) row("status", health.status || health.error || "?", health.status === "ok" ? "ok" : "bad");
  if (s.capture) {
    const k = s.capture.kernel || {};
    row("interfaces", (s.capture.interfaces || []).join(", "));
    if (s.capture.capture_threads !== undefined) row("capture threads", s.capture.capture_threads);
    row("packets seen", fmtNum(s.capture.packets) + " (" + fmtBytes(s.capture.bytes) + ")");
    row("active connections", fmtNum(s.capture.connections_active));
    row("kernel: received / dropped / interface dropped", `${fmtNum(k.received)} / ${fmtNum(k.dropped)} / ${fmtNum(k.interface_dropped)}`, k.dropped ? "bad" : "");
    for (const n of names) {
      const c = cap[n];
      if (c && c.ring_capacity) row(`RAM ring of ${n}`, `${fmtBytes(c.ring_used)} of ${fmtBytes(c.ring_capacity)} (high water ${fmtBytes(c.ring_high_water)})`);
    }
    if (s.capture.writer_error) row("writer", s.capture.writer_error, "bad");
    row("dynamic classes", s.capture.dynamic_classes);
  } else if (!s.workers) {
    row("capture", "none: this store is served read-only");
  }
  if (s.store && s.store.total) row("segments", `${fmtNum(s.store.total.segments)} (${fmtNum(s.store.total.open)} open, ${fmtNum(s.store.total.bad_sidecar)} with a bad sidecar)`);
  renderWorkers(s);
  renderChart(history, names);
}

function renderWorkers(s) {
  const box = $("#workers");
  box.replaceChildren();
  if (!s.workers) return;
  const t = el("table", { class: "grid", id: "worker-table" }, el("thead", {}, el("tr", {},
    el("th", {}, "worker"), el("th", {}, "url"), el("th", {}, "state"), el("th", {}, "packets stored"), el("th", {}, "oldest packet"))));
  const tb = el("tbody");
  for (const w of s.workers) {
    const st = w.stats || {};
    const tot = (st.store && st.store.total) || {};
    tb.append(el("tr", {}, el("td", {}, w.id), el("td", {}, w.url),
      el("td", { class: w.up ? "ok" : "bad" }, w.up ? (st.live ? "recording" : "read-only") : "down: " + (w.error || "")),
      el("td", { class: "num" }, fmtNum(tot.packets)), el("td", {}, tot.first_ns ? `${fmtTime(tot.first_ns)} (${ago(tot.first_ns)})` : "—")));
  }
  t.append(tb);
  box.append(el("h2", {}, "Workers"), t);
}

// uPlot when it was installed at build time; else (or with no samples yet) a table.
function renderChart(history, names) {
  const box = $("#chart");
  const samples = history.samples || [];
  // A front-end's history is the sum of its workers' (those that answered).
  const missing = Object.entries(history.missing || {});
  const note = $("#chart-note");
  note.textContent = !history.workers ? ""
    : `The sum of ${history.workers.length} worker${history.workers.length === 1 ? "" : "s"}` +
      (missing.length ? `; without ${missing.map(([u, why]) => `${u} (${why})`).join(", ")}.` : ".");
  note.classList.toggle("bad", missing.length > 0);
  if (!samples.length) {
    delete box.dataset.samples;
    if (chart) { chart.destroy(); chart = null; }
    box.replaceChildren(el("p", { class: "note" }, history.interval_s
      ? `No rate sample yet (one every ${history.interval_s} s).`
      : history.workers ? "No rate history: no worker records (read-only stores)."
      : "No rate history: nothing is recorded here (read-only store)."));
    return;
  }
  box.dataset.samples = samples.length;  // (what the browser test waits for)
  const xs = samples.map((s) => Number(BigInt(s.t_ns) / 1000000n) / 1000);
  const series = [{}], data = [xs];
  for (const n of names) {
    for (const [k, label, dash] of [["stored_pps", "stored", null], ["cut_pps", "cut off", [6, 4]], ["dropped_pps", "dropped", [2, 3]]]) {
      data.push(samples.map((s) => (s.classes[n] ? s.classes[n][k] : null)));
      series.push({ label: `${n} ${label} pkt/s`, stroke: color(n), dash: dash || undefined, width: 1.5 });
    }
  }
  if (typeof window.uPlot !== "function") {
    const t = el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "time"), ...series.slice(1).map((s) => el("th", {}, s.label)))));
    const tb = el("tbody");
    for (let i = Math.max(0, xs.length - 30); i < xs.length; i++)
      tb.append(el("tr", {}, el("td", {}, new Date(xs[i] * 1000).toISOString()), ...data.slice(1).map((d) => el("td", { class: "num" }, fmtRate(d[i] || 0)))));
    t.append(tb);
    t.id = "rate-table";
    box.replaceChildren(el("p", { class: "note" }, "(No chart library: it was not installed when tm was built, or the browser could not load it. The rates as a table.)"), t);
    return;
  }
  const key = series.map((s) => s.label).join("|");
  if (chart && key === chartKey) { chart.setData(data); return; }
  if (chart) chart.destroy();
  box.replaceChildren();
  chartKey = key;
  chart = new window.uPlot({ width: Math.min(1100, box.clientWidth || 900), height: 260, series,
    axes: [{}, { label: "packets/s" }],
    // At least the last 10 minutes: a single sample would otherwise span years.
    scales: { x: { time: true, range: (u, min, max) => [Math.min(min, max - 600), max + (history.interval_s || 10)] } } }, data, box);
}

const palette = ["#1f6feb", "#d97706", "#16a34a", "#9333ea", "#dc2626", "#0891b2"];
function color(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return palette[h % palette.length];
}
