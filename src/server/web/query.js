// Query: the filter's plan as you type (/api/v1/explain, tm query --explain's), a time range,
// the count first (/api/v1/count), then the pcap download and a first-packets preview.
import { $, api, apiJson, params, download, fmtNum } from "./app.js";
import { readPackets, oneLine } from "./pcap.js";

let explainTimer = null, explainSeq = 0, lastRun = null;

export function init() {
  $("#q-filter").addEventListener("input", () => {
    clearTimeout(explainTimer);
    explainTimer = setTimeout(explain, 200);
    $("#q-download").disabled = true;
  });
  for (const b of document.querySelectorAll("#query-form [data-last]")) {
    b.addEventListener("click", () => {
      const s = Number(b.dataset.last);
      const now = new Date();
      $("#q-from").value = s ? new Date(now.getTime() - s * 1000).toISOString() : "";
      $("#q-to").value = s ? now.toISOString() : "";
      $("#q-download").disabled = true;
    });
  }
  for (const id of ["#q-from", "#q-to"]) $(id).addEventListener("input", () => { $("#q-download").disabled = true; });
  $("#query-form").addEventListener("submit", (ev) => { ev.preventDefault(); count(); });
  $("#q-download").addEventListener("click", async () => {
    if (!lastRun) return;
    try {
      const d = await download(lastRun);
      $("#q-result").textContent += ` — downloading ${d.name}`;
    } catch (e) { $("#q-error").textContent = e.message; }
  });
  explain();
}

function request() {
  return params({ filter: $("#q-filter").value, from: $("#q-from").value, to: $("#q-to").value });
}

async function explain() {
  const seq = ++explainSeq;
  const plan = $("#q-plan"), err = $("#q-error");
  try {
    const j = await apiJson("/api/v1/explain", params({ filter: $("#q-filter").value }));
    if (seq !== explainSeq) return;
    let t = "";
    if (j.parsed) t += "parsed: " + j.parsed + "\n";
    t += "plan: " + j.plan;
    if (j.workers) t += `\ncluster: ${j.why}; workers asked: ${j.workers.map((w) => w.url).join(", ")}`;
    plan.textContent = t;
    err.textContent = "";
  } catch (e) {
    if (seq !== explainSeq) return;
    plan.textContent = "";
    err.textContent = e.message;
  }
}

async function count() {
  const p = request();
  const res = $("#q-result"), err = $("#q-error"), pre = $("#q-preview");
  $("#q-download").disabled = true;
  res.textContent = "counting…";
  err.textContent = "";
  pre.textContent = "";
  lastRun = null;
  try {
    const j = await apiJson("/api/v1/count", p);
    res.textContent = `${fmtNum(j.packets)} packets match`;
    res.dataset.packets = j.packets;
    lastRun = p;
    $("#q-download").disabled = j.packets === 0;
  } catch (e) {
    res.textContent = "";
    err.textContent = e.message;
    return;
  }
  // (a preview that fails leaves the count: it erased it)
  if (res.dataset.packets > 0) await preview(p).catch((e) => { pre.textContent = `preview: ${e.message}`; });
}

async function preview(p) {
  const pre = $("#q-preview");
  const lines = [];
  const r = await api("/api/v1/query", p);
  await readPackets(r, 20, (pk) => lines.push(oneLine(pk)));
  pre.textContent = lines.join("\n");
}
