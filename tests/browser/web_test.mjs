// Drives Debian's chromium (/usr/bin/chromium) through playwright-core over tm's web page.
// Run by tests/e2e/test_web.py, which checks what this prints (one JSON object) against tm.
// Usage: node web_test.mjs SCENARIO URL OUTDIR [TOKEN] [FILTER]
//   store: login, overview, query (count, preview, download), bad filter, flows sort, live (read-only)
//   live:  add and remove a dynamic class on a capturing tm serve
//   chart: a tm frontend's overview shows the rate chart of its recording workers; with the chart
//          library blocked, the same rates as a table
// playwright-core is found in PW_DIR (the build directory's browser-tests/node_modules).
import { createRequire } from "node:module";
import path from "node:path";
import { execFileSync } from "node:child_process";

const [scenario, url, outdir, token = "", filter = ""] = process.argv.slice(2);
const require = createRequire(path.join(process.env.PW_DIR || ".", "package.json"));
const { chromium } = require("playwright-core");

const out = { scenario, urls: [], errors: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const T = 60000;  // the most a step may take on a loaded machine
try {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on("request", (r) => out.urls.push({ url: r.url(), auth: !!r.headers()["authorization"] }));
  page.on("pageerror", (e) => out.errors.push(String(e)));
  // (An API error the page shows, 401 before the login, is logged by chromium as a failed load.)
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) out.errors.push("console: " + m.text()); });
  const prefix = process.env.SHOT_PREFIX || "";
  const shot = (name) => page.screenshot({ path: path.join(outdir, prefix + name), fullPage: true });

  await page.goto(url + "/");
  if (scenario === "store") {
    // The token (when the server has one): asked for by the login form.
    if (token) {
      await page.waitForSelector("#login-form", { state: "visible" });
      out.login_shown = true;
      await shot("web-login.png");
      await page.fill("#token", token);
      await page.click("#login-form button[type=submit]");
    }

    // Overview
    await page.waitForFunction(() => document.querySelectorAll("#classes tbody tr[data-class]").length >= 2);
    out.mode = await page.textContent("#mode");
    out.classes = await page.$$eval("#classes tbody tr[data-class]", (rows) =>
      Object.fromEntries(rows.map((r) => [r.dataset.class, r.querySelector("td.reach").innerText])));
    out.flows_reach = await page.textContent("#flows-reach");
    out.workers = await page.$$eval("#worker-table tbody tr", (rows) => rows.map((r) => r.innerText));
    await shot("web-overview.png");

    // Query: plan as you type, count, preview, download
    await page.click("nav a[data-page=query]");
    await page.fill("#q-filter", filter);
    await page.waitForFunction(() => document.querySelector("#q-plan").textContent.includes("plan: indexes"));
    out.plan = await page.textContent("#q-plan");
    await page.click("#q-count");
    await page.waitForSelector("#q-result[data-packets]");
    out.count = Number(await page.getAttribute("#q-result", "data-packets"));
    await page.waitForFunction(() => document.querySelector("#q-preview").textContent.length > 0);
    out.preview = (await page.textContent("#q-preview")).split("\n");
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#q-download")]);
    out.download_name = dl.suggestedFilename();
    out.download_url = dl.url();  // (the browser's own download: not among the page's requests)
    await dl.saveAs(path.join(outdir, prefix + "web-query.pcap"));
    await shot("web-query.png");

    // A syntax error: the caret message under the filter
    await page.fill("#q-filter", "host 10.0.0.1 and and port 80");
    await page.waitForFunction(() => document.querySelector("#q-error").textContent.length > 0);
    out.syntax_error = await page.textContent("#q-error");
    await shot("web-query-error.png");

    // Flows: sorted by bytes, descending then ascending
    await page.click("nav a[data-page=flows]");
    await page.waitForFunction(() => document.querySelectorAll("#flows tbody tr").length > 1);
    const col = async () => page.$$eval("#flows tbody td[data-key=bytes]", (tds) => tds.map((t) => Number(t.dataset.value)));
    out.flows_unsorted = await col();
    await page.click("#flows th[data-key=bytes]");
    out.flows_sort1 = await col();
    out.flows_sort1_dir = await page.getAttribute("#flows th[data-key=bytes]", "aria-sort");
    await page.click("#flows th[data-key=bytes]");
    out.flows_sort2 = await col();
    out.flows_sort2_dir = await page.getAttribute("#flows th[data-key=bytes]", "aria-sort");
    await shot("web-flows.png");
    // A flow's packets: its row's pcap link downloads them (by its id).
    out.flow_id = await page.getAttribute("#flows tbody a.dl", "data-flow");
    const [fdl] = await Promise.all([page.waitForEvent("download"), page.click("#flows tbody a.dl")]);
    out.flow_download_name = fdl.suggestedFilename();
    await fdl.saveAs(path.join(outdir, prefix + "web-flow.pcap"));

    // Live: a read-only store says so
    await page.click("nav a[data-page=live]");
    // (the page is shown, and set up, by the hashchange handler: after the click returns)
    await page.waitForSelector("#page-live", { state: "visible" });
    out.live_readonly = await page.isVisible("#live-readonly");
    await shot("web-live-readonly.png");
    out.session_token = await page.evaluate(() => sessionStorage.getItem("tm-token") !== null);
  } else if (scenario === "live") {
    await page.waitForFunction(() => document.querySelectorAll("#classes tbody tr[data-class]").length >= 1);
    out.mode = await page.textContent("#mode");
    await page.click("nav a[data-page=live]");
    // (the page is shown, and set up, by the hashchange handler: after the click returns)
    await page.waitForSelector("#page-live", { state: "visible" });
    out.live_readonly = await page.isVisible("#live-readonly");
    const host = "10.99.0.7";
    await page.fill("#d-host", host);
    await page.selectOption("#d-class", filter);
    await page.fill("#d-for", "1h");
    await page.click("#d-form button[type=submit]");
    await page.waitForSelector(`#dyn tr[data-host="${host}"]`);
    out.added = await page.innerText(`#dyn tr[data-host="${host}"]`);
    out.api_after_add = await page.evaluate(async () => (await fetch("/api/v1/classes")).json());
    out.connections_shown = await page.$$eval("#conns tbody tr", (r) => r.length);
    await shot("web-live.png");
    await page.click(`#dyn tr[data-host="${host}"] button.remove`);
    await page.waitForSelector(`#dyn tr[data-host="${host}"]`, { state: "detached" });
    out.api_after_remove = await page.evaluate(async () => (await fetch("/api/v1/classes")).json());

    // A subscription: packets sent while it runs appear in the page (REPLAY: the command that sends them).
    await page.fill("#s-filter", "tcp");
    await page.click("#s-start");
    await page.waitForFunction(() => document.querySelector("#s-status").textContent.startsWith("subscribed"));
    const replay = JSON.parse(process.env.REPLAY || "[]");
    execFileSync(replay[0], replay.slice(1), { stdio: "ignore" });
    await page.waitForFunction(() => /subscribed: [1-9]/.test(document.querySelector("#s-status").textContent));
    out.subscribed_lines = (await page.textContent("#s-packets")).split("\n");
    await shot("web-live-subscription.png");
    await page.click("#s-stop");

    // The connections the replay left, and a per-connection control from the page.
    await page.click("#c-form button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#conns tbody tr").length > 0);
    out.connections_shown = await page.$$eval("#conns tbody tr", (r) => r.length);
    out.suspended_conn = await page.getAttribute("#conns tbody tr:first-child", "data-conn");
    await page.click("#conns tbody tr:first-child td.cutoff button");
    await page.waitForFunction(() => document.querySelector("#conns tbody tr:first-child td.cutoff").textContent.startsWith("suspended"));
    out.api_connections = await page.evaluate(async () => (await fetch("/api/v1/connections")).json());
    await shot("web-live-connections.png");
  } else if (scenario === "chart") {
    // The chart: once the front-end's summed history has a sample with stored packets, the page
    // draws it (a uPlot canvas); then the same history as a table when uPlot cannot load.
    const stored = () => page.evaluate(async () => {
      const h = await (await fetch("/api/v1/history")).json();
      return h.samples.filter((s) => Object.values(s.classes).some((c) => c.stored_pps > 0)).length;
    });
    const deadline = Date.now() + 180000;  // two 10 s samples of each worker, on a loaded machine
    while ((await stored()) < 2) {  // (two: a line in the screenshot)
      if (Date.now() > deadline) throw new Error("no rate sample with stored packets from the front-end");
      await page.waitForTimeout(1000);
    }
    const before = Number(await page.evaluate(async () => (await (await fetch("/api/v1/history")).json()).samples.length));
    await page.waitForFunction((n) => Number(document.querySelector("#chart").dataset.samples || 0) >= n, before);
    await page.waitForSelector("#chart .uplot canvas");
    out.mode = await page.textContent("#mode");
    out.chart_samples = Number(await page.getAttribute("#chart", "data-samples"));
    out.chart_note = await page.textContent("#chart-note");
    out.chart_series = await page.$$eval("#chart .u-legend .u-series th", (ths) => ths.map((t) => t.innerText.trim()).filter((t) => t));
    out.workers = await page.$$eval("#worker-table tbody tr", (rows) => rows.map((r) => r.innerText));
    await shot("web-overview.png");

    const p2 = await ctx.newPage();
    p2.setDefaultTimeout(T);
    p2.on("pageerror", (e) => out.errors.push(String(e)));
    await p2.route("**/static/uPlot.iife.min.js", (r) => r.abort());
    await p2.goto(url + "/");
    await p2.waitForSelector("#rate-table tbody tr");
    out.table_uplot = await p2.evaluate(() => typeof window.uPlot);
    out.table_head = await p2.$$eval("#rate-table thead th", (ths) => ths.map((t) => t.innerText));
    out.table_rows = await p2.$$eval("#rate-table tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.innerText)));
    out.table_history = await p2.evaluate(async () => (await fetch("/api/v1/history")).json());
    await p2.screenshot({ path: path.join(outdir, prefix + "web-overview-table.png"), fullPage: true });
  }
} catch (e) {
  out.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
