// The page's frame: the token (kept in sessionStorage, sent in the Authorization header, never
// in a URL), the API helper every page uses, the pages behind the #hash, the mode badge.
import * as overview from "./overview.js";
import * as query from "./query.js";
import * as flows from "./flows.js";
import * as live from "./live.js";

const pages = { overview, query, flows, live };
const KEY = "tm-token";
export const state = { stats: null, health: null, started: {} };

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers() {
  const t = sessionStorage.getItem(KEY);
  return t ? { Authorization: "Bearer " + t } : {};
}

// fetch() of an API path with the token; throws ApiError with the server's {"error"} message.
export async function api(path, params, opts = {}) {
  const url = params ? path + "?" + new URLSearchParams(params).toString() : path;
  const res = await fetch(url, { ...opts, headers: { ...headers(), ...(opts.headers || {}) } });
  if (res.status === 401) { showLogin("The server refused the token."); throw new ApiError(401, "token refused"); }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { const j = await res.json(); if (j.error) msg = j.error; } catch (_) {}
    throw new ApiError(res.status, msg);
  }
  return res;
}
export async function apiJson(path, params, opts) { return (await api(path, params, opts)).json(); }

// Query parameters without the empty ones.
export function params(o) {
  const p = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && String(v).trim() !== "") p[k] = String(v).trim();
  return p;
}

export const $ = (sel) => document.querySelector(sel);
export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : Math.round(n)) + " " + u[i];  // (a rate's bytes a second: no 617.2011694727759 B)
}
export function fmtNum(n) { return n === undefined || n === null ? "—" : Number(n).toLocaleString("en-US"); }
export function fmtRate(n) {
  if (n === undefined || n === null) return "—";
  return n >= 1e6 ? (n / 1e6).toFixed(2) + " M" : n >= 1e3 ? (n / 1e3).toFixed(1) + " k" : n.toFixed(n < 10 ? 1 : 0);
}
// Nanoseconds since the epoch as an ISO date (UTC, to the second).
export function fmtTime(ns) {
  if (!ns) return "—";
  return new Date(Number(BigInt(ns) / 1000000n)).toISOString().slice(0, 19) + "Z";
}
// "3 d 4 h ago", "5 min 2 s ago".
export function ago(ns, nowMs = Date.now()) {
  if (!ns) return "";
  let s = Math.max(0, Math.round((nowMs - Number(BigInt(ns) / 1000000n)) / 1000));
  const parts = [];
  for (const [u, n] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (s >= n || (u === "s" && parts.length === 0)) { parts.push(Math.floor(s / n) + " " + u); s %= n; }
    if (parts.length === 2) break;
  }
  return parts.join(" ") + " ago";
}

// A packet query's pcap, downloaded by the browser itself (streamed to disk, any size): the page
// asks for a one-time ticket bound to the query (POST /api/v1/download, the token in the header
// as always), then follows the ticket's URL, which holds the ticket, never the token, and is
// good for this one download within a minute. The file is named by the server
// (Content-Disposition).
export async function download(p) {
  const t = await apiJson("/api/v1/download", null, { method: "POST", body: new URLSearchParams(p) });
  const a = el("a", { href: t.url, download: t.name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  return { name: t.name };
}

function showLogin(msg) {
  $("#login").hidden = false;
  document.querySelector("main").hidden = true;
  $("#login-error").textContent = msg || "";
}

async function route() {
  const name = (location.hash || "#overview").slice(1);
  const page = pages[name] ? name : "overview";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  for (const [n, mod] of Object.entries(pages)) {
    const sec = $("#page-" + n);
    const show = n === page;
    if (sec.hidden === !show && state.started[n]) continue;
    sec.hidden = !show;
    if (show) {
      if (!state.started[n]) { state.started[n] = true; mod.init(); }
      mod.show && mod.show();
    } else if (state.started[n]) {
      mod.hide && mod.hide();
    }
  }
}

function setMode() {
  const m = $("#mode");
  const s = state.stats;
  if (s && s.workers && !("live" in s)) {
    m.textContent = "cluster front-end: " + s.workers.length + " workers";
    m.className = "badge";
  } else if (s && s.live) {
    m.textContent = "recording: " + ((s.capture && s.capture.interfaces) || []).join(", ");
    m.className = "badge live";
  } else {
    m.textContent = "read-only: store served without capture";
    m.className = "badge readonly";
  }
  m.title = (s && s.store_path) || "";
}

// Loads the stats with the token held; on 401 shows the login form.
export async function refreshStats() {
  state.stats = await apiJson("/api/v1/stats");
  setMode();
  return state.stats;
}

async function start() {
  $("#logout").hidden = !sessionStorage.getItem(KEY);
  try {
    await refreshStats();
  } catch (e) {
    if (e.status !== 401) { $("#mode").textContent = "error: " + e.message; }
    return;
  }
  $("#login").hidden = true;
  document.querySelector("main").hidden = false;
  await route();
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("#token").value);
  $("#token").value = "";
  start();
});
$("#logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
window.addEventListener("hashchange", route);
start();
