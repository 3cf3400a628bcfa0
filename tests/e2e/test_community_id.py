"""Community ID on flow records: the same IDs tshark's Community ID postdissector computes."""
import json
import subprocess
import unittest

from tmtest import StoreTest, corpus, record, tm

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


if __name__ == "__main__":
    unittest.main()
