"""One way to ask for formats (issue 18 items 7 and 8): --format text|json|csv on record, stats, flows and
connections (--json an alias), the same structure with --server as with --store, times as ISO-8601 and
epoch nanoseconds, --count with --server, unknown API parameters and flow filters that need packets
answered 400, the record summary's "stored N of M packets", evicted segments and the cutoff's note."""
import csv
import io
import json
import re
import signal
import subprocess
import time
import unittest
from datetime import datetime, timezone

from test_cluster import Cluster
from test_progress import LiveServe, send_udp
from tmtest import TM, corpus, read_pcap, record, run, tm

SSH = corpus("mixed", "ssh.pcap")  # long connections: the default 15k cutoff leaves most out


def iso_ns(text):
    """Epoch nanoseconds of an ISO-8601 UTC time with up to 9 fractional digits."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$", text)
    assert m, text
    s = int(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return s * 10**9 + int((m.group(2) or "0").ljust(9, "0"))


class RecordSummary(Cluster):
    def totals(self, j):
        c = j["classes"].values()
        return (sum(x["stored_packets"] for x in c), sum(x["seen_packets"] for x in c),
                sum(x["cut_packets"] for x in c), sum(x["cut_bytes"] for x in c))

    def test_stored_of_seen_and_the_cutoff_note(self):
        j = record(self.path("a"), [SSH])
        stored, seen, cut, cut_bytes = self.totals(j)
        self.assertGreater(cut, 0)
        self.assertEqual(seen, len(read_pcap(SSH)))
        text = tm("record", "--store", self.path("b"), "--read", SSH).stdout.decode()
        self.assertIn("stored %d of %d packets (%d cut off by the connection cutoff, 0 dropped)"
                      % (stored, seen, cut), text)
        self.assertRegex(text, r"note: the connection cutoff left out %d packets \([0-9.]+ [KMG]?i?B\) past the "
                               r"first bytes of their connections; to keep every packet, record with --cutoff none"
                         % cut)
        # --cutoff none: everything stored, no note.
        text = tm("record", "--store", self.path("c"), "--read", SSH, "--cutoff", "none").stdout.decode()
        self.assertIn("stored %d of %d packets (0 cut off" % (seen, seen), text)
        self.assertNotIn("note: the connection cutoff", text)

    def test_evicted_segments_are_shown(self):
        big = corpus("mixed", "echo-connections.pcap")
        args = ["--cutoff", "none", "--segment-size", "256k", "--disk-budget", "1m"]
        j = record(self.path("a"), [big], *args)
        ev = sum(c["segments_evicted"] for c in j["classes"].values())
        self.assertGreater(ev, 0)
        text = tm("record", "--store", self.path("b"), "--read", big, *args).stdout.decode()
        self.assertRegex(text, r"; %d segments \([0-9.]+ [KMG]?i?B\) evicted by the disk budget or max_age" % ev)

    def test_record_format_csv_and_json_alias(self):
        j = json.loads(tm("record", "--store", self.path("a"), "--read", SSH, "--format", "json").stdout)
        rows = list(csv.DictReader(io.StringIO(
            tm("record", "--store", self.path("b"), "--read", SSH, "--format", "csv").stdout.decode())))
        self.assertEqual([r["class"] for r in rows], list(j["classes"]))
        for r in rows:
            c = j["classes"][r["class"]]
            # Every counter of the JSON's class (it lacked 8 of them), and its budget.
            self.assertEqual(set(r) - {"class"}, set(c))
            for k, v in c.items():
                self.assertEqual(r[k], v if isinstance(v, str) else json.dumps(v), k)
        self.assertNotEqual(tm("record", "--store", self.path("c"), "--read", SSH, "--format", "xml",
                               check=False).returncode, 0)


class StatsAndFlows(Cluster):
    def setUp(self):
        super().setUp()
        record(self.store, [SSH])

    def test_stats_formats_and_flow_records(self):
        j = json.loads(tm("stats", "--store", self.store, "--format", "json").stdout)
        self.assertEqual(j, json.loads(tm("stats", "--store", self.store, "--json").stdout))
        f = j["flows"]
        flows = [json.loads(l) for l in tm("flows", "--store", self.store, "--json").stdout.decode().splitlines()]
        self.assertGreater(f["records"], 0)
        self.assertGreaterEqual(f["records"], len(flows))
        self.assertEqual(iso_ns(f["first"]), f["first_ns"])
        self.assertEqual(iso_ns(j["total"]["first"]), j["total"]["first_ns"])
        self.assertEqual(iso_ns(j["total"]["last"]), j["total"]["last_ns"])
        text = tm("stats", "--store", self.store).stdout.decode()
        self.assertIn("flow records: %d in %d files (0 being written)" % (f["records"], f["files"]), text)
        rows = list(csv.DictReader(io.StringIO(tm("stats", "--store", self.store, "--format", "csv").stdout.decode())))
        self.assertEqual({r["class"]: int(r["packets"]) for r in rows},
                         {k: v["packets"] for k, v in j["classes"].items()})

    def test_same_structure_with_server_and_count(self):
        self.start_workers([self.store])
        url = self.workers[0]
        for fmt in ("text", "json", "csv"):
            with self.subTest(format=fmt):
                a = tm("stats", "--store", self.store, "--format", fmt).stdout.decode()
                b = tm("stats", "--server", url, "--format", fmt).stdout.decode()
                if fmt == "json":
                    self.assertEqual(json.loads(a), json.loads(b))
                else:
                    self.assertEqual(a.replace(self.store, url), b)
        for flt in ("", "tcp port 22", "tcp[13] & 2 != 0"):
            with self.subTest(filter=flt):
                a = tm("query", "--store", self.store, "--count", flt).stdout
                b = tm("query", "--server", url, "--count", flt).stdout
                self.assertEqual(a, b)
                self.assertGreater(int(a), 0)

    def test_flow_json_times_and_json_alias(self):
        a = tm("flows", "--store", self.store, "--json").stdout
        self.assertEqual(a, tm("flows", "--store", self.store, "--format", "json").stdout)
        for l in a.decode().splitlines():
            r = json.loads(l)
            self.assertEqual(iso_ns(r["first"]), r["first_ns"])
            self.assertEqual(iso_ns(r["last"]), r["last_ns"])
            self.assertIsInstance(r["proto"], str)

    def test_api_refuses_unknown_parameters_and_flow_filters_on_bytes(self):
        self.start_workers([self.store])
        url = self.workers[0]
        for path, name in (("/api/v1/query?filter=tcp&flow=1", "flow"), ("/api/v1/query?count=1", "count"),
                           ("/api/v1/flows?filter=tcp&fromm=1", "fromm"), ("/api/v1/connections?x=1", "x"),
                           ("/api/v1/subscribe?filter=tcp&limit=1", "limit")):
            with self.subTest(path=path):
                p = run(["curl", "-s", "-w", "\n%{http_code}", url + path])
                body, code = p.stdout.decode().rsplit("\n", 1)
                self.assertEqual(code, "400")
                self.assertIn("unknown parameter '%s'" % name, json.loads(body)["error"])
        p = run(["curl", "-s", "-w", "\n%{http_code}", url + "/api/v1/flows?filter=tcp%5B13%5D%20%26%202%20!%3D%200"])
        body, code = p.stdout.decode().rsplit("\n", 1)
        self.assertEqual(code, "400")
        self.assertIn("needs packets", json.loads(body)["error"])
        for where in (("--store", self.store), ("--server", url)):
            p = tm("flows", *where, "tcp[13] & 2 != 0", check=False)
            self.assertEqual(p.returncode, 2, where)
            self.assertIn("needs packets", p.stderr.decode())


class Connections(LiveServe):
    def test_connections_formats(self):
        self.start("--status-interval", "0")
        self.wait_for("tm serve: recording lo into", "start line")
        port = re.search(r"API on 127\.0\.0\.1:(\d+)", self.stderr()).group(1)
        url = "http://127.0.0.1:%s" % port
        ns = ["ip", "netns", "exec", self.ns, TM]
        send_udp(self.ns)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            j = json.loads(run(ns + ["connections", "--server", url, "--json"]).stdout)
            if j:
                break
            time.sleep(0.1)
        self.assertTrue(j, "no connection listed")
        self.assertIn("udp", [c["proto"] for c in j])  # (and the ICMP port unreachables, by name)
        self.assertEqual(iso_ns(j[0]["first"]), j[0]["first_ns"])
        # The same connections as JSON and CSV (asked twice of a live table: until a packet still on
        # its way in has been counted, the two may differ; the ten tries end as soon as they agree).
        # Only the UDP ones, which send_udp() sent and ended: the API's own TCP connection grows with
        # every request, and the ICMP unreachables may expire between the two requests.
        for _ in range(10):
            j2 = json.loads(run(ns + ["connections", "--server", url, "--format", "json", "udp"]).stdout)
            rows = list(csv.DictReader(io.StringIO(
                run(ns + ["connections", "--server", url, "--format", "csv", "udp"]).stdout.decode())))
            got = sorted((r["orig_addr"], r["resp_port"], r["proto"], r["packets"]) for r in rows)
            want = sorted((c["orig_addr"], str(c["resp_port"]), c["proto"], str(c["packets"])) for c in j2)
            if got == want:
                break
            time.sleep(0.2)
        self.assertTrue(want, "no UDP connection listed")
        self.assertEqual(got, want)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=60), 0, self.stderr())


if __name__ == "__main__":
    unittest.main()
