"""The web page (GET /), end to end in a real browser: Debian's chromium driven by playwright-core
(tests/browser/web_test.mjs; installed from npm into the build directory at build time, no browser
downloaded). A store recorded from the corpus with two classes is served by tm serve (with a token:
the login form) and by a tm frontend in front of it; the page's overview, query (plan, count,
preview, download compared byte for byte with tm query's), syntax error, flows sorting; and on a tm
serve capturing in a network namespace, a dynamic class added and removed in the page.

Screenshots of each page are left in the build directory (web-screenshots/). Without chromium,
node or playwright-core the test fails (it does not skip): `make` installs them."""
import datetime
import glob
import json
import os
import shutil
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from tmtest import TM, StoreTest, TmProcess, corpus, listening_port, read_pcap, record, run, tcpdump_packets, tm, veth_namespace

BUILD = os.path.dirname(os.path.abspath(TM))
PW_DIR = os.path.join(BUILD, "browser-tests")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser", "web_test.mjs")
SHOTS = os.path.join(BUILD, "web-screenshots")
CHROMIUM = "/usr/bin/chromium"
FILES = [corpus("mixed", "bro.org.pcap"), corpus("mixed", "wikipedia.pcap")]
FILTER = "tcp port 80"
WAIT = 60
CONFIG = """
[[class]]
name = "web"
filter = "tcp port 80 or tcp port 443"
cutoff = "none"
precedence = 10

[[class]]
name = "default"
cutoff = "4k"
"""


