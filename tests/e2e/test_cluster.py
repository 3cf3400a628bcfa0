"""Cluster mode end to end: three workers on loopback, each serving the share of a real capture that
the balancing hash gives it (tm record --worker-id i --workers 3), and a tm frontend over them.
Answers through the front-end equal tcpdump's on the whole capture, byte for byte and in order; a
killed or stuck worker is named and does not hang the answer; a connection query asks one worker."""
import glob
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse
import urllib.request

from test_daemon import parse_prometheus
from test_query import BPF_FILTERS, FILES, FILTERS, FragmentOracle
from tmtest import TM, StoreTest, corpus, listening_port, read_pcap, record, run, store_segments, tcpdump_packets, tm, write_pcap

N = 3
TIMEOUT = 3  # the front-end's per-worker time limit, seconds
WAIT = 60


class Cluster(StoreTest):
    """Workers (tm serve) and a front-end (tm frontend) as processes of this test."""


    def spawn(self, args, name):
        return self.spawn_process([TM] + list(args), name)

    def wait_health(self, url, proc, name):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                with open(self.path(name + ".err")) as f:
                    self.fail("%s exited (%d): %s" % (name, proc.returncode, f.read()))
            p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/health"], check=False)
            if p.stdout == b"200":
                return
            time.sleep(0.05)
        self.fail("%s did not answer /health within %d s" % (name, WAIT))

    def record_shares(self, src, tag="", balance="pair"):
        """Records each worker's share of `src`; checks every packet went to exactly one worker."""
        stores, kept = [], 0
        total = len(read_pcap(src))
        for i in range(N):
            store = self.path("w%s%d" % (tag, i))
            s = record(store, [src], "--cutoff", "none", "--segment-size", "64k",
                       "--worker-id", i, "--workers", N, "--balance", balance)
            share = s["worker_share"]
            self.assertEqual(share["kept_packets"], s["packets"])  # seen = this worker's share only
            self.assertEqual(share["kept_packets"] + share["other_workers_packets"], total)
            kept += share["kept_packets"]
            stores.append(store)
        self.assertEqual(kept, total, "each packet belongs to exactly one worker")
        return stores

    def start_workers(self, stores, extra=()):
        """tm serve on each store, on a port of the system's choice (--listen 127.0.0.1:0, the port read
        from what it prints: no race with other test suites for a port picked beforehand)."""
        self.workers, self.worker_procs = [], []
        for i, store in enumerate(stores):
            p = self.spawn(["serve", "--store", store, "--listen", "127.0.0.1:0"] + list(extra), "w%d" % i)
            self.worker_procs.append(p)
        for i, p in enumerate(self.worker_procs):
            self.workers.append("http://127.0.0.1:%d" % listening_port(p, p.errfile, "worker %d" % i))
        for i, (url, p) in enumerate(zip(self.workers, self.worker_procs)):
            self.wait_health(url, p, "w%d" % i)

    def start_frontend(self, balance="pair", tunnels=False, extra=()):
        conf = self.path("cluster%d.toml" % len(self.procs))
        with open(conf, "w") as f:
            if balance:
                f.write('balance = "%s"\n' % balance)
            f.write("tunnels = %s\ntimeout = \"%ds\"\n" % ("true" if tunnels else "false", TIMEOUT))
            for url in self.workers:
                f.write('[[worker]]\nurl = "%s"\n' % url)
        name = "fe%d" % len(self.procs)
        p = self.spawn(["frontend", "--config", conf, "--listen", "127.0.0.1:0"] + list(extra), name)
        url = "http://127.0.0.1:%d" % listening_port(p, p.errfile, "tm frontend")
        self.wait_health(url, p, name)
        return url

    def fake_worker(self, answer):
        """A fake worker on loopback (not a tm): answer(path, query) gives the (status, JSON object) of each
        GET, query the request's parse_qs, or (status, bytes, content type). Its URL; it stops with the test."""

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                code, body, *ctype = answer(url.path, urllib.parse.parse_qs(url.query))
                data = body if ctype else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype[0] if ctype else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        self.addCleanup(fake.server_close)
        self.addCleanup(fake.shutdown)
        return "http://127.0.0.1:%d" % fake.server_address[1]

    def query(self, fe, flt, *extra, check=True):
        out = self.path("answer.pcap")
        p = tm("query", "--server", fe, "-w", out, *extra, flt, check=check)
        return p, (tcpdump_packets(out) if p.returncode == 0 else None)

    def share_packets(self, i, flt=""):
        """What worker i's store holds of a filter (tm query --store, no front-end)."""
        out = self.path("share%d.pcap" % i)
        tm("query", "--store", self.stores[i], "-w", out, "-q", flt)
        return tcpdump_packets(out)

    def worker_queries(self):
        counts = []
        for url in self.workers:
            p = run(["curl", "-s", url + "/metrics"])
            counts.append(parse_prometheus(p.stdout.decode())["tm_queries_total"][0][1])
        return counts


class Oracle(Cluster):
    def test_filters_equal_tcpdump_on_the_whole_capture(self):
        nonempty = 0
        for name in FILES:
            src = corpus("mixed", name)
            self.start_workers(self.record_shares(src, name))
            fe = self.start_frontend()
            # Later fragments are judged as their datagram, as by one recorder (test_query.py):
            # the pair hash sends every fragment of a datagram to the same worker.
            oracle = FragmentOracle(src)
            for flt in FILTERS:
                with self.subTest(file=name, filter=flt):
                    _, got = self.query(fe, flt, "-q")
                    want = tcpdump_packets(src, flt) if flt in BPF_FILTERS else oracle.answer(flt)
                    self.assertSamePackets(got, want)
                    nonempty += bool(want)
            for p in self.procs:
                p.kill()
                p.wait()
            self.procs = []
        self.assertGreater(nonempty, 80)


