"""tm evidence: alerts of Suricata (EVE JSON) and Zeek (conn.log, notice.log; JSON and TSV) naming real
connections of a corpus capture, their evidence pcaps checked against tcpdump on the capture, their JSON
against tshark's Community IDs; an alert for a connection not in the store, a malformed line; a second run
changes nothing; --server gives what --store gives; --follow across growth, rotation and truncation."""
import datetime
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from tmtest import TM, StoreTest, free_port, TmProcess, corpus, record, run, tcpdump_packets, tm

SRC = corpus("mixed", "var-services-std-ports.pcap")  # IPv4 TCP and UDP, IPv6 UDP (mDNS)
LONG = '[connections]\ntcp_timeout = "1d"\ntcp_closed_timeout = "1d"\nudp_timeout = "1d"\nother_timeout = "1d"\n'
ABSENT = {"src": "198.51.100.1", "dst": "198.51.100.2", "sport": 40000, "dport": 80, "proto": "tcp"}
WAIT = 60

ZEEK_HEADER = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t{path}\n"
               "#open\t2026-12-02-10-00-00\n#fields\t{fields}\n#types\t{types}\n")
CONN_FIELDS = [("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
               ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
               ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
               ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
               ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
               ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
               ("tunnel_parents", "set[string]")]
NOTICE_FIELDS = [("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
                 ("id.resp_h", "addr"), ("id.resp_p", "port"), ("fuid", "string"), ("file_mime_type", "string"),
                 ("file_desc", "string"), ("proto", "enum"), ("note", "enum"), ("msg", "string"),
                 ("sub", "string"), ("src", "addr"), ("dst", "addr"), ("p", "port"), ("n", "count"),
                 ("peer_descr", "string"), ("actions", "set[enum]"), ("email_dest", "set[string]"),
                 ("suppress_for", "interval")]


def connections(path):
    """The TCP and UDP connections of a capture per tshark, in order of their first packet: dicts of
    src/dst/sport/dport/proto (as the first packet has them), cid (tshark's Community ID), times (of each
    packet, as "SECONDS.MICROS" text)."""
    out = run(["tshark", "-r", path, "--enable-protocol", "communityid", "-T", "fields",
               "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
               "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
               "-e", "communityid", "-Y", "(tcp or udp) and not icmp and not icmpv6"]).stdout.decode()
    conns = {}
    for line in out.splitlines():
        t, s4, s6, d4, d6, ts, td, us, ud, cid = line.split("\t")
        sec, frac = t.split(".")
        c = conns.setdefault(cid, {"src": s4 or s6, "dst": d4 or d6, "sport": int(ts or us),
                                   "dport": int(td or ud), "proto": "tcp" if ts else "udp", "cid": cid,
                                   "times": []})
        c["times"].append("%s.%s" % (sec, frac[:6]))
    return list(conns.values())


def iso(t):
    """Suricata's timestamp of epoch seconds "S.UUUUUU"."""
    sec, micro = t.split(".")
    d = datetime.datetime.fromtimestamp(int(sec), datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%s+0000" % micro


def eve_line(c, flow_id, when, sig, with_cid=True):
    e = {"timestamp": iso(when), "flow_id": flow_id, "in_iface": "eth0", "event_type": "alert",
         "src_ip": c["src"], "src_port": c["sport"], "dest_ip": c["dst"], "dest_port": c["dport"],
         "proto": c["proto"].upper(), "alert": {"action": "allowed", "gid": 1, "signature_id": 2000000 + flow_id % 1000,
                                               "rev": 1, "signature": sig, "category": "Test", "severity": 2}}
    if with_cid and "cid" in c:
        e["community_id"] = c["cid"]
    return json.dumps(e) + "\n"


def tsv(fields, values):
    return "\t".join(str(values.get(name, "-")) for name, _ in fields) + "\n"


def zeek_tsv_header(path, fields):
    return ZEEK_HEADER.format(path=path, fields="\t".join(n for n, _ in fields), types="\t".join(t for _, t in fields))


def conn_values(c, uid):
    return {"ts": c["times"][0], "uid": uid, "id.orig_h": c["src"], "id.orig_p": c["sport"], "id.resp_h": c["dst"],
            "id.resp_p": c["dport"], "proto": c["proto"], "conn_state": "SF", "tunnel_parents": "(empty)"}


def notice_values(c, uid, note, when):
    return {"ts": when, "uid": uid, "id.orig_h": c["src"], "id.orig_p": c["sport"], "id.resp_h": c["dst"],
            "id.resp_p": c["dport"], "proto": c["proto"], "note": note, "msg": "test notice for " + uid,
            "src": c["src"], "dst": c["dst"], "p": c["dport"], "actions": "Notice::ACTION_LOG", "email_dest": "(empty)",
            "suppress_for": "3600.000000"}


def tcpdump_filter(c):
    return "%s and host %s and host %s and port %d and port %d" % (c["proto"], c["src"], c["dst"], c["sport"],
                                                                   c["dport"])


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


class Evidence(StoreTest):
    def setUp(self):
        super().setUp()
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(LONG)
        record(self.store, [SRC], "--config", cfg, "--cutoff", "none")
        self.conns = connections(SRC)
        self.assertGreater(len(self.conns), 5)
        self.assertTrue(any(":" in c["src"] for c in self.conns), "an IPv6 connection in " + SRC)

    def evidence(self, *args, check=True):
        return tm("evidence", "--store", self.store, *args, check=check)

    def load(self, out, name):
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)

    def check_found(self, out, name, c, alerts=1):
        """<name>.pcap holds the connection's packets as tcpdump finds them in the capture; the JSON names
        the flow (by tshark's Community ID), the alerts, and says what was found."""
        j = self.load(out, name)
        want = tcpdump_packets(SRC, tcpdump_filter(c))
        self.assertSamePackets(tcpdump_packets(os.path.join(out, name + ".pcap")), want, name)
        self.assertEqual(j["id"], name)
        self.assertEqual(j["flow"]["community_id"], c["cid"])
        self.assertEqual(j["connection"]["community_id"], c["cid"])
        self.assertEqual(len(j["alerts"]), alerts)
        ev = j["evidence"]
        self.assertTrue(ev["found"], ev)
        self.assertEqual(ev["pcap"], name + ".pcap")
        self.assertEqual(ev["packets"], len(want))
        self.assertEqual(ev["cut_off"], False)
        self.assertEqual(ev["packets_stored"], len(want))
        self.assertNotIn("packets_missing", ev)
        self.assertNotIn("warnings", ev)
        return j

    def check_absent(self, out, name):
        j = self.load(out, name)
        self.assertFalse(j["evidence"]["found"])
        self.assertIn("no flow record", j["evidence"]["why"])
        self.assertIsNone(j["flow"])
        self.assertFalse(os.path.exists(os.path.join(out, name + ".pcap")), "no empty pcap")

    def test_eve_alerts(self):
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            for i, c in enumerate(self.conns):
                f.write(eve_line(c, 1000 + i, c["times"][len(c["times"]) // 2], "alert %d" % i))
            f.write(json.dumps({"timestamp": iso(self.conns[0]["times"][0]), "flow_id": 1, "event_type": "flow",
                                "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "proto": "TCP"}) + "\n")
            f.write(eve_line(self.conns[0], 1000, self.conns[0]["times"][-1], "again"))  # a second alert, same flow
            f.write(eve_line(ABSENT, 999, self.conns[0]["times"][0], "not in the store", with_cid=False))
            f.write('{"timestamp": "2026-12-02T10:00:00+0000", "event_type": "alert", "src_ip": \n')  # malformed
        out = self.path("out")
        p = self.evidence("--eve", eve, "--out", out)
        err = p.stderr.decode()
        n = len(self.conns)
        self.assertIn("eve.json:%d: not a JSON object: skipped" % (n + 4), err)
        self.assertIn("%d lines read, %d alerts, 1 ignored, 1 skipped" % (n + 4, n + 2), err)
        self.assertIn("%d pcaps" % n, err)
        self.assertIn("1 without packets", err)
        for i, c in enumerate(self.conns):
            with self.subTest(conn=c["cid"]):
                j = self.check_found(out, str(1000 + i), c, alerts=2 if i == 0 else 1)
                self.assertEqual(j["alerts"][0]["signature"], "alert %d" % i)
                self.assertEqual(j["alerts"][0]["event"]["flow_id"], 1000 + i)
        self.check_absent(out, "999")
        self.assertEqual(self.load(out, "999")["connection"]["dst"], ABSENT["dst"])
        # Again: the same files, byte for byte; nothing left behind.
        before = {n: slurp(os.path.join(out, n)) for n in os.listdir(out)}
        self.evidence("--eve", eve, "--out", out, "-q")
        after = {n: slurp(os.path.join(out, n)) for n in os.listdir(out)}
        self.assertEqual(before, after)
        self.assertFalse([n for n in after if n.endswith(".tmp")])
        # --from/--to keep the alerts in the range only.
        out2 = self.path("out2")
        first = self.conns[0]["times"][0]
        p = self.evidence("--eve", eve, "--out", out2, "--from", "0", "--to", first)
        self.assertIn("more outside --from/--to", p.stderr.decode())

    def test_zeek_logs_tsv_and_json(self):
        picks = self.conns[:4]
        logs = {}
        logs["conn.log"] = zeek_tsv_header("conn", CONN_FIELDS) + "".join(
            tsv(CONN_FIELDS, conn_values(c, "Ctsv%d" % i)) for i, c in enumerate(picks))
        logs["conn.json"] = "".join(
            json.dumps(dict(conn_values(c, "Cjson%d" % i), ts=float(c["times"][0]))) + "\n" for i, c in enumerate(picks))
        host = picks[0]["src"]
        mid = self.conns[len(self.conns) // 2]["times"][0]
        notices = [notice_values(c, "Nn%d" % i, "Test::Notice", c["times"][-1]) for i, c in enumerate(picks)]
        notices.append(notice_values(ABSENT, "Nabsent", "Test::Absent", picks[0]["times"][0]))
        scan = {"ts": mid, "note": "Scan::Port_Scan", "msg": host + " scanned", "src": host, "actions":
                "Notice::ACTION_LOG", "email_dest": "(empty)"}
        logs["notice.log"] = (zeek_tsv_header("notice", NOTICE_FIELDS) + "".join(tsv(NOTICE_FIELDS, n) for n in notices)
                              + tsv(NOTICE_FIELDS, scan) + "1.0\tCbad\n" + "#close\t2026-12-02-11-00-00\n")
        logs["notice.json"] = "".join(
            json.dumps({k: (float(v) if k == "ts" else int(v) if k.endswith("_p") else v)
                        for k, v in dict(n, uid=n["uid"] + "j").items() if v not in ("(empty)",)}) + "\n"
            for n in notices) + json.dumps({"ts": float(mid), "note": "Scan::Port_Scan", "src": host}) + "\n{\n"
        for name, text in logs.items():
            with open(self.path(name), "w") as f:
                f.write(text)
        out = self.path("out")
        p = self.evidence("--zeek", self.path("conn.log"), "--zeek", self.path("conn.json"),
                          "--zeek", self.path("notice.log"), "--zeek", self.path("notice.json"), "--out", out)
        err = p.stderr.decode()
        self.assertIn("notice.log:%d: 2 fields where the #fields header names %d" % (8 + len(notices) + 2,
                                                                                    len(NOTICE_FIELDS)), err)
        self.assertIn("notice.json:%d: not a JSON object: skipped" % (len(notices) + 2), err)
        for i, c in enumerate(picks):
            with self.subTest(conn=c["cid"]):
                for uid in ("Ctsv%d" % i, "Cjson%d" % i, "Nn%d" % i, "Nn%dj" % i):
                    j = self.check_found(out, uid, c)
                    self.assertEqual(j["alerts"][0]["source"], "zeek notice" if uid.startswith("N") else "zeek conn")
        self.check_absent(out, "Nabsent")
        self.check_absent(out, "Nabsentj")
        # The host-only notices: every packet of the host within ±5 minutes (the whole capture).
        scans = sorted(n for n in os.listdir(out) if n.startswith("Scan__Port_Scan_") and n.endswith(".pcap"))
        self.assertEqual(len(scans), 1, os.listdir(out))  # the TSV and JSON notice are the same alert time and host
        self.assertSamePackets(tcpdump_packets(os.path.join(out, scans[0])), tcpdump_packets(SRC, "host " + host))
        j = self.load(out, scans[0][:-5])
        self.assertEqual(j["connection"], {"host": host})
        self.assertEqual(len(j["alerts"]), 2)

    def test_cut_off_connection(self):
        store = self.path("cut")
        record(store, [SRC], "--config", self.path("tm.toml"), "--cutoff", "2k")
        big = max(self.conns, key=lambda c: len(c["times"]))
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(eve_line(big, 4000, big["times"][-1], "late in a long connection"))
        out = self.path("out")
        tm("evidence", "--store", store, "--eve", eve, "--out", out, "-q")
        j = self.load(out, "4000")
        self.assertTrue(j["evidence"]["found"])
        self.assertTrue(j["evidence"]["cut_off"])
        self.assertTrue(j["flow"]["cut"])
        got = tcpdump_packets(os.path.join(out, "4000.pcap"))
        self.assertSamePackets(got, self.query_packets(store, tcpdump_filter(big)))  # what tm stored of it
        self.assertLess(len(got), len(tcpdump_packets(SRC, tcpdump_filter(big))))
        self.assertEqual(j["evidence"]["packets"], len(got))

    def test_server_gives_what_the_store_gives(self):
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            for i, c in enumerate(self.conns[:3]):
                f.write(eve_line(c, 2000 + i, c["times"][0], "s%d" % i))
            f.write(eve_line(ABSENT, 2999, self.conns[0]["times"][0], "absent", with_cid=False))
        port = free_port()
        err = open(self.path("serve.err"), "w+b")
        self.addCleanup(err.close)
        proc = subprocess.Popen([TM, "serve", "--store", self.store, "--listen", "127.0.0.1:%d" % port],
                                stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2):
                    break
            except OSError:
                self.assertIsNone(proc.poll(), "tm serve exited")
                self.assertLess(time.monotonic(), deadline, "tm serve did not answer /health")
                time.sleep(0.05)
        tm("evidence", "--server", "http://127.0.0.1:%d" % port, "--eve", eve, "--out", self.path("http"), "-q")
        self.evidence("--eve", eve, "--out", self.path("local"), "-q")
        self.assertEqual(sorted(os.listdir(self.path("http"))), sorted(os.listdir(self.path("local"))))
        for n in os.listdir(self.path("local")):
            self.assertEqual(slurp(os.path.join(self.path("http"), n)), slurp(os.path.join(self.path("local"), n)), n)
        for i, c in enumerate(self.conns[:3]):
            self.check_found(self.path("http"), str(2000 + i), c)

    def test_follow_growth_rotation_truncation_wait_and_stop(self):
        eve = self.path("eve.json")
        out = self.path("out")
        c = self.conns

        def write(path, text, mode="a"):
            with open(path, mode) as f:
                f.write(text)

        def wait_for(name):
            deadline = time.monotonic() + WAIT
            while not os.path.exists(os.path.join(out, name + ".json")):
                self.assertIsNone(proc.poll(), "tm evidence exited:\n" + slurp(self.path("err")).decode())
                self.assertLess(time.monotonic(), deadline, "no evidence %s after %d s" % (name, WAIT))
                time.sleep(0.1)

        write(eve, eve_line(c[0], 3000, c[0]["times"][0], "first"))
        errf = open(self.path("err"), "w+b")
        self.addCleanup(errf.close)
        proc = subprocess.Popen([TM, "evidence", "--store", self.store, "--eve", eve, "--out", out, "--follow",
                                 "--wait", "2s"], stdout=subprocess.DEVNULL, stderr=errf)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        wait_for("3000")
        # Growth, a line written in two parts.
        line = eve_line(c[1], 3001, c[1]["times"][0], "grown")
        write(eve, line[:40])
        time.sleep(0.8)
        write(eve, line[40:])
        wait_for("3001")
        # Rotation: renamed (and written to once more), then a new file in its place.
        os.rename(eve, eve + ".1")
        write(eve + ".1", eve_line(c[2], 3002, c[2]["times"][0], "after the rename"))
        time.sleep(0.8)
        # (A long event of another type first: read before 3003 is, it makes the file longer than what
        # is written after the truncation below, which is then seen however late tm looks.)
        pad = json.dumps({"timestamp": iso(c[3]["times"][0]), "event_type": "stats", "pad": "x" * 4000}) + "\n"
        write(eve, pad + eve_line(c[3], 3003, c[3]["times"][0], "new file"))
        wait_for("3002")
        wait_for("3003")
        # Truncated in place (copytruncate), then written again.
        write(eve, "", mode="w")
        write(eve, eve_line(c[4], 3004, c[4]["times"][0], "after truncation"))
        wait_for("3004")
        # An alert without a flow record: asked for during --wait, then written as not found.
        t0 = time.monotonic()
        write(eve, eve_line(ABSENT, 3999, c[0]["times"][0], "absent", with_cid=False))
        wait_for("3999")
        self.assertGreater(time.monotonic() - t0, 1.5)
        self.check_absent(out, "3999")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=WAIT), 0)
        errf.seek(0)
        err = errf.read().decode()
        self.assertIn("rotated: reading the new file from its start", err)
        self.assertIn("truncated: reading the new file from its start", err)
        self.assertIn("6 alerts", err)
        for i in range(5):
            self.check_found(out, str(3000 + i), c[i])  # each alert once: none read twice




KEEP_CONFIG = ('[connections]\nudp_timeout = "1h"\n\n'
               '[[class]]\nname = "suspect"\nfilter = "ip proto 253"  # selects nothing: only the hosts put there\n'
               'cutoff = "none"\nprecedence = 10\n\n'
               '[[class]]\nname = "default"\ncutoff = "4k"\n')


class KeepLive(StoreTest, TmProcess):
    """tm evidence --server --keep on a live tm serve -i lo with a class without cutoff: an alert for a
    UDP connection on lo puts its host into that class (listed with its expiry), and the packets of the
    connection sent after the alert, beyond the default class's cutoff, are stored."""
    proc_name = "tm serve"

    def serve(self, config):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(config)
        self.url = "http://127.0.0.1:%d" % free_port()
        self.err = open(self.path("serve.err"), "w+b")
        self.addCleanup(self.err.close)
        self.proc = subprocess.Popen([TM, "serve", "--store", self.store, "-i", "lo", "--config", cfg,
                                      "--listen", self.url[len("http://"):]], stdout=subprocess.DEVNULL,
                                     stderr=self.err)
        self.addCleanup(self.kill)
        self.until(lambda: self.get("/health") is not None, "serve answers /health")

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def until(self, ok, what, seconds=15):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.alive(what)
            if ok():
                return
            time.sleep(0.1)
        self.fail("not within %d s: %s\n%s" % (seconds, what, self.stderr()[-3000:]))

    def stored(self, port, marker):
        """The stored packets of the test's UDP connection (to `port`) whose payload holds `marker`."""
        out = self.path("answer.pcap")
        tm("query", "--server", self.url, "-w", out, "-q", "udp and port %d" % port)
        return sum(1 for p in tcpdump_packets(out) if marker.hex() in p.replace(" ", "").replace("\n", ""))

    def test_keep_host_stores_the_rest_of_the_connection_uncut(self):
        if os.geteuid() != 0:
            self.skipTest("live capture on lo needs root")
        self.serve(KEEP_CONFIG)
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(rx.close)
        rx.bind(("127.0.0.1", 0))
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(tx.close)
        tx.bind(("127.0.0.1", 0))
        sport, dport = tx.getsockname()[1], rx.getsockname()[1]
        for _ in range(10):  # 10 kB: past the default class's 4k cutoff
            tx.sendto(b"before" + b"b" * 994, ("127.0.0.1", dport))
        flt = "udp and port %d" % dport

        def cut():
            c = self.get("/api/v1/connections?filter=" + urllib.request.quote(flt))
            return bool(c) and c[0]["cut"]
        self.until(cut, "the connection reached its cutoff")

        eve = self.path("eve.json")
        now = time.time()
        with open(eve, "w") as f:
            f.write(eve_line({"src": "127.0.0.1", "dst": "127.0.0.1", "sport": sport, "dport": dport,
                              "proto": "udp"}, 777, "%d.%06d" % (int(now), int(now % 1 * 1e6)), "keep me"))
        out = self.path("out")
        p = tm("evidence", "--server", self.url, "--eve", eve, "--out", out, "--keep", "10m")
        self.assertIn("--keep 10m: 1 class requests (class suspect), 1 connection controls, 0 failed",
                      p.stderr.decode())
        with open(os.path.join(out, "777.json")) as f:
            kept = json.load(f)["kept"]
        self.assertEqual(kept["hosts"], ["127.0.0.1"])
        self.assertEqual(kept["class"], "suspect")
        self.assertIsNotNone(kept["until"])
        self.assertEqual(kept["connections_suspended"], 1)
        self.assertNotIn("error", kept)
        classes = self.get("/api/v1/classes")
        self.assertEqual([(c["host"], c["class"]) for c in classes], [("127.0.0.1", "suspect")])
        self.assertIsNotNone(classes[0]["expires"])
        self.assertGreater(classes[0]["expires_ns"], (now + 9 * 60) * 1e9)
        # A second run (a burst is remembered within one run only) refreshes the entry: still one.
        tm("evidence", "--server", self.url, "--eve", eve, "--out", self.path("out2"), "--keep", "10m")
        self.assertEqual(len(self.get("/api/v1/classes")), 1)

        self.assertEqual(self.stored(dport, b"before"), 4)  # cut at 4k
        for _ in range(20):  # 20 kB more, after the alert: kept whole
            tx.sendto(b"after!" + b"a" * 994, ("127.0.0.1", dport))
        self.until(lambda: self.stored(dport, b"after!") == 20, "the 20 packets after the alert stored")

    def test_refused_without_a_class_without_cutoff_or_without_server(self):
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(eve_line(ABSENT, 1, "1764075600.000000", "x"))
        p = tm("evidence", "--store", self.store, "--eve", eve, "--out", self.path("o"), "--keep", "1h", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--keep needs --server", p.stderr.decode())
        if os.geteuid() != 0:
            self.skipTest("live capture on lo needs root")
        self.serve('[[class]]\nname = "default"\ncutoff = "4k"\n')
        p = tm("evidence", "--server", self.url, "--eve", eve, "--out", self.path("o"), "--keep", "1h", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('no class without cutoff', p.stderr.decode())
        self.assertIn('[[class]] name = "suspect"', p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("o/1.json")))


if __name__ == "__main__":
    import unittest
    unittest.main()
