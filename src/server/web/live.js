// Live: active connections with their controls (/api/v1/connections, .../control), dynamic
// classes (/api/v1/classes), and a subscription (/api/v1/subscribe) shown packet by packet.
// A read-only store has none of them (409): the page says so instead.
import { $, el, api, apiJson, params, state, fmtNum, fmtBytes } from "./app.js";
import { PcapReader, oneLine } from "./pcap.js";

let sub = null, timer = null;

export function init() {
  const s = state.stats || {};
  // A front-end is read-only when none of its workers records.
  const readOnly = s.workers ? !s.workers.some((w) => w.stats && w.stats.live) : !s.live;
  $("#live-readonly").hidden = !readOnly;
  $("#live-parts").hidden = readOnly;
  if (readOnly) return;
  const classes = Object.keys((s.capture && s.capture.classes) || (s.store && s.store.classes) || {}).sort();
  $("#d-class").replaceChildren(...classes.map((c) => el("option", {}, c)));
  $("#c-form").addEventListener("submit", (ev) => { ev.preventDefault(); conns(); });
  $("#d-form").addEventListener("submit", (ev) => { ev.preventDefault(); addClass(); });
  $("#s-form").addEventListener("submit", (ev) => { ev.preventDefault(); subscribe(); });
  $("#s-stop").addEventListener("click", stopSub);
}
export function show() {
  if ($("#live-parts").hidden) return;
  conns(); classList();
  timer = setInterval(() => { conns(); classList(); }, 5000);
}
export function hide() { clearInterval(timer); timer = null; }

// The connection's own filter: its hosts, protocol and ports (an ICMP or other row without its
// protocol named every connection of the two hosts).
function connFilter(c) {
  const f = `host ${c.orig_addr} and host ${c.resp_addr}`;
  if (["tcp", "udp", "sctp"].includes(c.proto)) return `${f} and ${c.proto} and port ${c.orig_port} and port ${c.resp_port}`;
  if (c.proto === "icmp" || c.proto === "icmp6") return `${f} and ${c.proto}`;
  return `${f} and proto ${c.proto}`;
}
// "a.b.c.d:port", "[v6]:port" (as tm connections prints them: "::1:37880" read as an address)
const endpoint = (a, p) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`);
const PROTO = { 6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmp6" };

async function conns() {
  const err = $("#c-error");
  try {
    const list = await apiJson("/api/v1/connections", params({ filter: $("#c-filter").value, top: $("#c-top").value }));
    err.textContent = "";
    const tb = $("#conns tbody");
    tb.replaceChildren();
    for (const c of Array.isArray(list) ? list : list.connections || []) {
      c.proto = PROTO[c.proto] || c.proto;
      const toggle = (key, on) => el("button", { type: "button", onclick: () => control(c, key, !on) }, on ? "resume" : "suspend");
      tb.append(el("tr", { "data-conn": `${c.orig_addr} ${c.orig_port} ${c.resp_addr} ${c.resp_port}` },
        el("td", {}, c.proto), el("td", {}, endpoint(c.orig_addr, c.orig_port)), el("td", {}, endpoint(c.resp_addr, c.resp_port)),
        el("td", { class: "num" }, fmtNum(c.packets)), el("td", { class: "num" }, fmtBytes(c.bytes)),
        el("td", { class: "num" }, fmtNum(c.stored_packets)), el("td", {}, c.class), el("td", {}, c.cut ? "cut" : ""),
        el("td", { class: "cutoff" }, c.cutoff_suspended ? "suspended " : "", toggle("suspend_cutoff", c.cutoff_suspended)),
        el("td", { class: "timeout" }, c.timeout_suspended ? "suspended " : "", toggle("suspend_timeout", c.timeout_suspended))));
    }
  } catch (e) { err.textContent = e.message; }
}

async function control(c, key, on) {
  try {
    await api("/api/v1/connections/control", null, { method: "POST", body: JSON.stringify({ filter: connFilter(c), [key]: on }) });
    conns();
  } catch (e) { $("#c-error").textContent = e.message; }
}

async function classList() {
  const err = $("#d-error");
  try {
    const list = await apiJson("/api/v1/classes");
    const tb = $("#dyn tbody");
    tb.replaceChildren();
    for (const d of Array.isArray(list) ? list : []) {
      tb.append(el("tr", { "data-host": d.host }, el("td", {}, d.host), el("td", {}, d.class), el("td", {}, d.expires || "never"),
        el("td", {}, el("button", { type: "button", class: "remove", onclick: () => removeClass(d.host) }, "remove"))));
    }
  } catch (e) { err.textContent = e.message; }
}

async function addClass() {
  const err = $("#d-error");
  try {
    await api("/api/v1/classes", null, { method: "POST", body: JSON.stringify(params({ host: $("#d-host").value, class: $("#d-class").value, for: $("#d-for").value })) });
    err.textContent = "";
    $("#d-host").value = "";
    await classList();
  } catch (e) { err.textContent = e.message; }
}

async function removeClass(host) {
  try {
    await api("/api/v1/classes/" + encodeURIComponent(host), null, { method: "DELETE" });
    $("#d-error").textContent = "";
    await classList();
  } catch (e) { $("#d-error").textContent = e.message; }
}

async function subscribe() {
  stopSub();
  const ctl = new AbortController();
  sub = ctl;
  const out = $("#s-packets"), status = $("#s-status"), err = $("#s-error");
  err.textContent = "";
  out.textContent = "";
  $("#s-start").disabled = true;
  $("#s-stop").disabled = false;
  const lines = [];
  let n = 0;
  try {
    const res = await api("/api/v1/subscribe", params({ filter: $("#s-filter").value }), { signal: ctl.signal });
    status.textContent = "subscribed: waiting for packets…";
    const pr = new PcapReader((p) => {
      n++;
      lines.push(oneLine(p));
      if (lines.length > 200) lines.shift();
    });
    const reader = res.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pr.push(value);
      out.textContent = lines.join("\n");
      status.textContent = `subscribed: ${fmtNum(n)} packets (the last 200 shown)`;
    }
    status.textContent = `ended after ${fmtNum(n)} packets`;
  } catch (e) {
    if (e.name !== "AbortError") err.textContent = e.message;
    else status.textContent = `stopped after ${fmtNum(n)} packets`;
  } finally {
    if (sub === ctl) { sub = null; $("#s-start").disabled = false; $("#s-stop").disabled = true; }
  }
}

function stopSub() { if (sub) sub.abort(); }
