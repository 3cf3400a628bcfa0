"""tm evidence: alerts of Suricata (EVE JSON) and Zeek (conn.log, notice.log; JSON and TSV) naming real
connections of a corpus capture, their evidence pcaps checked against tcpdump on the capture, their JSON
against tshark's Community IDs; an alert for a connection not in the store, a malformed line; a second run
changes nothing; --server gives what --store gives; --follow across growth, rotation and truncation."""
import datetime
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request

from tmtest import (TM, NetnsTest, StoreTest, TmProcess, corpus, listening_port, read_pcap, record, run, tcpdump_packets, tm,
                    write_pcap)

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


def prom(path):
    """The samples of a Prometheus text file: {'name{labels}': value}; every family with HELP and TYPE."""
    samples, typed = {}, set()
    with open(path) as f:
        for line in f.read().splitlines():
            if line.startswith("# TYPE "):
                typed.add(line.split()[2])
            elif line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                assert key.split("{")[0] in typed, "no TYPE before " + line
                samples[key] = float(value)
    return samples


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


class PortlessEvidence(StoreTest):
    def test_the_evidence_of_a_portless_connection_is_its_packets(self):
        """A flow record with ports 0 and 0 (here a later IPv6 fragment whose first was not captured): an
        alert with its tuple got no packet and 'no longer on disk', its filter asking for `port 0`, which
        such packets do not match (cluster tester). Its packets are the flow's, as tm query --flow gives."""
        record(self.store, [corpus("ipv6", "ipv6-fragmented-dns.pcap")], "--cutoff", "none")
        rows = [json.loads(l) for l in tm("flows", "--store", self.store, "--format", "json").stdout.decode().splitlines()]
        r = next(r for r in rows if r["proto"] == "udp" and r["orig_port"] == 0 and r["resp_port"] == 0)
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(json.dumps({"timestamp": r["first"].replace("Z", "+0000"), "flow_id": 5, "event_type": "alert",
                                "src_ip": r["orig_addr"], "src_port": 0, "dest_ip": r["resp_addr"], "dest_port": 0,
                                "proto": "UDP", "alert": {"signature": "frag", "signature_id": 1}}) + "\n")
        out = self.path("out")
        tm("evidence", "--store", self.store, "--eve", eve, "--out", out)
        with open(os.path.join(out, "5.json")) as f:
            ev = json.load(f)["evidence"]
        self.assertTrue(ev["found"], ev)
        self.assertEqual(ev["packets"], r["stored_pkts"])
        self.assertGreater(ev["packets"], 0)


