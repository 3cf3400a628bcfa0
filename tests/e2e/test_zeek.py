"""tm flows --format zeek|zeek-json: a Zeek conn.log that zeek-cut and conn.log readers take."""
import json
import os
import shutil
import subprocess
import unittest

from tmtest import StoreTest, corpus, record, tm

CONN_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
               "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history",
               "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents"]
STATES = {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"}

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def uid_of(flow_id):
    flow_id = int(flow_id)  # the flow JSON writes ids as strings
    s = ""
    while True:
        s = B62[flow_id % 62] + s
        flow_id //= 62
        if not flow_id:
            return "C" + s


class ZeekConnLog(StoreTest):
    def setUp(self):
        super().setUp()
        record(self.store, [corpus("mixed", "bro.org.pcap"), corpus("mixed", "nmap-vsn.pcap")])

    def test_tsv_header_and_rows(self):
        out = tm("flows", "--store", self.store, "--format", "zeek", "-q").stdout.decode()
        lines = out.rstrip("\n").split("\n")
        self.assertEqual(lines[0], "#separator \\x09")
        self.assertEqual(lines[4], "#path\tconn")
        fields = [l for l in lines if l.startswith("#fields\t")][0].split("\t")[1:]
        types = [l for l in lines if l.startswith("#types\t")][0].split("\t")[1:]
        self.assertEqual(len(fields), len(types))
        self.assertEqual(fields[:len(CONN_FIELDS)], CONN_FIELDS)  # Zeek's own columns in Zeek's order
        self.assertTrue(lines[-1].startswith("#close\t"))
        rows = [l.split("\t") for l in lines if not l.startswith("#")]
        want = len(tm("flows", "--store", self.store, "--format", "json", "-q").stdout.decode().splitlines())
        self.assertEqual(len(rows), want)
        self.assertGreater(len(rows), 10)
        uids = set()
        for r in rows:
            self.assertEqual(len(r), len(fields), r)
            v = dict(zip(fields, r))
            self.assertIn(v["conn_state"], STATES)
            self.assertEqual(v["orig_bytes"], "-")  # payload bytes: tm does not know them
            self.assertTrue(v["uid"].startswith("C"))
            uids.add(v["uid"])
            float(v["ts"])
        self.assertEqual(len(uids), len(rows))
        states = {dict(zip(fields, r))["conn_state"] for r in rows}
        self.assertIn("SF", states)  # bro.org.pcap has whole HTTP connections

        if shutil.which("zeek-cut"):
            p = subprocess.run(["zeek-cut", "uid", "conn_state"], input=out.encode(), stdout=subprocess.PIPE,
                               check=True)
            cut = [l.split("\t") for l in p.stdout.decode().splitlines()]
            self.assertEqual(len(cut), len(rows))

        # tm's own Zeek reader (tm evidence) takes the log and finds each connection's flow again.
        log = self.path("conn.log")
        with open(log, "w") as f:
            f.write(out)
        ev = self.path("evidence")
        tm("evidence", "--store", self.store, "--zeek", log, "--out", ev)
        for r in rows[:5]:
            v = dict(zip(fields, r))
            with open(os.path.join(ev, v["uid"] + ".json")) as f:
                j = json.load(f)
            self.assertEqual(uid_of(j["flow"]["id"]), v["uid"])
            self.assertGreater(os.path.getsize(os.path.join(ev, v["uid"] + ".pcap")), 24)

        js = [json.loads(l) for l in
              tm("flows", "--store", self.store, "--format", "zeek-json", "-q").stdout.decode().splitlines()]
        self.assertEqual(len(js), len(rows))
        for j, r in zip(js, rows):
            v = dict(zip(fields, r))
            self.assertEqual(j["uid"], v["uid"])
            self.assertEqual(j["id.orig_h"], v["id.orig_h"])
            self.assertIsInstance(j["ts"], float)
            self.assertNotIn("orig_bytes", j)
            self.assertEqual(j["tm_orig_wire_bytes"], int(v["tm_orig_wire_bytes"]))


if __name__ == "__main__":
    unittest.main()