def iso(ns):
    return datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Web(TmProcess, StoreTest):
    proc_name = "tm serve"

    def setUp(self):
        super().setUp()
        # Fail loudly: these are what `make` installs (scripts/setup.sh, scripts/browser_deps.sh).
        self.assertTrue(os.access(CHROMIUM, os.X_OK), "%s missing: install Debian's chromium (scripts/setup.sh)" % CHROMIUM)
        self.assertTrue(shutil.which("node"), "node missing (scripts/setup.sh)")
        self.assertTrue(os.path.isdir(os.path.join(PW_DIR, "node_modules", "playwright-core")),
                        "playwright-core missing in %s: see %s/npm.log (scripts/browser_deps.sh)" % (PW_DIR, PW_DIR))
        os.makedirs(SHOTS, exist_ok=True)
        self.conf = self.path("tm.toml")
        with open(self.conf, "w") as f:
            f.write(CONFIG)

    def spawn(self, args, name, prefix=()):
        return self.spawn_process(list(prefix) + [TM] + args, name)

    def serve(self, args, name, prefix=()):
        """Starts `tm ARGS --listen 127.0.0.1:0` (tm serve or tm frontend), reads the port it bound from
        what it prints and waits for /health there: (url, process). No other suite can take the port
        between its choice and the bind."""
        p = self.spawn(args + ["--listen", "127.0.0.1:0"], name, prefix)
        url = "http://127.0.0.1:%d" % listening_port(p, p.errfile, name, WAIT)
        self.wait_health(url, p, prefix)
        return url, p

    def wait_health(self, url, p, prefix=()):
        deadline = time.monotonic() + WAIT
        probe = ["python3", "-c", "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)", url + "/health"]
        while time.monotonic() < deadline:
            if p.poll() is not None:
                p.errfile.seek(0)
                self.fail("exited (%d): %s" % (p.returncode, p.errfile.read().decode(errors="replace")))
            if subprocess.run(list(prefix) + probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.1)
        self.fail("%s did not answer /health within %d s" % (url, WAIT))

    def browse(self, scenario, url, token="", arg="", prefix=(), shot_prefix=""):
        env = dict(os.environ, PW_DIR=PW_DIR, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", CHROMIUM=CHROMIUM,
                   SHOT_PREFIX=shot_prefix)
        p = subprocess.run(list(prefix) + ["node", SCRIPT, scenario, url, SHOTS, token, arg], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        self.assertNotIn("failure", out, "%s\n%s" % (out.get("failure"), json.dumps(out)[:3000]))
        self.assertEqual(out["errors"], [], "errors in the page")
        return out

    def record_store(self):
        tm("record", "--store", self.store, "--config", self.conf, *sum([["--read", f] for f in FILES], []))

    def check_store_pages(self, out, token, name):
        stats = json.loads(tm("stats", "--store", self.store, "--json").stdout)
        classes = stats["classes"] if "classes" in stats else stats["store"]["classes"]
        # Overview: both classes, each with its reach (oldest packet as a date, and how long ago).
        self.assertEqual(sorted(out["classes"]), ["default", "web"], out["classes"])
        for c, text in out["classes"].items():
            self.assertIn(iso(classes[c]["first_ns"]), text, c)
            self.assertRegex(text, r"\d+ (d|h|min|s)( \d+ (h|min|s))? ago", c)
        self.assertIn("records", out["flows_reach"])
        # Query: the plan, the count, the preview, and the download equal to tm query's answer.
        self.assertIn("plan: indexes", out["plan"])
        ref = self.path("ref.pcap")
        tm("query", "--store", self.store, "-q", "-w", ref, FILTER)
        want = read_pcap(ref)
        self.assertGreater(len(want), 0)
        self.assertEqual(out["count"], len(want))
        with open(ref, "rb") as a, open(os.path.join(SHOTS, name + "web-query.pcap"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "the page's download differs from tm query's answer")
        self.assertRegex(out["download_name"], r"^tm-tcp_port_80-start-end\.pcap$")
        first = tcpdump_packets(ref)[0]  # "TIME IP a.b.c.d.p > e.f.g.h.q: Flags [S], ..."
        self.assertEqual(len(out["preview"]), min(20, len(want)))
        self.assertIn(first.split(" ", 1)[1].split(":")[0], out["preview"][0])
        # The syntax error as the CLI prints it (the caret under the token).
        bad = tm("query", "--store", self.store, "--count", "host 10.0.0.1 and and port 80", check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertEqual(out["syntax_error"].strip(), bad.stderr.decode().strip())
        self.assertIn("^", out["syntax_error"])
        # Flows: sorted by bytes, one way then the other.
        self.assertGreater(len(out["flows_unsorted"]), 1)
        self.assertEqual(out["flows_sort1"], sorted(out["flows_unsorted"], reverse=True))
        self.assertEqual(out["flows_sort1_dir"], "descending")
        self.assertEqual(out["flows_sort2"], sorted(out["flows_unsorted"]))
        self.assertEqual(out["flows_sort2_dir"], "ascending")
        # A flow row's download: the flow's packets, as tm query --flow gives them.
        ref = self.path("flow-ref.pcap")
        tm("query", "--store", self.store, "-q", "-w", ref, "--flow", out["flow_id"])
        self.assertGreater(len(read_pcap(ref)), 0)
        with open(ref, "rb") as a, open(os.path.join(SHOTS, name + "web-flow.pcap"), "rb") as b:
            self.assertTrue(a.read() == b.read(), "the page's flow download differs from tm query --flow's answer")
        self.assertEqual(out["flow_download_name"], "tm-flow_%s-start-end.pcap" % out["flow_id"])
        # The download: a ticket asked for with the token (POST /api/v1/download), then the browser's
        # own GET of the ticket's URL (streamed to disk), which holds the ticket, not the token, and
        # is good once.
        posts = [u for u in out["urls"] if u["url"].endswith("/api/v1/download")]
        self.assertEqual(len(posts), 2, out["urls"])  # the query's, and the flow row's
        self.assertRegex(out["download_url"], r"/api/v1/download/[0-9a-f]{32}$")
        if token:
            self.assertNotIn(token, out["download_url"])
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(out["download_url"])
        self.assertEqual(e.exception.code, 410)
        self.assertIn("used already", json.loads(e.exception.read())["error"])
        # The token: in the header of every API request, never in a URL.
        api = [u for u in out["urls"] if "/api/" in u["url"]]
        self.assertTrue(api)
        for u in out["urls"]:
            if token:
                self.assertNotIn(token, u["url"])
        if token:
            # Only the first request (which finds that a token is needed) goes without it.
            self.assertFalse(api[0]["auth"])
            self.assertEqual([u for u in api[1:] if not u["auth"]], [])
            self.assertTrue(out["session_token"])

    def test_store_pages_and_frontend(self):
        self.record_store()
        token = "s3cret-web-token"
        tf = self.path("token")
        with open(tf, "w") as f:
            f.write(token + "\n")
        url, p = self.serve(["serve", "--store", self.store, "--token-file", tf], "serve")
        # The page itself needs no token; the API does.
        with urllib.request.urlopen(url + "/") as r:
            self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
            self.assertIn(b"<title>tm", r.read())
        with urllib.request.urlopen(url + "/static/app.js") as r:
            self.assertTrue(r.headers["Content-Type"].startswith("text/javascript"))
            etag = r.headers["ETag"]
        req = urllib.request.Request(url + "/static/app.js", headers={"If-None-Match": etag})
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        self.assertEqual(e.exception.code, 304)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "/api/v1/stats")
        self.assertEqual(e.exception.code, 401)

        out = self.browse("store", url, token, FILTER)
        self.assertTrue(out["login_shown"])
        self.assertIn("read-only", out["mode"])
        self.assertTrue(out["live_readonly"])
        self.assertEqual(out["workers"], [])
        self.check_store_pages(out, token, "")

        # The same pages through a tm frontend in front of that tm serve.
        conf = self.path("cluster.toml")
        with open(conf, "w") as f:
            f.write('timeout = "30s"\n[[worker]]\nurl = "%s"\ntoken_file = "%s"\n' % (url, tf))
        furl, fe = self.serve(["frontend", "--config", conf], "frontend")
        out = self.browse("store", furl, "", FILTER, shot_prefix="frontend-")
        self.assertIn("cluster front-end", out["mode"])
        # Each worker's state: the one worker, up, serving its store read-only.
        self.assertEqual(len(out["workers"]), 1, out["workers"])
        self.assertIn(url, out["workers"][0])
        self.assertIn("read-only", out["workers"][0])
        self.assertTrue(out["live_readonly"])  # no worker records
        self.check_store_pages(out, "", "frontend-")

    def test_dynamic_class_on_a_capturing_serve(self):
        ns, _ = veth_namespace(self, "tmweb", "tmwsend", "tmwcap")
        prefix = ["ip", "netns", "exec", ns]
        url, p = self.serve(["serve", "--store", self.store, "--config", self.conf, "-i", "tmwcap"], "serve", prefix)
        os.environ["REPLAY"] = json.dumps(["tcpreplay", "-q", "-i", "tmwsend", "--mbps", "10", corpus("mixed", "bro.org.pcap")])
        self.addCleanup(os.environ.pop, "REPLAY", None)
        out = self.browse("live", url, "", "web", prefix=prefix)
        self.assertIn("recording", out["mode"])
        self.assertFalse(out["live_readonly"])
        self.assertIn("10.99.0.7", out["added"])
        self.assertEqual([(d["host"], d["class"]) for d in out["api_after_add"]], [("10.99.0.7", "web")])
        self.assertIsNotNone(out["api_after_add"][0]["expires"])
        self.assertEqual(out["api_after_remove"], [])
        # The subscription showed the replayed TCP packets, one line each.
        sent = [p for p in tcpdump_packets(corpus("mixed", "bro.org.pcap"), "tcp")]
        self.assertGreater(len(out["subscribed_lines"]), 0)
        self.assertLessEqual(len(out["subscribed_lines"]), min(200, len(sent)))
        for line in out["subscribed_lines"]:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} IP6? .* > .*: TCP .*length \d+$")
        # The connections table, and the cutoff of its first (largest) connection suspended from the page.
        self.assertGreater(out["connections_shown"], 0)
        conns = out["api_connections"]
        self.assertGreaterEqual(len(conns), out["connections_shown"])
        key = lambda c: "%s %d %s %d" % (c["orig_addr"], c["orig_port"], c["resp_addr"], c["resp_port"])
        self.assertIn(out["suspended_conn"], [key(c) for c in conns])
        for c in conns:
            self.assertEqual(c["cutoff_suspended"], key(c) == out["suspended_conn"], c)

    def test_frontend_rate_chart(self):
        """A tm frontend's overview: the rate chart of its workers' summed histories (two tm serve recording
        the same replay in a namespace, and a third worker that is down, named as missing); the sum checked
        against the workers' own histories; the table shown instead when the chart library cannot load."""
        ns, _ = veth_namespace(self, "tmwch", "tmcsend", "tmccap")
        prefix = ["ip", "netns", "exec", ns]
        urls = []
        for i in range(2):
            u, _ = self.serve(["serve", "--store", self.path("store%d" % i), "--config", self.conf, "-i", "tmccap"],
                              "serve%d" % i, prefix)
            urls.append(u)
        # Nothing listens there: the front-end runs in the test's own network namespace, where only
        # this test's processes listen, on ports the system chose (never 1).
        down = "http://127.0.0.1:1"
        conf = self.path("cluster.toml")
        with open(conf, "w") as f:
            f.write('timeout = "10s"\n' + "".join('[[worker]]\nurl = "%s"\n' % u for u in urls + [down]))
        furl, fe = self.serve(["frontend", "--config", conf], "frontend", prefix)
        # Traffic all along (the workers take a sample every 10 s), slow enough for a loaded machine.
        self.spawn_process(prefix + ["tcpreplay", "-q", "-i", "tmcsend", "--pps", "200", "--loop", "0",
                                     corpus("mixed", "bro.org.pcap")], "replay")

        out = self.browse("chart", furl, "", prefix=prefix, shot_prefix="frontend-live-")
        self.assertIn("cluster front-end", out["mode"])
        self.assertGreater(out["chart_samples"], 0)
        self.assertIn("web stored pkt/s", out["chart_series"])
        self.assertIn("The sum of 2 workers; without %s" % down, out["chart_note"])
        self.assertEqual(len(out["workers"]), 3, out["workers"])

        # The API: the front-end's history is the sum of its workers' on the 10 s grid.
        h, headers = self.ns_get(prefix, furl + "/api/v1/history")
        self.assertEqual(h["workers"], urls)
        self.assertEqual(list(h["missing"]), [down])
        self.assertEqual(headers.get("X-TM-Missing-Workers"), down)
        self.assertIn(down + ": ", headers.get("X-TM-Missing-Reasons"))
        self.assertEqual(h["interval_s"], 10)
        parts = [self.ns_get(prefix, u + "/api/v1/history")[0] for u in urls]  # taken after: they hold more
        grid = 10 * 10**9
        cells = []
        for part in parts:
            c = {}
            for smp in part["samples"]:
                c.setdefault(smp["t_ns"] // grid * grid, []).append(smp)
            cells.append(c)
        self.assertGreater(len(h["samples"]), 0)
        stored = 0
        for smp in h["samples"]:
            self.assertEqual(smp["t_ns"] % grid, 0)
            mine = [c[smp["t_ns"]] for c in cells if smp["t_ns"] in c]
            self.assertEqual(smp["workers"], len(mine), smp)
            for cls in ("web", "default"):
                for key in ("stored_pps", "cut_pps", "seen_bps", "dropped_pps"):
                    want = sum(sum(x["classes"][cls][key] for x in ss) / len(ss) for ss in mine)
                    self.assertAlmostEqual(smp["classes"][cls][key], want, delta=1e-6 * max(1, want), msg=(cls, key, smp))
            stored += smp["classes"]["web"]["stored_pps"] + smp["classes"]["default"]["stored_pps"]
        self.assertGreater(stored, 0)

        # Without uPlot (blocked in the browser): a table of the same rates, newest 30 samples.
        self.assertEqual(out["table_uplot"], "undefined")
        head = out["table_head"]
        self.assertEqual(head[0], "time")
        self.assertIn("web stored pkt/s", head)
        hist = {datetime.datetime.fromtimestamp(smp["t_ns"] / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"): smp
                for smp in out["table_history"]["samples"]}  # taken after the table: holds every row's time
        self.assertGreater(len(out["table_rows"]), 0)
        self.assertLessEqual(len(out["table_rows"]), 30)
        col = head.index("web stored pkt/s")
        for row in out["table_rows"]:
            self.assertIn(row[0], hist)
            want = hist[row[0]]["classes"]["web"]["stored_pps"]
            self.assertAlmostEqual(rate_value(row[col]), want, delta=0.06 * want + 0.06, msg=row)

    def ns_get(self, prefix, url):
        """GET url from inside the namespace: (JSON body, headers)."""
        code = ("import json,sys,urllib.request; r=urllib.request.urlopen(sys.argv[1], timeout=30); "
                "print(json.dumps([json.loads(r.read()), dict(r.headers)]))")
        body, headers = json.loads(run(list(prefix) + ["python3", "-c", code, url]).stdout)
        return body, headers


def rate_value(text):
    """The number the page's fmtRate wrote ("12.3 k", "1.05 M", "7.5")."""
    text = text.strip()
    for suffix, k in ((" M", 1e6), (" k", 1e3)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * k
    return float(text)


class PageReader(unittest.TestCase):
    def test_the_pages_reader_takes_pcapng_as_tshark_does(self):
        """The page's preview read pcap only: on a store of several link types (a pcapng answer) it said
        "not a pcap stream" and erased the count. Its reader (pcap.js) against tshark on the corpus's
        pcapng files, fed in pieces of 777 bytes: packets and the first time, to the nanosecond."""
        reader = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "server", "web",
                              "pcap.js")
        script = """
import { PcapReader } from %s;
import fs from "fs";
for (const f of process.argv.slice(2)) {
  let n = 0, first = null;
  const r = new PcapReader((p) => { n++; if (!first) first = p; });
  const d = fs.readFileSync(f);
  for (let i = 0; i < d.length; i += 777) r.push(new Uint8Array(d.subarray(i, i + 777)));
  console.log(JSON.stringify([n, first ? first.ts_ns.toString() : null, first ? first.linktype : null]));
}""" % json.dumps("file://" + os.path.abspath(reader))
        mjs = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tm-pcap-reader-%d.mjs" % os.getpid())
        with open(mjs, "w") as f:
            f.write(script)
        self.addCleanup(os.unlink, mjs)
        files = sorted(glob.glob(corpus("pcapng", "*.pcapng")))
        self.assertGreater(len(files), 5)
        p = run(["node", mjs] + files)
        for f, line in zip(files, p.stdout.decode().splitlines()):
            n, ts, lt = json.loads(line)
            t = run(["tshark", "-r", f, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.encap_type"],
                    check=False).stdout.decode().split()
            self.assertEqual(n, len(t) // 2, f)
            if n:
                self.assertEqual(ts, t[0].replace(".", "").lstrip("0"), f)


if __name__ == "__main__":
    unittest.main(verbosity=2)