class Limit(Cluster):
    def test_the_first_n_packets_through_a_store_a_worker_and_the_front_end(self):
        """tm query -c N (tcpdump -c): the first N packets of the whole answer, in time order, whether
        asked of a store, of a worker or of the front-end (whose workers each send their first N); with
        --count at most N; a limit that is no number is refused."""
        src = corpus("mixed", FILES[0])
        self.stores = self.record_shares(src)
        self.start_workers(self.stores)
        fe = self.start_frontend()
        for flt in ("", "tcp", "udp or icmp"):
            _, whole = self.query(fe, flt, "-q")
            self.assertGreater(len(whole), 20, flt)
            for n in (1, 7, len(whole) // 2, len(whole) + 5):
                with self.subTest(filter=flt, n=n):
                    _, got = self.query(fe, flt, "-q", "-c", str(n))
                    self.assertSamePackets(got, whole[:n], "front-end")
                    count = tm("query", "--server", fe, "--count", "-q", "-c", str(n), flt).stdout
                    self.assertEqual(int(count), min(n, len(whole)))
            # One worker, and its store, alike: the first N of that worker's answer.
            mine = self.share_packets(0, flt)
            n = max(1, len(mine) // 3)
            _, got = self.query(self.workers[0], flt, "-q", "-c", str(n))
            self.assertSamePackets(got, mine[:n], "worker")
            out = self.path("store.pcap")
            tm("query", "--store", self.stores[0], "-w", out, "-q", "-c", str(n), flt)
            self.assertSamePackets(tcpdump_packets(out), mine[:n], "store")
        for url in (fe, self.workers[0]):
            p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/api/v1/count?limit=ten"],
                    check=False)
            self.assertEqual(p.stdout, b"400", url)
            p = run(["curl", "-s", "-H", "Content-Type: application/json", "-d", '{"limit": 3}',
                     url + "/api/v1/count"])
            self.assertEqual(json.loads(p.stdout)["packets"], 3, url)


class Faults(Cluster):
    def setUp(self):
        super().setUp()
        self.src = corpus("mixed", "afs.pcap")  # every worker holds some of it
        self.stores = self.record_shares(self.src)
        self.start_workers(self.stores)
        self.fe = self.start_frontend()

    def without(self, want, gone):
        """`want` without the packets of `gone` (a multiset), order kept."""
        left = {}
        for p in gone:
            left[p] = left.get(p, 0) + 1
        out = []
        for p in want:
            if left.get(p):
                left[p] -= 1
            else:
                out.append(p)
        self.assertEqual(sum(left.values()), 0)
        return out

    def test_killed_worker_is_named_and_the_rest_arrives(self):
        for i in range(N):
            self.assertTrue(self.share_packets(i), "worker %d must hold packets for this test" % i)
        self.worker_procs[1].kill()
        self.worker_procs[1].wait()
        for flt in ("", "udp", "host 131.151.32.21"):
            t0 = time.monotonic()
            p, got = self.query(self.fe, flt)
            self.assertLess(time.monotonic() - t0, TIMEOUT + 2)
            err = p.stderr.decode()
            self.assertIn("missing", err)
            self.assertIn(self.workers[1], err)
            self.assertNotIn(self.workers[0], err)
            want = self.without(tcpdump_packets(self.src, flt or None), self.share_packets(1, flt))
            self.assertSamePackets(got, want, flt)
        p, _ = self.query(self.fe, "", "--require-all", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(self.workers[1], p.stderr.decode())
        # Stats name the worker that is down and total the others.
        st = json.loads(tm("stats", "--server", self.fe, "--format", "api").stdout)
        self.assertEqual(st["down"], [self.workers[1]])
        self.assertEqual(st["store"]["total"]["packets"],
                         len(read_pcap(self.src)) - len(self.share_packets(1)))
        p = tm("flows", "--server", self.fe, "--format", "json")
        self.assertIn(self.workers[1], p.stderr.decode())
        self.assertEqual(len(p.stdout.splitlines()), sum(
            len(tm("flows", "--store", self.stores[i], "--format", "json", "-q").stdout.splitlines()) for i in (0, 2)))
        self.assertNotEqual(tm("flows", "--server", self.fe, "--require-all", check=False).returncode, 0)
        m = parse_prometheus(run(["curl", "-s", self.fe + "/metrics"]).stdout.decode())
        up = {l["worker"]: v for l, v in m["tm_frontend_worker_up"]}
        self.assertEqual(up, {self.workers[0]: 1, self.workers[1]: 0, self.workers[2]: 1})

    def test_stats_name_a_worker_down(self):
        # Totals without a worker are named as such, as a packet query names it: a warning (and, in
        # JSON, "missing"), the text says it; --require-all fails. With none answering: no totals.
        self.worker_procs[1].kill()
        self.worker_procs[1].wait()
        want = len(read_pcap(self.src)) - len(self.share_packets(1))
        warning = "tm stats: warning: workers missing from the answer: " + self.workers[1] + ": "
        p = tm("stats", "--server", self.fe)
        self.assertIn(warning, p.stderr.decode())
        self.assertIn("without 1 of 3 workers (not answering): " + self.workers[1], p.stdout.decode())
        self.assertIn(" %d packets" % want, p.stdout.decode())
        p = tm("stats", "--server", self.fe, "--format", "json")
        self.assertIn(warning, p.stderr.decode())
        j = json.loads(p.stdout)
        self.assertEqual(list(j["missing"]), [self.workers[1]])
        self.assertEqual(j["total"]["packets"], want)
        p = tm("stats", "--server", self.fe, "--format", "csv")
        self.assertIn(warning, p.stderr.decode())
        self.assertTrue(p.stdout.startswith(b"class,"))
        p = tm("stats", "--server", self.fe, "--require-all", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, b"")
        self.assertIn("--require-all: 1 of 3 workers did not answer: " + self.workers[1], p.stderr.decode())
        # The API: the missing worker, why, in the body and the headers (as a query's).
        p = run(["curl", "-s", "-D", "-", self.fe + "/api/v1/stats"]).stdout.decode()
        self.assertIn("x-tm-missing-workers: " + self.workers[1], p.lower())
        body = json.loads(p[p.index("\r\n\r\n") + 4:])
        self.assertEqual(list(body["missing"]), [self.workers[1]])
        self.assertEqual(body["down"], [self.workers[1]])
        for w in (0, 2):
            self.worker_procs[w].kill()
            self.worker_procs[w].wait()
        p = tm("stats", "--server", self.fe, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no worker answered", p.stderr.decode())
        for url in self.workers:
            self.assertIn(url, p.stderr.decode())

    def test_flows_with_every_worker_down(self):
        # An empty table would read as "no such flows": a 502 naming the workers, as a query's.
        for proc in self.worker_procs:
            proc.kill()
            proc.wait()
        for args in ((), ("--require-all",), ("--top", "3")):
            p = tm("flows", "--server", self.fe, *args, check=False)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertEqual(p.stdout, b"", args)
            err = p.stderr.decode()
            self.assertIn("no worker answered", err, args)
            for url in self.workers:
                self.assertIn(url, err, args)
        for path in ("/api/v1/flows", "/api/v1/query?filter=", "/api/v1/count"):
            p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", self.fe + path])
            self.assertEqual(p.stdout, b"502", path)

    def test_evidence_with_the_connections_worker_down(self):
        # The worker holding an alert's connection is down: the evidence is unknown (that worker named
        # as why), not "no flow record"; tm evidence says so and exits 1.
        rows = [json.loads(l) for l in tm("flows", "--store", self.stores[1], "--format", "json", "-q").stdout.splitlines()]
        rows = [r for r in rows if r["proto"] in ("tcp", "udp")]
        self.assertTrue(rows)
        r = rows[0]
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r["first_ns"] // 10**9))
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(json.dumps({"timestamp": "%s.%06d+0000" % (t, r["first_ns"] % 10**9 // 1000), "flow_id": 7,
                                "event_type": "alert", "src_ip": r["orig_addr"], "src_port": r["orig_port"],
                                "dest_ip": r["resp_addr"], "dest_port": r["resp_port"], "proto": r["proto"].upper(),
                                "alert": {"signature": "t", "signature_id": 1, "severity": 1}}) + "\n")
        def evidence(out):
            with open(os.path.join(out, "7.json")) as f:
                return json.load(f)["evidence"]
        fe_all = self.start_frontend(balance=None)  # asks every worker (self.fe: the connection's only)
        out = self.path("ev-all")
        tm("evidence", "--server", fe_all, "--eve", eve, "--out", out)
        self.assertTrue(evidence(out)["found"])
        self.worker_procs[1].kill()
        self.worker_procs[1].wait()
        # Only the down worker asked (selection): no answer at all (502), nothing written, exit 1.
        p = tm("evidence", "--server", self.fe, "--eve", eve, "--out", self.path("ev-sel"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no worker answered: " + self.workers[1], p.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(self.path("ev-sel"), "7.json")))
        # Every worker asked, the others answer: unknown, naming the worker.
        out = self.path("ev-down")
        p = tm("evidence", "--server", fe_all, "--eve", eve, "--out", out, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("1 of them unknown (a worker of the front-end did not answer)", p.stderr.decode())
        ev = evidence(out)
        self.assertFalse(ev["found"])
        self.assertTrue(ev["unknown"])
        self.assertTrue(ev["why"].startswith("unknown: its flow record may be at a worker that did not answer"), ev["why"])
        self.assertIn(self.workers[1], ev["why"])
        self.assertNotIn("no flow record of this connection", ev["why"])

    def count(self, where, flt, *extra, check=True):
        p = tm("query", *where, "--count", *extra, flt, check=check)
        return (int(p.stdout) if p.returncode == 0 else None), p

    def test_count_with_a_worker_down(self):
        # All up: the front-end's count (/api/v1/count, counted on its side) is tcpdump's on the whole
        # capture, and the sum of each worker's, by tm serve and from its store.
        for flt in ("", "udp", "host 131.151.32.21"):
            want = len(tcpdump_packets(self.src, flt or None))
            self.assertGreater(want, 0, flt)
            self.assertEqual(self.count(("--server", self.fe), flt)[0], want, flt)
            shares = [self.count(("--store", s), flt)[0] for s in self.stores]
            self.assertEqual([self.count(("--server", w), flt)[0] for w in self.workers], shares, flt)
            self.assertEqual(sum(shares), want, flt)
        self.worker_procs[1].kill()
        self.worker_procs[1].wait()
        for flt in ("", "udp"):
            got, p = self.count(("--server", self.fe), flt)
            self.assertEqual(got, len(tcpdump_packets(self.src, flt or None)) - self.count(("--store", self.stores[1]), flt)[0])
            err = p.stderr.decode()
            self.assertIn("tm query: warning: workers missing from the answer: " + self.workers[1], err)
            self.assertNotIn(self.workers[0], err)
            got, p = self.count(("--server", self.fe), flt, "--require-all", check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIsNone(got)
            self.assertIn("--require-all", p.stderr.decode())
            self.assertIn(self.workers[1], p.stderr.decode())
            self.assertEqual(p.stdout, b"")
        # --explain's figures likewise: partial, said so; --require-all fails (they were silently short).
        got = self.count(("--server", self.fe), "udp")[0]
        p = tm("query", "--server", self.fe, "--explain", "udp")
        self.assertIn("matched: %d, " % got, p.stdout.decode())
        self.assertIn("tm query: warning: workers missing from the answer: " + self.workers[1], p.stderr.decode())
        p = tm("query", "--server", self.fe, "--explain", "--require-all", "udp", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("--require-all: 1 of %d workers did not answer: %s" % (N, self.workers[1]), p.stderr.decode())
        # The API's own answer: the missing worker in the headers, a 503 with require_all.
        p = run(["curl", "-s", "-D", "-", self.fe + "/api/v1/count?filter=udp"])
        self.assertIn("x-tm-missing-workers: " + self.workers[1], p.stdout.decode().lower())
        p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", self.fe + "/api/v1/count?require_all=1"])
        self.assertEqual(p.stdout, b"503")

    def test_stuck_worker_does_not_hang_the_answer(self):
        self.worker_procs[2].send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            p, got = self.query(self.fe, "")
            took = time.monotonic() - t0
            self.assertGreaterEqual(took, TIMEOUT - 0.5)
            self.assertLess(took, TIMEOUT + 3)
            self.assertIn(self.workers[2], p.stderr.decode())
            self.assertIn("no answer within", p.stderr.decode())
            self.assertSamePackets(got, self.without(tcpdump_packets(self.src), self.share_packets(2)))
        finally:
            self.worker_procs[2].send_signal(signal.SIGCONT)
        # Back: the next answer is whole again, with no warning.
        p, got = self.query(self.fe, "")
        self.assertSamePackets(got, tcpdump_packets(self.src))
        self.assertNotIn("missing", p.stderr.decode())


class Loops(Cluster):
    def test_a_frontend_among_its_own_workers_and_a_second_server_on_its_port(self):
        """A front-end whose worker list has its own listen address asked itself again and again, and
        counted its worker's packets 8 times (exit 0, no warning); it now refuses the request it sent
        itself (508) and the answer is the worker's, with that 'worker' named missing. A second server on
        a port in use started too (httplib's SO_REUSEPORT) and the kernel split the requests between the
        two; it now cannot listen there."""
        store = self.path("w0")
        record(store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        self.start_workers([store])
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        me = "http://127.0.0.1:%d" % port
        conf = self.path("loop.toml")
        with open(conf, "w") as f:
            f.write('timeout = "%ds"\n[[worker]]\nurl = "%s"\n[[worker]]\nurl = "%s"\n' % (TIMEOUT, self.workers[0], me))
        fe = self.spawn(["frontend", "--config", conf, "--listen", "127.0.0.1:%d" % port], "fe")
        self.wait_health(me, fe, "fe")
        want = int(tm("query", "--store", store, "--count", "").stdout)
        p = tm("query", "--server", me, "--count", "")
        self.assertEqual(int(p.stdout), want)
        self.assertIn("workers missing from the answer: %s: HTTP 508: loop: this tm frontend is one of its own "
                      "workers" % me, p.stderr.decode())
        p = run([TM, "serve", "--store", store, "--listen", "127.0.0.1:%d" % port], check=False, timeout=WAIT)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot listen on 127.0.0.1:%d" % port, p.stderr.decode())
        self.assertEqual(int(tm("query", "--server", me, "--count", "").stdout), want)

    def test_two_frontends_listing_each_other(self):
        """Two front-ends that list each other passed their own id on only: each took the other's
        request as new, and the requests went round until the time limit, each turn adding its worker's
        packets again. Each now passes on the chain it was sent with its own id added; the front-end a
        request comes back to refuses it (508), so each answer is both workers' packets once, with the
        loop named."""
        stores = [self.path("w0"), self.path("w1")]
        record(stores[0], [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        record(stores[1], [corpus("ipv6", "ftp-ipv6.pcap")], "--cutoff", "none")
        self.start_workers(stores)
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            s.close()
        urls = ["http://127.0.0.1:%d" % p for p in ports]
        fes = []
        for i in range(2):
            conf = self.path("fe%d.toml" % i)
            with open(conf, "w") as f:
                f.write('timeout = "%ds"\n[[worker]]\nurl = "%s"\n[[worker]]\nurl = "%s"\n'
                        % (TIMEOUT, self.workers[i], urls[1 - i]))
            fes.append(self.spawn(["frontend", "--config", conf, "--listen", "127.0.0.1:%d" % ports[i]],
                                  "fe%d" % i))
        for i in range(2):
            self.wait_health(urls[i], fes[i], "fe%d" % i)
        want = sum(int(tm("query", "--store", s, "--count", "").stdout) for s in stores)
        for i in range(2):
            t0 = time.monotonic()
            p = tm("query", "--server", urls[i], "--count", "")
            self.assertLess(time.monotonic() - t0, TIMEOUT)
            self.assertEqual(int(p.stdout), want)
            # The answer is whole; the front-end asked second names the first, which refused it, missing.
            with open(self.path("fe%d.err" % (1 - i))) as f:
                self.assertIn("HTTP 508: loop: this request came back to this tm frontend through 1 other "
                              "front-end(s)", f.read())


    def test_stats_of_a_worker_answering_text(self):
        """A worker answering its stats 200 with a body that is not JSON made the front-end's whole answer
        invalid JSON ("stats": <discarded>): tm stats --server failed. It is a missing worker now."""
        store = self.path("w0")
        record(store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        self.start_workers([store])
        self.workers.append(self.fake_worker(lambda path, q: (200, b"not json", "text/plain")))
        fe = self.start_frontend(balance=None)
        st = json.loads(run(["curl", "-s", fe + "/api/v1/stats"]).stdout)
        self.assertEqual(st["missing"], {self.workers[1]: "its stats are not JSON"})
        self.assertIsNone(st["workers"][1]["stats"])
        p = tm("stats", "--server", fe)
        self.assertIn(self.workers[1], p.stderr.decode())


class Selection(Cluster):
    def setUp(self):
        super().setUp()
        self.src = corpus("mixed", "afs.pcap")
        self.stores = self.record_shares(self.src)
        self.start_workers(self.stores)

    def test_a_workers_unreadable_flow_records_are_said_where_another_has_the_connection(self):
        # The workers without a Community ID's connections are silent, but one whose flow records
        # are damaged says so: the connection may be among them (it was in its "no flow record"
        # text, which the front-end now leaves out).
        fe = self.start_frontend()
        per = [[json.loads(l) for l in tm("flows", "--store", s, "--format", "json").stdout.decode().splitlines()]
               for s in self.stores]
        holder, r = next((i, r) for i in range(N) for r in per[i] if r.get("community_id"))
        other = (holder + 1) % N
        flows = glob.glob(os.path.join(self.stores[other], "flows", "*.flows"))
        self.assertTrue(flows)
        first_block = 12 + len(b"default\0") + 4
        with open(flows[0], "r+b") as f:  # a byte of the first block's compressed records
            f.seek(first_block + 16 + 40)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x5a]))
        p = tm("query", "--server", fe, "--count", "--community-id", r["community_id"])
        err = p.stderr.decode()
        self.assertGreater(int(p.stdout), 0)
        self.assertIn("worker %s: flow records of store %s that tm could not read (damaged: " %
                      (self.workers[other], self.stores[other]), err)
        self.assertNotIn("has Community ID", err)
        # tm flows through the worker and through the front-end say what could not be read (the
        # worker put it in its log alone: a short table, exit 0, no word).
        for server, prefix in ((self.workers[other], ""), (fe, "worker %s: " % self.workers[other])):
            p = tm("flows", "--server", server, "--format", "json")
            self.assertIn("tm flows: warning: %s%s: block checksum mismatch" % (prefix, flows[0]), p.stderr.decode())
        # A flow is one record: found at its worker, the damaged one's "its record may be among them"
        # says nothing of it; where no worker has it, it is said with the rest.
        p = tm("query", "--server", fe, "--count", "--flow", r["id"])
        self.assertEqual(int(p.stdout), r["orig_pkts"] + r["resp_pkts"])
        self.assertNotIn("could not read", p.stderr.decode())
        err = tm("query", "--server", fe, "--count", "--flow", "12345").stderr.decode()
        self.assertIn("none of the %d workers that answered has it" % N, err)
        self.assertIn("worker %s: flow records of store %s that tm could not read" % (self.workers[other],
                                                                                     self.stores[other]), err)

    def test_connection_query_asks_one_worker(self):
        fe = self.start_frontend()
        conn = "host 131.151.32.21 and host 131.151.1.59 and port 7001 and port 7000"
        holder = [i for i in range(N) if self.share_packets(i, conn)]
        self.assertEqual(len(holder), 1)
        before = self.worker_queries()
        p, got = self.query(fe, conn)
        after = self.worker_queries()
        self.assertSamePackets(got, tcpdump_packets(self.src, conn))
        self.assertTrue(got)
        asked = [i for i in range(N) if after[i] != before[i]]
        self.assertEqual(len(asked), 1, (before, after))
        self.assertIn(asked[0], holder)
        out = tm("query", "--server", fe, "--explain", conn).stdout.decode()
        self.assertIn("workers asked: 1", out)
        self.assertIn(self.workers[asked[0]], out)
        # Not pinned (an `or` over the pair): every worker, same answer as tcpdump.
        flt = "host 131.151.32.21 or host 131.151.1.59"
        before = self.worker_queries()
        _, got = self.query(fe, flt)
        self.assertEqual([a - b for a, b in zip(self.worker_queries(), before)], [1] * N)
        self.assertSamePackets(got, tcpdump_packets(self.src, flt))

    def test_tunnels_possible_needs_outer(self):
        fe = self.start_frontend(tunnels=True)
        out = tm("query", "--server", fe, "--explain", "host 131.151.32.21 and host 131.151.1.59").stdout.decode()
        self.assertIn("workers asked: %d" % N, out)
        flt = "outer host 131.151.32.21 and outer host 131.151.1.59"
        out = tm("query", "--server", fe, "--explain", flt).stdout.decode()
        self.assertIn("workers asked: 1", out)
        _, got = self.query(fe, flt)
        self.assertSamePackets(got, tcpdump_packets(self.src, "host 131.151.32.21 and host 131.151.1.59"))

    def test_without_balance_every_worker(self):
        fe = self.start_frontend(balance=None)
        out = tm("query", "--server", fe, "--explain", "host 131.151.32.21 and host 131.151.1.59").stdout.decode()
        self.assertIn("workers asked: %d" % N, out)

    def test_explain_on_a_worker_gives_its_plan(self):
        # A tm serve answers the plan (the one --store prints) and its store's figures.
        flt = "host 10.0.2.15 and not port 22"
        out = tm("query", "--server", self.workers[0], "--explain", flt).stdout.decode()
        self.assertIn("address index", out)
        self.assertIn("port index", out)
        n = int(tm("query", "--server", self.workers[0], "--count", "-q", flt).stdout)
        self.assertIn("matched: %d, " % n, out)
        self.assertNotIn("workers asked", out)
        # A tm frontend's figures are its workers' summed: its matches are its answer's packets.
        fe = self.start_frontend(balance=None)
        flt = "host 131.151.32.21 or host 131.151.1.59"
        out = tm("query", "--server", fe, "--explain", flt).stdout.decode()
        self.assertIn("workers asked: %d" % N, out)
        self.assertIn("in the workers' stores", out)
        self.assertIn("matched: %d, " % len(tcpdump_packets(self.src, flt)), out)
        # A flow's plan through the front-end is the query its worker runs: the connection's filter
        # and lifetime (it said "(all packets)", "every packet of the time range"); an unknown flow
        # reads nothing.
        rows = [json.loads(l) for l in tm("flows", "--server", fe, "--format", "json").stdout.decode().splitlines()]
        r = max((r for r in rows if r["proto"] in ("tcp", "udp")), key=lambda r: r["orig_pkts"] + r["resp_pkts"])
        out = tm("query", "--server", fe, "--explain", "--flow", str(r["id"])).stdout.decode()
        self.assertIn("src port %d" % r["orig_port"], out)
        self.assertIn("port index", out)
        self.assertNotIn("time range: start .. end", out)
        n = int(tm("query", "--server", fe, "--count", "-q", "--flow", str(r["id"])).stdout)
        self.assertEqual(n, r["orig_pkts"] + r["resp_pkts"])
        self.assertIn("matched: %d, " % n, out)
        out = tm("query", "--server", fe, "--explain", "--flow", "12345").stdout.decode()
        self.assertIn("plan: nothing to read: none of the %d workers that answered has it" % N, out)
        # The workers that do not have a flow say so in their answers; through the front-end that
        # is no warning while another worker has it (it was one per worker), and one warning when
        # none has it.
        for how in (["--count"], ["-w", self.path("flow.pcap")]):
            p = tm("query", "--server", fe, *how, "--flow", str(r["id"]))
            self.assertEqual(p.stderr.decode().count("no flow"), 0, p.stderr.decode())
            p = tm("query", "--server", fe, *how, "--flow", "12345")
            err = p.stderr.decode()
            self.assertEqual(err.count("no flow"), 1, err)
            self.assertIn("none of the %d workers that answered has it (no flow 12345 in the flow records" % N, err)
            self.assertNotIn("worker http", err)
        out = tm("query", "--server", self.workers[0], "--explain", "tcp[13] & 2 != 0").stdout.decode()
        self.assertIn("scan with libpcap BPF", out)
        p = tm("query", "--server", self.workers[0], "--explain", "port 99999x", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("^", p.stderr.decode())

    def test_explain_on_the_frontend_checks_the_request_as_a_worker(self):
        # A bad or backwards time, an unknown class: the front-end's /api/v1/explain refuses it (400)
        # with a worker's message, as its /api/v1/query does, and tm query --explain --server exits 2.
        fe = self.start_frontend()
        conn = "host 131.151.32.21 and host 131.151.1.59 and port 7001 and port 7000"
        for flt in ("", conn):
            cases = [([("from", "garbage")], "from: "), ([("to", "noon-ish")], "to: "),
                     ([("from", "2020-01-02"), ("to", "2020-01-01")], "from is after to"),
                     ([("class", "nosuch")], "no class 'nosuch'")]
            for args, why in cases:
                with self.subTest(filter=flt, args=args):
                    q = [("filter", flt)] + list(args)
                    answers = []
                    for url in (self.workers[0], fe):
                        for path in ("/api/v1/explain", "/api/v1/query"):
                            p = run(["curl", "-s", "-w", "\n%{http_code}", "-G", url + path] +
                                    sum((["--data-urlencode", "%s=%s" % kv] for kv in q), []))
                            body, code = p.stdout.decode().rsplit("\n", 1)
                            self.assertEqual(code, "400", (url, path, body))
                            answers.append(json.loads(body)["error"])
                    self.assertIn(why, answers[0])
                    self.assertEqual(set(answers), {answers[0]}, answers)
                    opts = sum((["--" + k, v] for k, v in args), [])
                    p = tm("query", "--server", fe, "--explain", *opts, flt, check=False)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(answers[0], p.stderr.decode())
        # A request the workers take: the plan, 200.
        out = tm("query", "--server", fe, "--explain", "--from", "2000-01-01", conn).stdout.decode()
        self.assertIn("workers asked: 1", out)


class FiveTuple(Cluster):
    def test_5tuple_split_and_selection(self):
        src = corpus("mixed", "var-services-std-ports.pcap")
        self.start_workers(self.record_shares(src, balance="5tuple"))
        fe = self.start_frontend(balance="5tuple")
        for flt in FILTERS[:20]:
            with self.subTest(filter=flt):
                _, got = self.query(fe, flt, "-q")
                self.assertSamePackets(got, tcpdump_packets(src, flt))
        # Every TCP/UDP connection of the capture: found through the at most two workers chosen.
        conns = set()
        for line in run(["tcpdump", "-r", src, "-nn", "-q", "ip and (tcp or udp) and not ip[6:2] & 0x3fff != 0"]
                        ).stdout.decode().splitlines():
            f = line.split()
            a, b = f[2], f[4].rstrip(":")
            proto = "tcp" if f[5] == "tcp" else "udp"
            conns.add((proto, tuple(sorted([tuple(a.rsplit(".", 1)), tuple(b.rsplit(".", 1))]))))
        self.assertGreater(len(conns), 10)
        for proto, ((ha, pa), (hb, pb)) in sorted(conns)[:12]:
            # Equal ports: `port p and port p` says nothing about the other end; src and dst do.
            ports = "port %s and port %s" % (pa, pb) if pa != pb else "src port %s and dst port %s" % (pa, pb)
            flt = "%s and host %s and host %s and %s" % (proto, ha, hb, ports)
            with self.subTest(conn=flt):
                out = tm("query", "--server", fe, "--explain", flt).stdout.decode()
                self.assertRegex(out, r"workers asked: [12]\n")
                _, got = self.query(fe, flt, "-q")
                self.assertSamePackets(got, tcpdump_packets(src, flt))


class Flows(Cluster):
    def test_split_flow_records_equal_a_single_stores(self):
        # Each worker reads the whole input and keeps its share; its clock advances with the others'
        # packets too, so a connection idle at the end ends as a timeout at every worker, as in a
        # single store (afs.pcap: one UDP connection said 'shutdown' at the worker that saw its last
        # packet, whose own clock had stopped there).
        src = corpus("mixed", "afs.pcap")
        single = self.path("single")
        record(single, [src], "--cutoff", "none", "--segment-size", "64k")

        def flows(store):
            return [json.loads(l) for l in tm("flows", "--store", store, "--format", "json", "-q").stdout.splitlines()]
        want = sorted(flows(single), key=lambda r: (r["first_ns"], r["id"]))
        got = sorted((r for s in self.record_shares(src) for r in flows(s)), key=lambda r: (r["first_ns"], r["id"]))
        self.assertGreater(len(want), 10)
        self.assertEqual([r for r in got if r not in want], [], "flow records of the split, not of the single store")
        self.assertEqual(got, want)

    def test_flows_are_the_union_and_top_is_over_it(self):
        src = corpus("mixed", "smb3_multichannel.pcap")
        stores = self.record_shares(src)
        self.start_workers(stores)
        fe = self.start_frontend()
        union = []
        for s in stores:
            union += [json.loads(l) for l in tm("flows", "--store", s, "--format", "json", "-q").stdout.splitlines()]
        union.sort(key=lambda r: (r["first"], r["id"]))
        got = [json.loads(l) for l in tm("flows", "--server", fe, "--format", "json").stdout.splitlines()]
        self.assertEqual(got, union)
        self.assertGreater(len({r["id"] for r in union}), 3)
        for by, key in (("bytes", lambda r: r["orig_bytes"] + r["resp_bytes"]),
                        ("packets", lambda r: r["orig_pkts"] + r["resp_pkts"])):
            want = sorted(union, key=key, reverse=True)[:3]  # stable: ties keep (first, id) order
            got = [json.loads(l) for l in tm("flows", "--server", fe, "--format", "json", "--top", 3, "--by", by)
                   .stdout.splitlines()]
            self.assertEqual(got, want, by)
        # The text and CSV forms render the same rows as a worker would.
        txt = tm("flows", "--server", fe, "--format", "csv").stdout.decode().splitlines()
        self.assertEqual(len(txt), len(union) + 1)


class Live(Cluster):
    """Workers capturing (on lo) for what needs a live worker: dynamic classes and stats."""

    def test_classes_reach_every_worker(self):
        if os.geteuid() != 0:
            self.skipTest("live capture on lo needs root")
        self.workers, self.worker_procs = [], []
        for i in range(N):
            p = self.spawn(["serve", "--store", self.path("live%d" % i), "-i", "lo", "--listen",
                            "127.0.0.1:0", "--worker-id", i, "--workers", N], "w%d" % i)
            self.workers.append("http://127.0.0.1:%d" % listening_port(p, p.errfile, "worker %d" % i))
            self.worker_procs.append(p)
        for i, (url, p) in enumerate(zip(self.workers, self.worker_procs)):
            self.wait_health(url, p, "w%d" % i)
        fe = self.start_frontend()
        pinned = "host 10.9.8.7 and host 10.9.8.6"
        # Live workers on one host are members of one PACKET_FANOUT group: the kernel's flow hash, not the
        # balance scheme, picks a connection's worker, so they say "fanout" and the front-end asks every worker.
        out = tm("query", "--server", fe, "--explain", pinned).stdout.decode()
        self.assertIn("workers asked: %d" % N, out)
        self.assertIn("records share 0 of 3 by fanout", out)
        out = tm("class", "--server", fe, "set", "10.9.8.7", "--class", "default", "--for", "1h").stdout.decode()
        self.assertIn("10.9.8.7", out)
        for url in self.workers:
            lst = json.loads(tm("class", "--server", url, "list", "--json").stdout)
            self.assertEqual([e["host"] for e in lst], ["10.9.8.7"], url)
        lst = json.loads(tm("class", "--server", fe, "list", "--json").stdout)
        self.assertEqual(lst[0]["workers"], self.workers)
        p = tm("class", "--server", fe, "set", "10.9.8.7", "--class", "nonesuch", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nonesuch", p.stderr.decode())
        tm("class", "--server", fe, "remove", "10.9.8.7")
        for url in self.workers:
            self.assertEqual(json.loads(tm("class", "--server", url, "list", "--json").stdout), [])
        st = json.loads(tm("stats", "--server", fe, "--format", "api").stdout)
        self.assertEqual([w["stats"]["capture"]["worker_share"]["worker_id"] for w in st["workers"]], [0, 1, 2])
        self.assertEqual(st["down"], [])
        # A subscription through the front-end: new UDP datagrams on lo, from whichever worker keeps them.
        out = self.path("sub.pcap")
        sub = subprocess.Popen(["curl", "-sN", "-o", out, fe + "/api/v1/subscribe?filter=udp%20dst%20port%2040999"])
        self.procs.append(sub)
        time.sleep(1.5)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(20):
            s.sendto(b"tm-cluster-%02d" % i, ("127.0.0.1", 40999))
        s.close()
        deadline = time.monotonic() + WAIT
        got = []
        while time.monotonic() < deadline and len(got) < 20:
            time.sleep(0.2)
            got = read_pcap(out) if os.path.exists(out) and os.path.getsize(out) >= 24 else []
        sub.kill()
        self.assertEqual([d[-13:] for _, _, _, d in got], [b"tm-cluster-%02d" % i for i in range(20)])
        # A worker down: the class list and the connections say they are without it (they said nothing),
        # and a class removal that did not reach it fails (it said "removed"; the worker kept the class).
        tm("class", "--server", fe, "set", "10.9.8.5", "--class", "default", "--for", "1h")
        self.worker_procs[2].kill()
        self.worker_procs[2].wait()
        for args in (["class", "--server", fe, "list"], ["connections", "--server", fe]):
            p = tm(*args)
            self.assertIn("warning: workers missing from the answer: " + self.workers[2], p.stderr.decode(), args)
            # (the reason in words: it was httplib's "no answer (Connection)")
            self.assertIn(self.workers[2] + ": no answer (cannot connect: refused, or nothing answers",
                          p.stderr.decode())
        p = tm("class", "--server", fe, "remove", "10.9.8.5", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("1 of 3 workers did not remove the class; " + self.workers[2], p.stderr.decode())
        # A subscription without that worker says so at once (it said nothing, for as long as it ran).
        err = self.path("sub.err")
        with open(err, "wb") as ef:
            sub = subprocess.Popen([TM, "subscribe", "--server", fe, "-w", self.path("sub2.pcap"), "udp"], stderr=ef)
        self.procs.append(sub)
        deadline = time.monotonic() + WAIT
        said = ""
        while time.monotonic() < deadline and "warning" not in said:
            time.sleep(0.1)
            with open(err) as f:
                said = f.read()
        sub.kill()
        self.assertIn("tm subscribe: warning: workers missing from the answer: " + self.workers[2], said)


class Mixed(Cluster):
    def test_other_link_type_is_left_out_and_counted_as_a_worker_does(self):
        # Two workers with different link types, a pcap asked for (format=pcap; by default the answer
        # is pcapng, test_pcapng.py): the answer takes the first packet's link type (as one worker's
        # answer does) and counts the other's packets in the query status.
        eth, raw = corpus("mixed", "wikipedia.pcap"), corpus("link", "rotation.pcap")
        stores = []
        for i, src in enumerate((eth, raw)):
            stores.append(self.path("m%d" % i))
            record(stores[-1], [src], "--cutoff", "none")
        self.start_workers(stores)
        fe = self.start_frontend(balance=None)
        out = self.path("a.pcap")
        p = tm("query", "--server", fe, "--format", "pcap", "-w", out, "")
        first, other = sorted((eth, raw), key=lambda f: read_pcap(f)[0][0])
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(first))
        qid = None
        for line in run(["curl", "-s", "-D", "-", "-o", "/dev/null", fe + "/api/v1/query?filter=&format=pcap"]).stdout.decode().splitlines():
            if line.lower().startswith("x-tm-query-id:"):
                qid = line.split(":", 1)[1].strip()
        self.assertTrue(qid)
        st = json.loads(run(["curl", "-s", fe + "/api/v1/cluster/queries/" + qid]).stdout)
        self.assertEqual(st["other_link_type"], len(read_pcap(other)))
        self.assertEqual(st["packets"], len(read_pcap(first)))
        self.assertTrue(st["complete"])
        del p
        # The front-end's own routes refuse a parameter they do not take, as every route does.
        for path, name in (("/api/v1/cluster?verbose=1", "verbose"), ("/api/v1/cluster/queries/%s?x=1" % qid, "x")):
            body, code = run(["curl", "-s", "-w", "\n%{http_code}", fe + path]).stdout.decode().rsplit("\n", 1)
            self.assertEqual(code, "400", path)
            self.assertIn("unknown parameter '%s' for GET" % name, json.loads(body)["error"])
        self.assertEqual(run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", fe + "/api/v1/cluster"]).stdout,
                         b"200")

    def test_pcap_over_a_server_counts_other_link_types(self):
        # A store of two link types, a pcap asked for: what it leaves out is counted and warned of,
        # the same through a worker or a front-end as from the store (tm query --store).
        eth, raw = corpus("mixed", "wikipedia.pcap"), corpus("link", "rotation.pcap")
        store = self.path("two")
        record(store, [eth, raw], "--cutoff", "none")
        first, other = sorted((eth, raw), key=lambda f: read_pcap(f)[0][0])
        self.start_workers([store])
        fe = self.start_frontend(balance=None)
        warning = "tm query: warning: %d matching packets of another link type than" % len(read_pcap(other))
        want = None
        for where in (("--store", store), ("--server", self.workers[0]), ("--server", fe)):
            out = self.path("o.pcap")
            p = tm("query", *where, "--format", "pcap", "-w", out, "")
            self.assertIn(warning, p.stderr.decode(), where)
            with open(out, "rb") as f:
                got = f.read()
            if want is None:
                want = got
            self.assertEqual(got, want, where)  # byte for byte the store's answer
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(first))
        # The front-end's own pcap (the API's format=pcap) counts them in its query status.
        qid = None
        for line in run(["curl", "-s", "-D", "-", "-o", "/dev/null", fe + "/api/v1/query?filter=&format=pcap"]).stdout.decode().splitlines():
            if line.lower().startswith("x-tm-query-id:"):
                qid = line.split(":", 1)[1].strip()
        st = json.loads(run(["curl", "-s", fe + "/api/v1/cluster/queries/" + qid]).stdout)
        self.assertEqual(st["other_link_type"], len(read_pcap(other)))
        self.assertEqual(st["packets"], len(read_pcap(first)))


class Tokens(Cluster):
    def test_worker_tokens_and_the_front_ends_own(self):
        src = corpus("mixed", "afs.pcap")
        stores = self.record_shares(src)
        wtok, ftok = self.path("worker.token"), self.path("fe.token")
        with open(wtok, "w") as f:
            f.write("worker-secret\n")
        with open(ftok, "w") as f:
            f.write("frontend-secret\n")
        self.start_workers(stores, ["--token-file", wtok])
        # Without the workers' token every worker refuses: named, with the reason.
        bare = self.start_frontend()
        p, _ = self.query(bare, "", check=False)
        self.assertNotEqual(p.returncode, 0)  # nobody answered: an error, not an empty pcap
        self.assertIn("no worker answered", p.stderr.decode())
        self.assertIn("401", p.stderr.decode())
        fe = self.start_frontend(extra=["--worker-token-file", wtok, "--token-file", ftok])
        p = tm("query", "--server", fe, "-w", self.path("x.pcap"), "", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("token", p.stderr.decode())
        p, got = self.query(fe, "", "--token-file", ftok)
        self.assertSamePackets(got, tcpdump_packets(src))
        self.assertNotIn("warning", p.stderr.decode())


class OlderWorker(Cluster):
    def test_a_worker_that_does_not_know_measure_gives_its_plan(self):
        """A worker of an older tm refuses measure= (400: unknown parameter): the front-end asks it again
        for its plan alone, sums the figures of the others and says whose are not known (it was a 502, "no
        worker answered", once every worker was older); --require-all refuses unknown figures."""
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none")
        self.start_workers([self.store])
        asked = []

        def older(path, q):
            asked.append(sorted(q))
            if path == "/api/v1/explain" and "measure" in q:
                return 400, {"error": "unknown parameter 'measure' for GET /api/v1/explain (it takes: "
                                      "filter, from, to, class, community_id, flow_id)"}
            if path == "/api/v1/explain":
                return 200, {"filter": q.get("filter", [""])[0], "kind": "indexed", "link_types": [1]}
            return 404, {"error": "no such endpoint"}

        self.workers.append(self.fake_worker(older))
        fe = self.start_frontend(balance=None)
        n = int(tm("query", "--store", self.store, "--count", "-q", "tcp").stdout)
        p = tm("query", "--server", fe, "--explain", "tcp")
        self.assertIn("matched: %d, " % n, p.stdout.decode())
        self.assertIn("worker %s: its figures are not known (an older tm: no measure=)" % self.workers[1],
                      p.stderr.decode())
        self.assertNotIn("missing", p.stderr.decode())
        self.assertIn(["filter"], asked)  # (asked again for its plan)
        p = tm("query", "--server", fe, "--explain", "--require-all", "tcp", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("gives no figures", p.stderr.decode())


class GarbledFlowsWorker(Cluster):
    def test_a_worker_whose_flow_records_are_unreadable_is_missing_not_the_whole_answer(self):
        """A worker that answers /api/v1/flows with JSON that is no flow record: the front-end answers the
        other's records and names it missing (it answered 400, blaming the client: "key 'id' not found")."""
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        self.start_workers([self.store])
        self.workers.append(self.fake_worker(lambda path, q: (200, {"not": "a flow record"})))
        fe = self.start_frontend(balance=None)
        want = tm("flows", "--store", self.store, "--format", "json", "tcp").stdout.decode().splitlines()
        self.assertTrue(want)
        with urllib.request.urlopen(fe + "/api/v1/flows?filter=tcp&format=json") as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["X-TM-Missing-Workers"], self.workers[1])
            self.assertIn("its flow records are not readable", r.headers["X-TM-Missing-Reasons"])
            got = r.read().decode().splitlines()
        self.assertEqual(sorted(json.loads(l)["id"] for l in got), sorted(json.loads(l)["id"] for l in want))


class LongFilter(Cluster):
    def test_a_filter_near_the_body_limit_reaches_the_workers(self):
        """A 900 KB filter (a form body under tm serve's 1 MiB limit): the front-end passed it on with every
        space as %20, past the workers' limit, and answered 502 'no worker answered'. Sent as '+', it fits."""
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        self.start_workers([self.store])
        fe = self.start_frontend(balance=None)
        hosts = ["host 10.%d.%d.%d" % (a, b, c) for a in range(2) for b in range(256) for c in range(1, 100)]
        flt = " or ".join(hosts)[:900000]
        flt = flt[:flt.rindex(" or ")]
        body = urllib.parse.urlencode({"filter": flt}).encode()
        self.assertLess(len(body), 1 << 20)
        want = json.loads(run(["curl", "-s", "-X", "POST", "--data-binary", "@-", self.workers[0] + "/api/v1/count"],
                              input=body).stdout)["packets"]
        self.assertGreater(want, 0)
        got = json.loads(run(["curl", "-s", "-X", "POST", "--data-binary", "@-", fe + "/api/v1/count"],
                             input=body).stdout)
        self.assertEqual(got.get("packets"), want, got)


class DisorderedWorker(Cluster):
    def test_a_worker_answer_out_of_time_order_is_said(self):
        """A worker whose packet answer is not in time order (a misbehaving one): the merge cannot be either,
        and says so, naming the worker (it passed the disorder on without a word)."""
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none")
        self.start_workers([self.store])
        frames = read_pcap(corpus("mixed", "bro.org.pcap"))[:3]
        shuffled = self.path("shuffled.pcap")
        write_pcap(shuffled, [frames[2], frames[0], frames[1]])
        with open(shuffled, "rb") as f:
            pcap = f.read()
        self.workers.append(self.fake_worker(lambda path, q: (200, pcap, "application/vnd.tcpdump.pcap")
                                             if path == "/api/v1/query" else (404, {"error": "no such endpoint"})))
        fe = self.start_frontend(balance=None)
        p, _ = self.query(fe, "tcp", check=False)
        self.assertIn("worker %s: 2 packets of its answer came before one it had sent (not in time order)"
                      % self.workers[1], p.stderr.decode())


class SilentWorker(Cluster):
    def test_a_measured_explain_does_not_wait_for_a_worker_that_never_answers(self):
        """A worker that takes the connection and never answers: the front-end's measured explain (tm query
        --explain) names it missing after the front-end's --timeout, with the other's figures. It waited the
        query time limit (5 minutes), holding a query slot, as a measured explain's workers answer only once
        they have run the query; now each worker plans it first, within --timeout."""
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none")
        self.start_workers([self.store])
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        self.addCleanup(silent.close)
        self.workers.append("http://127.0.0.1:%d" % silent.getsockname()[1])
        fe = self.start_frontend(balance=None)
        n = int(tm("query", "--store", self.store, "--count", "-q", "tcp").stdout)
        # (A limit on the command, not a measure of speed: it would otherwise wait 300 s.)
        p = run([TM, "query", "--server", fe, "--explain", "tcp"], timeout=120)
        self.assertIn("matched: %d, " % n, p.stdout.decode())
        self.assertIn("workers missing from the answer: %s: no answer" % self.workers[1], p.stderr.decode())


class MidStream(Cluster):
    def test_worker_cut_mid_answer_is_named(self):
        # Workers whose own time limit cuts their answers after at most 256 packets. Whether a cut
        # comes before the front-end has sent its headers (then the X-TM-Missing-* header names
        # the worker) or after (then the query status does, read by tm query after the stream)
        # depends on timing; either way tm query names exactly those workers, keeps what they
        # sent, and --require-all makes it an error.
        src = corpus("mixed", "afs.pcap")
        self.stores = self.record_shares(src)
        sizes = [len(self.share_packets(i)) for i in range(N)]
        self.assertTrue(any(n > 256 for n in sizes) and any(n <= 256 for n in sizes), sizes)
        self.start_workers(self.stores, ["--query-timeout", "0.000001"])
        fe = self.start_frontend()
        whole = tcpdump_packets(src)
        for _ in range(3):
            p, got = self.query(fe, "")
            err = p.stderr.decode()
            for i in range(N):
                if sizes[i] > 256:
                    self.assertRegex(err, r"(missing from the answer: .*%s: answer cut|worker %s failed during the "
                                          r"answer)" % (self.workers[i], self.workers[i]))
                else:
                    self.assertNotIn(self.workers[i], err)
            self.assertLess(len(got), len(whole))
            self.assertGreaterEqual(len(got), sum(n for n in sizes if n <= 256))
            pos = 0
            for pk in got:  # what arrived is a subsequence of the capture
                pos = whole.index(pk, pos) + 1
        p, _ = self.query(fe, "", "--require-all", check=False)
        self.assertNotEqual(p.returncode, 0)
        # Counted on the front-end: the same workers named (a header, or the count's warnings), what
        # they sent counted; --require-all an error without a number.
        p = tm("query", "--server", fe, "--count", "")
        err = p.stderr.decode()
        for i in range(N):
            if sizes[i] > 256:
                self.assertIn(self.workers[i], err)
            else:
                self.assertNotIn(self.workers[i], err)
        self.assertLess(int(p.stdout), len(whole))
        self.assertGreaterEqual(int(p.stdout), sum(n for n in sizes if n <= 256))
        p = tm("query", "--server", fe, "--count", "--require-all", "", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--require-all", p.stderr.decode())
        self.assertEqual(p.stdout, b"")


class LongFilter(Cluster):
    def test_a_filter_longer_than_a_uri_reaches_the_workers(self):
        # tm query --server POSTs a filter too long for a URI; the front-end passed it on to its
        # workers in a URI, which they refused (414): "no worker answered". It now POSTs it too.
        src = corpus("mixed", "afs.pcap")
        self.stores = self.record_shares(src)
        self.start_workers(self.stores)
        fe = self.start_frontend()
        flt = "host 192.0.2.1 or " * 500 + "udp"  # 192.0.2.1 (TEST-NET-1) is in no packet
        self.assertGreater(len(flt), 8192)
        want = tcpdump_packets(src, "udp")
        self.assertTrue(want)
        p, got = self.query(fe, flt)
        self.assertSamePackets(got, want)
        self.assertNotIn("warning", p.stderr.decode())
        p = tm("query", "--server", fe, "--count", flt)
        self.assertEqual(int(p.stdout), len(want))
        self.assertNotIn("warning", p.stderr.decode())
        out = tm("query", "--server", fe, "--explain", flt).stdout.decode()
        self.assertIn("workers asked: %d" % N, out)
        # Flow records likewise (the front-end asked its workers in a URI: 414 from each).
        want = tm("flows", "--server", fe, "udp").stdout
        self.assertGreater(len(want.splitlines()), 1)
        p = tm("flows", "--server", fe, flt)
        self.assertEqual(p.stdout, want)
        self.assertNotIn("warning", p.stderr.decode())


class StatsWithoutStore(Cluster):
    def test_a_worker_whose_stats_have_no_store_is_missing(self):
        # A worker answering /api/v1/stats with 200 but no store object (not a tm serve's stats) was
        # counted as answered: totals without it, no warning. It is named missing, as one down is.
        bad = self.fake_worker(lambda path, q: (200, {"api": {"queries": 0}}))
        src = corpus("mixed", "afs.pcap")
        self.stores = self.record_shares(src)
        self.start_workers(self.stores[:2])
        self.workers.append(bad)
        fe = self.start_frontend(balance=None)
        want = len(read_pcap(src)) - len(self.share_packets(2))
        why = "%s: its stats have no store object" % bad
        p = tm("stats", "--server", fe)
        self.assertIn("tm stats: warning: workers missing from the answer: " + why, p.stderr.decode())
        self.assertIn("without 1 of 3 workers (not answering): " + bad, p.stdout.decode())
        self.assertIn(" %d packets" % want, p.stdout.decode())
        j = json.loads(tm("stats", "--server", fe, "--format", "api").stdout)
        self.assertEqual(list(j["missing"]), [bad])
        self.assertEqual(j["store"]["total"]["packets"], want)
        p = tm("stats", "--server", fe, "--require-all", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--require-all: 1 of 3 workers did not answer: " + why, p.stderr.decode())


class WorkerWarnings(Cluster):
    def test_a_workers_answer_warnings_reach_the_client(self):
        # A worker that finds a segment missing (its pcap lost, its sidecar left) warns of it in its
        # answer's warnings (GET /api/v1/answers/ID): the front-end fetches them when that worker's
        # answer has ended and makes them its own, naming the worker; tm query and --count print them.
        src = corpus("mixed", "afs.pcap")
        self.stores = self.record_shares(src)
        k = max(range(N), key=lambda i: len(store_segments(self.stores[i])))
        segs = store_segments(self.stores[k])
        self.assertGreater(len(segs), 1)
        lost = read_pcap(segs[0])
        os.remove(segs[0])
        self.start_workers(self.stores)
        fe = self.start_frontend()
        direct = tm("query", "--server", self.workers[k], "-w", self.path("wk.pcap"), "").stderr.decode()
        self.assertIn("missing (its sidecar", direct)  # what the worker itself warns of
        want = "tm query: warning: worker %s: %s: missing (its sidecar %s is there)" % (
            self.workers[k], segs[0], segs[0][:-5] + ".idx")
        p, got = self.query(fe, "")
        err = p.stderr.decode()
        self.assertIn(want, err)
        for i in range(N):
            if i != k:
                self.assertNotIn(self.workers[i], err)
        self.assertEqual(len(got), len(read_pcap(src)) - len(lost))
        p = tm("query", "--server", fe, "--count", "")
        self.assertIn(want, p.stderr.decode())
        self.assertEqual(int(p.stdout), len(got))
        # A filter no packet of the lost segment matches still reads it: the warning again.
        p, _ = self.query(fe, "udp")
        self.assertIn(want, p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
