// Flows: the flow records (/api/v1/flows, format json) in a table that sorts by any column,
// with filter, time range and top N; each row downloads its connection's packets.
import { $, el, apiJson, api, params, download, fmtNum, fmtBytes } from "./app.js";

let rows = [], sortKey = null, sortDir = 1;
const cols = [
  ["first", "first"], ["duration", "duration s", true], ["proto", "proto"], ["orig_addr", "originator"],
  ["orig_port", "port", true], ["resp_addr", "responder"], ["resp_port", "port", true], ["packets", "packets", true],
  ["bytes", "bytes", true], ["state", "state"], ["class", "class"], ["cut", "cut"], ["packets_on_disk", "on disk"],
];

export function init() {
  $("#flows-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  const tr = el("tr");
  for (const [k, label, num] of cols)
    tr.append(el("th", { "data-key": k, class: num ? "num" : "", onclick: () => sortBy(k) }, label));
  tr.append(el("th", {}, "packets"));
  $("#flows thead").replaceChildren(tr);
  load();
}

async function load() {
  const err = $("#f-error");
  err.textContent = "";
  try {
    const p = params({ filter: $("#f-filter").value, from: $("#f-from").value, to: $("#f-to").value,
      top: $("#f-top").value, by: $("#f-by").value, format: "json" });
    const text = await (await api("/api/v1/flows", p)).text();
    rows = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    for (const r of rows) {
      r.packets = r.orig_pkts + r.resp_pkts;
      r.bytes = r.orig_bytes + r.resp_bytes;
    }
    $("#f-summary").textContent = `${fmtNum(rows.length)} flows`;
    render();
  } catch (e) {
    rows = [];
    render();
    err.textContent = e.message;
  }
}

function sortBy(k) {
  sortDir = sortKey === k ? -sortDir : (typeof (rows[0] || {})[k] === "number" ? -1 : 1);
  sortKey = k;
  rows.sort((a, b) => {
    const x = a[k], y = b[k];
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), "en", { numeric: true })) * sortDir;
  });
  for (const th of document.querySelectorAll("#flows th[data-key]"))
    if (th.dataset.key === k) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  render();
}

// The filter and time range of one flow's packets (as tm query --flow builds it).
// The flow's packets: its id selects them (the server narrows its 5-tuple to the flow's lifetime).
function flowQuery(r) {
  return { flow_id: String(r.id) };
}

function render() {
  const tb = $("#flows tbody");
  tb.replaceChildren();
  for (const r of rows.slice(0, 5000)) {
    const tr = el("tr");
    for (const [k, , num] of cols) {
      let v = r[k];
      if (k === "bytes") v = fmtBytes(v);
      else if (k === "duration") v = Number(v).toFixed(3);
      else if (k === "orig_port" || k === "resp_port") v = String(v);  // (a port is no amount: 55080, not 55,080)
      else if (typeof v === "number") v = fmtNum(v);
      else if (typeof v === "boolean") v = v ? "yes" : "";
      tr.append(el("td", { class: num ? "num" : "", "data-key": k, "data-value": String(r[k]) }, v === null || v === undefined ? "" : v));
    }
    const onDisk = r.packets_on_disk && !/^no/.test(r.packets_on_disk);
    tr.append(el("td", {}, onDisk
      ? el("a", { href: "#flows", class: "dl", "data-flow": String(r.id), onclick: (ev) => { ev.preventDefault(); download(flowQuery(r)).catch((e) => { $("#f-error").textContent = e.message; }); } }, "pcap")
      : el("span", { class: "note" }, "evicted")));
    tb.append(tr);
  }
}
