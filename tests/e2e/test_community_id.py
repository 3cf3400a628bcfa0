"""Community ID on flow records: the same IDs tshark's Community ID postdissector computes."""
import base64
import json
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from tmtest import TM, listening_port, StoreTest, corpus, record, tcpdump_packets, tm

LONG = '[connections]\ntcp_timeout = "1d"\ntcp_closed_timeout = "1d"\nudp_timeout = "1d"\nother_timeout = "1d"\n'
FILES = [("mixed", "bro.org.pcap"), ("mixed", "ssh.pcap"), ("mixed", "var-services-std-ports.pcap"),
         ("mixed", "nmap-vsn.pcap"), ("mixed", "dhcp_flood.pcap"), ("ipv4", "sctp.pcap")]


def tshark_ids(path):
    """{community id} of every TCP, UDP and SCTP packet, per tshark (Wireshark's communityid)."""
    out = subprocess.run(["tshark", "--enable-protocol", "communityid", "-r", path, "-T", "fields",
                          "-e", "communityid", "-Y", "(tcp or udp or sctp) and not icmp and not icmpv6"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout.decode()
    return {line.split(",")[0] for line in out.splitlines() if line.strip()}


class CommunityIdOracle(StoreTest):
    def test_flow_ids_equal_tshark(self):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(LONG)
        for folder, name in FILES:
            src = corpus(folder, name)
            store = self.path("s-" + name)
            record(store, [src], "--config", cfg, "--cutoff", "none")
            rows = [json.loads(x) for x in tm("flows", "--store", store, "--format", "json", "-q").stdout.decode()
                    .splitlines()]
            ours = {r["community_id"] for r in rows if r["proto"] in ("tcp", "udp", "sctp") and not r["tunnel"]}
            theirs = tshark_ids(src)
            with self.subTest(file=name):
                self.assertTrue(theirs, "tshark found no TCP/UDP/SCTP packets in " + name)
                self.assertEqual(ours, theirs)
            for r in rows:
                if r["proto"] in ("icmp", "icmp6"):
                    self.assertIsNone(r["community_id"])

    def test_csv_has_the_column(self):
        store = self.path("s")
        record(store, [corpus("mixed", "ssh.pcap")], "--cutoff", "none")
        lines = tm("flows", "--store", store, "--format", "csv", "-q").stdout.decode().splitlines()
        header = lines[0].split(",")
        self.assertIn("community_id", header)
        col = header.index("community_id")
        self.assertTrue(all(line.split(",")[col].startswith("1:") for line in lines[1:]))


    def test_selectors(self):
        """--community-id on tm flows and tm query (local and through tm serve): the connection's
        packets in both directions, as tcpdump selects them by their exact 5-tuple."""
        src = corpus("mixed", "var-services-std-ports.pcap")
        store = self.path("s")
        record(store, [src], "--cutoff", "none")
        rows = [json.loads(x) for x in tm("flows", "--store", store, "--format", "json", "-q").stdout.decode()
                .splitlines()]
        picks = [r for r in rows if r["proto"] in ("tcp", "udp")][:3]
        self.assertTrue(picks)
        err = open(self.path("serve.err"), "w+b")
        self.addCleanup(err.close)
        server = subprocess.Popen([TM, "serve", "--store", store, "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.DEVNULL, stderr=err)
        try:
            url = "http://127.0.0.1:%d" % listening_port(server, err, "tm serve")
            wait_health(url)
            for r in picks:
                cid = r["community_id"]
                with self.subTest(cid=cid):
                    got = [json.loads(x) for x in tm("flows", "--store", store, "--format", "json", "-q",
                                                     "--community-id", cid).stdout.decode().splitlines()]
                    self.assertTrue(got)
                    self.assertTrue(all(g["community_id"] == cid for g in got))
                    self.assertEqual(len(got), sum(1 for x in rows if x["community_id"] == cid))
                    a, b = r["orig_addr"], r["resp_addr"]
                    pa, pb = r["orig_port"], r["resp_port"]
                    exact = ("%s and ((src host %s and src port %d and dst host %s and dst port %d) or "
                             "(src host %s and src port %d and dst host %s and dst port %d))"
                             % (r["proto"], a, pa, b, pb, b, pb, a, pa))
                    want = tcpdump_packets(src, exact)
                    self.assertTrue(want)
                    out = self.path("q.pcap")
                    tm("query", "--store", store, "--community-id", cid, "-w", out, "-q")
                    self.assertEqual(tcpdump_packets(out), want)
                    n = tm("query", "--store", store, "--community-id", cid, "--count", "-q").stdout
                    self.assertEqual(int(n), len(want))
                    tm("query", "--server", url, "--community-id", cid, "-w", out, "-q")
                    self.assertEqual(tcpdump_packets(out), want)
                    # The hex form (an IDS with its base64 option off) is the same connection.
                    hexed = "1:" + base64.b64decode(cid[2:]).hex()
                    tm("query", "--server", url, "--community-id", hexed, "-w", out, "-q")
                    self.assertEqual(tcpdump_packets(out), want)
                    got = [json.loads(x) for x in tm("flows", "--store", store, "--format", "json", "-q",
                                                     "--community-id", hexed.upper())
                           .stdout.decode().splitlines()]
                    self.assertEqual(len(got), sum(1 for x in rows if x["community_id"] == cid))
                    # With a filter as well: and'ed.
                    tm("query", "--store", store, "--community-id", cid, "-w", out, "-q", "src host " + a)
                    self.assertEqual(tcpdump_packets(out), tcpdump_packets(src, "(%s) and src host %s" % (exact, a)))
                    # An `or` in the filter keeps its precedence (query/combine.h): the connection's packets
                    # from a or from another host c, i.e. from a only; read plainly, every packet of c too.
                    others = [x["orig_addr"] for x in rows if x["orig_addr"] not in (a, b)]
                    self.assertTrue(others)
                    wide = "src host %s or src host %s" % (a, others[0])
                    want_a = tcpdump_packets(src, "(%s) and (%s)" % (exact, wide))
                    self.assertLess(len(want_a), len(tcpdump_packets(src, "%s and %s" % (exact, wide))))
                    for where in (("--store", store), ("--server", url)):
                        tm("query", *where, "--community-id", cid, "-w", out, "-q", wide)
                        self.assertEqual(tcpdump_packets(out), want_a, where[0])
                    n = tm("query", "--store", store, "--community-id", cid, "--count", "-q", wide).stdout
                    self.assertEqual(int(n), len(want_a))
                    # A filter whose parentheses do not balance would close the selector's: refused.
                    for where in (("--store", store, "-w", out), ("--server", url, "-w", out),
                                  ("--store", store, "--count")):
                        p = tm("query", *where, "--community-id", cid, "-q", "port 1) or (port 2", check=False)
                        self.assertNotEqual(p.returncode, 0, where)
                        self.assertIn(b"closes no '('", p.stderr, where)
            # A well-formed ID nobody has: an empty answer with a warning; a malformed one: refused.
            p = tm("query", "--store", store, "--community-id", "1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--count",
                   check=False)
            self.assertEqual(p.returncode, 0)
            self.assertEqual(p.stdout.strip(), b"0")
            self.assertIn(b"no flow record", p.stderr)
            p = tm("query", "--store", store, "--community-id", "1:nope", "-w", self.path("x"), check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"Community ID", p.stderr)
            p = tm("flows", "--server", url, "--community-id", "1:nope", check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"Community ID", p.stderr)
            # Given empty (an unset field of a log line, say): refused, not taken for every connection.
            for args in (("query", "--store", store, "--count"), ("query", "--server", url, "--count"),
                         ("flows", "--store", store), ("flows", "--server", url)):
                with self.subTest(empty=args):
                    p = tm(*args, "--community-id", "", check=False)
                    self.assertEqual(p.returncode, 105, p.stderr)  # (CLI11's, as for --from '')
                    self.assertIn(b"--community-id: given empty", p.stderr)
                    self.assertEqual(p.stdout, b"")
            for path in ("/api/v1/count?community_id=", "/api/v1/count?flow_id=", "/api/v1/query?community_id=",
                         "/api/v1/flows?community_id="):
                with self.subTest(path=path), self.assertRaises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen(url + path, timeout=10)
                self.assertEqual(e.exception.code, 400, path)
                self.assertIn(b"given empty", e.exception.read())
            for body in ({"community_id": ""}, {"flow_id": ""}):
                req = urllib.request.Request(url + "/api/v1/count", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
                with self.subTest(body=body), self.assertRaises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen(req, timeout=10)
                self.assertEqual(e.exception.code, 400, body)
        finally:
            server.terminate()
            server.wait(30)


def wait_health(url):
    for _ in range(200):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("tm serve did not answer at " + url)


if __name__ == "__main__":
    unittest.main()