class TunnelEvidence(StoreTest):
    def test_a_tunnelled_connections_evidence_is_its_own_packets(self):
        """An alert for ICMP between two hosts inside Geneve, whose two directions are in two VNIs (two
        connections, two flow records of 3 packets): its evidence was 5 packets, its tuple's in both
        tunnels, while its JSON said 3 stored. It is the flow's 3, as tm query --flow gives them."""
        record(self.store, [corpus("tunnels", "tcpdump-geneve.pcap")], "--cutoff", "none")
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(json.dumps({"timestamp": "2015-02-01T22:04:34.000000+0000", "flow_id": 77, "event_type": "alert",
                                "src_ip": "30.0.0.1", "dest_ip": "30.0.0.2", "proto": "ICMP", "icmp_type": 8,
                                "icmp_code": 0, "alert": {"signature": "ping", "signature_id": 1}}) + "\n")
        out = self.path("out")
        tm("evidence", "--store", self.store, "--eve", eve, "--out", out)
        with open(os.path.join(out, "77.json")) as f:
            j = json.load(f)
        ev = j["evidence"]
        self.assertEqual(j["flow"]["orig_addr"], "30.0.0.1")
        self.assertEqual(ev["packets_stored"], 3)
        self.assertEqual(ev["packets"], 3)
        flow = self.path("flow.pcap")
        tm("query", "--store", self.store, "--flow", str(j["flow"]["id"]), "-w", flow)
        self.assertSamePackets(tcpdump_packets(os.path.join(out, "77.pcap")), tcpdump_packets(flow), "evidence")

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

    def test_one_id_given_to_two_connections_makes_two_evidences(self):
        """One flow_id on two connections (two sensors' logs, an IDS restarted): the second connection's
        evidence is ID-2, with a warning; it was lost, its alert listed under the first connection. A run
        again finds each under its own name; the same connection seen the other way is the same one."""
        a, b = self.conns[0], self.conns[1]
        rev = dict(a, src=a["dst"], dst=a["src"], sport=a["dport"], dport=a["sport"])
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(eve_line(a, 7, a["times"][0], "first"))
            f.write(eve_line(b, 7, b["times"][0], "second"))
            f.write(eve_line(rev, 7, a["times"][-1], "first, the other way"))
        out = self.path("out")
        for _ in range(2):
            p = self.evidence("--eve", eve, "--out", out)
            self.assertEqual(sorted(f for f in os.listdir(out) if not f.startswith(".")),
                             ["7-2.json", "7-2.pcap", "7.json", "7.pcap"])
            first, second = self.load(out, "7"), self.load(out, "7-2")
            if first["connection"]["community_id"] != a["cid"]:  # (which of the two is written first)
                first, second = second, first
            self.assertEqual(first["connection"]["community_id"], a["cid"])
            self.assertEqual([x["signature"] for x in first["alerts"]], ["first", "first, the other way"])
            self.assertEqual(second["connection"]["community_id"], b["cid"])
            self.assertEqual([x["signature"] for x in second["alerts"]], ["second"])
            self.assertIn("id 7: its evidence is of another connection", p.stderr.decode())
        self.check_found(out, first["id"], a, alerts=2)
        self.check_found(out, second["id"], b)

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
        metrics = self.path("tm-evidence.prom")
        p = self.evidence("--eve", eve, "--out", out, "--json", "--metrics-file", metrics)
        err = p.stderr.decode()
        n = len(self.conns)
        self.assertIn("eve.json:%d: not JSON (column 76: syntax error while parsing value - unexpected end of input"
                      % (n + 4), err)
        self.assertIn("%d lines read, %d alerts, 1 ignored, 1 skipped" % (n + 4, n + 2), err)
        self.assertIn("%d pcaps" % n, err)
        self.assertIn("1 without packets (1 alerts;", err)
        # The counts, against the input: n connections' alerts, a second alert on the first, one absent;
        # one malformed line, one event of another type; the packets are tcpdump's for each connection.
        packets = sum(len(tcpdump_packets(SRC, tcpdump_filter(c))) for c in self.conns)
        summary = json.loads(p.stdout)
        self.assertEqual(summary["logs"], [{"file": eve, "format": "eve", "lines": n + 4, "alerts": n + 2,
                                            "ignored": 1, "skipped": 1}])
        want = {"alerts_read": n + 2, "alerts_skipped": 1, "alerts_outside_range": 0, "alerts": n + 2,
                "evidence_written": n + 1, "pcaps": n, "packets": packets, "evidence_without_packets": 1,
                "alerts_without_packets": 1, "kept_earlier": 0, "waiting": 0, "errors": 0}
        self.assertEqual({k: summary[k] for k in want}, want)
        self.assertNotIn("keep", summary)
        log = '{log="%s",format="eve"}' % eve
        got = prom(metrics)
        self.assertEqual({k: got[k] for k in ("tm_evidence_log_lines_total" + log, "tm_evidence_alerts_read_total" + log,
                                              "tm_evidence_lines_ignored_total" + log,
                                              "tm_evidence_alerts_skipped_total" + log)},
                         {"tm_evidence_log_lines_total" + log: n + 4, "tm_evidence_alerts_read_total" + log: n + 2,
                          "tm_evidence_lines_ignored_total" + log: 1, "tm_evidence_alerts_skipped_total" + log: 1})
        for k, v in (("alerts", n + 2), ("written", n + 1), ("pcaps", n), ("packets", packets),
                     ("without_packets", 1), ("alerts_without_packets", 1), ("errors", 0)):
            self.assertEqual(got["tm_evidence_%s_total" % k], v, k)
        self.assertEqual(got["tm_evidence_waiting"], 0)
        self.assertFalse(os.path.exists(metrics + ".tmp"))
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
        self.assertIn("notice.json:%d: not JSON (column 2: syntax error while parsing object key - unexpected end"
                      % (len(notices) + 2), err)
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
        err = open(self.path("serve.err"), "w+b")
        self.addCleanup(err.close)
        proc = subprocess.Popen([TM, "serve", "--store", self.store, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        port = listening_port(proc, err, "tm serve", WAIT)
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
        metrics = self.path("tm-evidence.prom")
        proc = subprocess.Popen([TM, "evidence", "--store", self.store, "--eve", eve, "--out", out, "--follow",
                                 "--wait", "2s", "--metrics-file", metrics], stdout=subprocess.DEVNULL, stderr=errf)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        wait_for("3000")
        # While following, the metrics file is rewritten as the counts change (atomically: never partial).
        deadline = time.monotonic() + WAIT
        while not os.path.exists(metrics) or prom(metrics).get("tm_evidence_pcaps_total") != 1:
            self.assertIsNone(proc.poll(), "tm evidence exited")
            self.assertLess(time.monotonic(), deadline, "no metrics of the first alert after %d s" % WAIT)
            time.sleep(0.05)
        self.assertEqual(prom(metrics)['tm_evidence_alerts_read_total{log="%s",format="eve"}' % eve], 1)
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
        # The last counts, across the rotation and the truncation: 6 alerts read, 5 with packets, 1 without.
        got = prom(metrics)
        self.assertEqual(got['tm_evidence_alerts_read_total{log="%s",format="eve"}' % eve], 6)
        self.assertEqual(got['tm_evidence_lines_ignored_total{log="%s",format="eve"}' % eve], 1)  # the pad
        self.assertEqual(got["tm_evidence_alerts_total"], 6)
        self.assertEqual(got["tm_evidence_pcaps_total"], 5)
        self.assertEqual(got["tm_evidence_alerts_without_packets_total"], 1)
        self.assertEqual(got["tm_evidence_waiting"], 0)
        self.assertEqual(got["tm_evidence_packets_total"],
                         sum(len(tcpdump_packets(SRC, tcpdump_filter(c[i]))) for i in range(5)))
        for i in range(5):
            self.check_found(out, str(3000 + i), c[i])  # each alert once: none read twice




KEEP_CONFIG = ('[connections]\nudp_timeout = "1h"\n\n'
               '[[class]]\nname = "suspect"\nfilter = "ip proto 253"  # selects nothing: only the hosts put there\n'
               'cutoff = "none"\nprecedence = 10\n\n'
               '[[class]]\nname = "default"\ncutoff = "4k"\n')


SUSPECT, PEER = "10.9.0.1", "10.9.0.2"


def udp_frame(src, dst, sport, dport, payload):
    """Ethernet / IPv4 / UDP (checksum 0: none) as the replayed pcaps carry it."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                               socket.inet_aton(src), socket.inet_aton(dst)))
    s = sum(struct.unpack("!10H", bytes(ip)))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    ip[10:12] = struct.pack("!H", ~s & 0xffff)
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + bytes(ip) + udp


class KeepLive(NetnsTest, TmProcess, StoreTest):
    """tm evidence --server --keep against a tm serve capturing, in a network namespace of the test's own,
    the traffic tcpreplay sends over a veth pair, with a class without cutoff and a default class cut at 4k:
    an alert on a UDP connection already past its cutoff puts both its hosts into that class for --keep and
    suspends the connection's cutoff; the connection's later packets and a new connection of the hosts are
    stored whole; once --keep has passed the class entries are gone (the API, /metrics) and the hosts' next
    new connection is cut again, while the suspended connection stays whole."""
    proc_name = "tm serve"
    KEEP = 10  # seconds

    def serve(self, config):
        self.netns("tmkeep")
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(config)
        self.url = "http://127.0.0.1:8910"  # in the namespace: nothing else listens there
        self.proc = self.spawn("serve", [TM, "serve", "--store", self.store, "-i", self.capture, "--config", cfg,
                                         "--listen", "127.0.0.1:8910"])
        self.err = self.proc.err
        self.wait_capturing(self.proc, "tm serve")
        self.until(lambda: self.get("/health") is not None, "serve answers /health")

    def get(self, path, raw=False):
        """GET inside the namespace: the parsed JSON (the text with raw), None when it does not answer."""
        p = self.ns_run("curl", "-sf", "--max-time", "10", self.url + path, check=False)
        if p.returncode != 0:
            return None
        return p.stdout.decode() if raw else json.loads(p.stdout)

    def until(self, ok, what, seconds=WAIT):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.alive(what)
            if ok():
                return
            time.sleep(0.1)
        self.fail("not within %d s: %s\n%s" % (seconds, what, self.stderr()[-3000:]))

    def send_udp(self, name, sport, dport, marker, n):
        """Replays n UDP packets SUSPECT:sport -> PEER:dport of 1000 payload bytes starting with `marker`."""
        path = self.path(name + ".pcap")
        f = udp_frame(SUSPECT, PEER, sport, dport, marker + b"x" * (1000 - len(marker)))
        write_pcap(path, [(1_700_000_000 * 10**9 + i * 10**6, len(f), len(f), f) for i in range(n)])
        self.replay([path])

    def stored(self, dport, marker):
        """The stored packets of the test's UDP connection to `dport` whose payload starts with `marker`."""
        out = self.path("answer.pcap")
        self.ns_run(TM, "query", "--server", self.url, "-w", out, "-q", "udp and port %d" % dport)
        return sum(1 for rec in read_pcap(out) if rec[3][42:42 + len(marker)] == marker)

    def test_keep_stores_the_suspect_uncut_until_it_expires(self):
        self.serve(KEEP_CONFIG)
        self.send_udp("a1", 40000, 5000, b"before", 10)  # 10 kB: past the default class's 4k cutoff
        flt = urllib.request.quote("udp and port 5000")
        self.until(lambda: (self.get("/api/v1/connections?filter=" + flt) or [{"cut": False}])[0]["cut"],
                   "the connection reached its cutoff")
        self.until(lambda: self.stored(5000, b"before") == 4, "its first 4 kB stored")

        eve = self.path("eve.json")
        now = time.time()
        with open(eve, "w") as f:
            f.write(eve_line({"src": SUSPECT, "dst": PEER, "sport": 40000, "dport": 5000, "proto": "udp"}, 777,
                             "%d.%06d" % (int(now), int(now % 1 * 1e6)), "keep me"))
        out, metrics = self.path("out"), self.path("evidence.prom")
        p = self.ns_run(TM, "evidence", "--server", self.url, "--eve", eve, "--out", out, "--keep",
                        "%ds" % self.KEEP, "--json", "--metrics-file", metrics)
        self.assertIn("--keep %ds: 2 hosts raised, 2 class requests (class suspect), 1 connection controls, 0 failed"
                      % self.KEEP, p.stderr.decode())
        self.assertEqual(json.loads(p.stdout)["keep"], {"class": "suspect", "hosts_raised": 2, "class_requests": 2,
                                                        "controls": 1, "failed": 0})
        got = prom(metrics)
        self.assertEqual(got["tm_evidence_keep_hosts_raised_total"], 2)
        self.assertEqual(got["tm_evidence_keep_controls_total"], 1)
        with open(os.path.join(out, "777.json")) as f:
            kept = json.load(f)["kept"]
        self.assertEqual(kept["hosts"], [SUSPECT, PEER])
        self.assertEqual(kept["class"], "suspect")
        self.assertEqual(kept["connections_suspended"], 1)
        self.assertNotIn("error", kept)
        classes = self.get("/api/v1/classes")
        self.assertEqual(sorted((c["host"], c["class"]) for c in classes), [(SUSPECT, "suspect"), (PEER, "suspect")])
        expires = min(c["expires_ns"] for c in classes) / 1e9
        self.assertGreater(expires, now + self.KEEP - 1)
        self.assertIn("tm_dynamic_classes 2\n", self.get("/metrics", raw=True))

        # After the alert: the rest of the connection, and a new connection of the suspect, stored whole.
        self.send_udp("a2", 40000, 5000, b"after!", 20)
        self.send_udp("b", 40001, 5001, b"newcon", 10)
        self.assertLess(time.time(), expires, "too slow: --keep %ds expired before the replay ended" % self.KEEP)
        self.until(lambda: self.stored(5000, b"after!") == 20, "the 20 packets after the alert stored")
        self.until(lambda: self.stored(5001, b"newcon") == 10, "the new connection stored whole")
        self.assertEqual(self.stored(5000, b"before"), 4)  # what was cut before the alert stays cut
        # Its flow record now is the interim one --keep wrote (the connection open): evidence asked for
        # now has every packet stored of it, as tm query --flow gives them, its span without an end (it
        # stopped at that record's last packet: 4).
        self.until(lambda: (self.get("/api/v1/flows?format=json&filter=" + flt, raw=True) or "").strip(),
                   "the interim flow record written")
        self.ns_run(TM, "evidence", "--server", self.url, "--eve", eve, "--out", out)
        with open(os.path.join(out, "777.json")) as f:
            ev = json.load(f)["evidence"]
        self.assertEqual((ev["packets"], ev.get("open"), ev.get("to", "absent")), (24, True, None), ev)

        # After --keep: the entries are gone, the suspect's next new connection is cut at 4k again; the
        # suspended connection is still recorded whole (a control lasts as long as the connection).
        self.until(lambda: self.get("/api/v1/classes") == [], "the class entries expired", self.KEEP + WAIT)
        self.until(lambda: "tm_dynamic_classes 0\n" in (self.get("/metrics", raw=True) or ""),
                   "the expiry applied by the capture thread")
        self.send_udp("c", 40002, 5002, b"later!", 10)
        self.send_udp("a3", 40000, 5000, b"late!!", 5)
        self.until(lambda: self.stored(5000, b"late!!") == 5, "the suspended connection's late packets stored")
        conn = "/api/v1/connections?filter=" + urllib.request.quote("udp and port 5002")
        self.until(lambda: (self.get(conn) or [{"packets": 0}])[0]["packets"] == 10,
                   "the connection after expiry seen whole by the capture")
        self.assertEqual(self.stored(5002, b"later!"), 4, "a new connection after --keep expired is cut again")

    def test_keep_of_a_connection_alone_writes_its_interim_flow_record(self):
        """--scope conn moves no host into a class; its control alone gives the open connection an interim
        flow record at once, so its evidence is every packet stored of it (an open span), not a wait for
        --wait and then the alert's window of its tuple (the connection, UDP, ends only at its inactivity
        timeout, a minute later)."""
        self.serve(KEEP_CONFIG)
        self.send_udp("a1", 40000, 5000, b"before", 10)
        flt = urllib.request.quote("udp and port 5000")
        self.until(lambda: self.stored(5000, b"before") == 4, "its first 4 kB stored")
        self.assertEqual((self.get("/api/v1/flows?format=json&filter=" + flt, raw=True) or "").strip(), "")
        eve = self.path("eve.json")
        now = time.time()
        with open(eve, "w") as f:
            f.write(eve_line({"src": SUSPECT, "dst": PEER, "sport": 40000, "dport": 5000, "proto": "udp"}, 778,
                             "%d.%06d" % (int(now), int(now % 1 * 1e6)), "keep the connection"))
        out = self.path("out")
        started = time.monotonic()
        self.ns_run(TM, "evidence", "--server", self.url, "--eve", eve, "--out", out, "--keep", "%ds" % self.KEEP,
                    "--scope", "conn", "--wait", "20s")
        with open(os.path.join(out, "778.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["kept"]["connections_suspended"], 1, doc)
        self.assertEqual(self.get("/api/v1/classes"), [])
        ev = doc["evidence"]
        self.assertEqual((ev["packets"], ev.get("open")), (4, True), ev)
        self.assertNotIn("no flow record", ev.get("note", ""))
        self.assertLess(time.monotonic() - started, 15, "evidence waited for a flow record")

    def test_refused_without_a_class_without_cutoff_or_without_server(self):
        eve = self.path("eve.json")
        with open(eve, "w") as f:
            f.write(eve_line(ABSENT, 1, "1764075600.000000", "x"))
        p = tm("evidence", "--store", self.store, "--eve", eve, "--out", self.path("o"), "--keep", "1h", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--keep needs --server", p.stderr.decode())
        self.serve('[[class]]\nname = "default"\ncutoff = "4k"\n')
        p = self.ns_run(TM, "evidence", "--server", self.url, "--eve", eve, "--out", self.path("o"), "--keep", "1h",
                        check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('no class without cutoff', p.stderr.decode())
        self.assertIn('[[class]] name = "suspect"', p.stderr.decode())
        # A refused run makes no --out directory (it was made before the checks), nor one whose log
        # is not there.
        self.assertFalse(os.path.exists(self.path("o")))
        p = tm("evidence", "--store", self.store, "--eve", self.path("nosuch.json"), "--out", self.path("o"),
               check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot open %s: No such file or directory" % self.path("nosuch.json"), p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("o")))


if __name__ == "__main__":
    import unittest
    unittest.main()
