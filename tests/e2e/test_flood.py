"""Connection flood: with the connection table full, each new connection takes the place of an idle one
(ended with its flow record) instead of going untracked, established connections with recent packets keep
their entry, and the packet accounting stays exact (seen = stored + cut off + dropped)."""
import collections
import json
import struct
import unittest

from tmtest import StoreTest, tm, write_pcap

MAX = 200          # [connections] max
ESTABLISHED = 20   # connections with data, a packet every ESTABLISHED SYNs each
SYNS = 5000        # one-packet connections, all distinct
DATA = 1000        # payload bytes of an established connection's packet


def tcp_frame(src, dst, sport, dport, flags, payload=0):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + bytes(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst) + tcp
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip
    return eth + bytes(max(0, 60 - len(eth)))


class Flood(StoreTest):
    def test_flood_evicts_idle_connections_and_accounting_stays_exact(self):
        server, client = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        frames, ts, sent = [], 1_700_000_000 * 10**9, collections.Counter()
        for i in range(SYNS):
            ts += 1000
            src = bytes([198, 18, i >> 8, i & 0xff])
            f = tcp_frame(src, server, 1024 + i % 50000, 80, 0x02)
            frames.append((ts, len(f), len(f), f))
            port = 40000 + i % ESTABLISHED
            ts += 1000
            f = tcp_frame(client, server, port, 443, 0x18, DATA)
            frames.append((ts, len(f), len(f), f))
            sent[port] += 1
        pcap = self.path("flood.pcap")
        write_pcap(pcap, frames)
        conf = self.path("tm.conf")
        with open(conf, "w") as f:
            f.write("[connections]\nmax = %d\n" % MAX)
        store = self.path("store")
        p = tm("record", "--config", conf, "--store", store, "--read", pcap, "--cutoff", "4k", "--json")
        j = json.loads(p.stdout)

        # Exact accounting: every packet is stored, cut off or dropped, once.
        cls = j["classes"]["default"]
        self.assertEqual(j["packets"], len(frames))
        self.assertEqual(cls["seen_packets"], len(frames))
        self.assertEqual(cls["seen_packets"], cls["stored_packets"] + cls["cut_packets"] + cls["dropped_ring_full"])
        # Every connection tracked, the flood's replacing its own idle entries.
        self.assertEqual(j["untracked_packets"], 0)
        table = j["connection_table"]
        self.assertEqual(table["untracked"], 0)
        self.assertEqual(table["max"], MAX)
        self.assertEqual(table["peak"], MAX)
        self.assertEqual(j["connections"], SYNS + ESTABLISHED)
        self.assertEqual(table["evicted"], SYNS + ESTABLISHED - MAX)
        # The cutoff held for the established connections: 4 packets (4216 bytes >= 4k) each stored, the rest cut.
        self.assertEqual(cls["cut_packets"], sum(n - 4 for n in sent.values()))

        # Each connection has its flow record; each established one exactly one, with all its packets.
        out = tm("flows", "--store", store, "--format", "json", "-q").stdout.decode().splitlines()
        flows = [json.loads(x) for x in out]
        self.assertEqual(len(flows), SYNS + ESTABLISHED)
        est = [f for f in flows if 443 in (f["orig_port"], f["resp_port"])]
        self.assertEqual(len(est), ESTABLISHED)
        for f in est:
            self.assertEqual(f["orig_pkts"] + f["resp_pkts"], sent[f["orig_port"]], f)


if __name__ == "__main__":
    unittest.main()
