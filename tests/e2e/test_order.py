"""Input order: several --read files are merged by timestamp into one timeline, so the connection table,
the cutoff and the flow records are the same whatever order the files are given in; inside one file, a
packet older than those before it neither expires nor splits its connection."""
import collections
import json
import unittest

from tmtest import LONG_TIMEOUTS, StoreTest, conn_of, corpus, read_pcap, record, store_segments, tm, write_pcap

# Captures of different years, several sharing hosts (172.17.0.184 is in two of them).
FILES = ["bro.org.pcap", "ssh.pcap", "smb3_multichannel.pcap", "1000-requests-one-dropped-response.pcap",
         "var-services-std-ports.pcap", "wikipedia.pcap", "nmap-vsn.pcap", "dhcp_flood.pcap"]


def first_ts(path):
    return read_pcap(path)[0][0]


def hosts_of(frame):
    c = conn_of(frame)
    if c is None:
        return ()
    key = c[0]
    return {key[1][0], key[2][0]}


class InputOrder(StoreTest):
    def flows(self, store):
        p = tm("flows", "--store", store, "--format", "json", "-q")
        return [json.loads(x) for x in p.stdout.decode().splitlines()]

    def stored(self, store):
        """(per-host stored packet counts, sorted (ts, bytes) of every stored packet)."""
        per_host, pkts = collections.Counter(), []
        for seg in store_segments(store):
            for ts, cap, wire, data in read_pcap(seg):
                pkts.append((ts, data))
                for h in hosts_of(data):
                    per_host[h] += 1
        return per_host, sorted(pkts)

    def test_file_order_does_not_matter(self):
        files = sorted((corpus("mixed", f) for f in FILES), key=first_ts)
        newest_first, oldest_first = self.path("newest"), self.path("oldest")
        # A cutoff small enough to cut many connections: it must be counted once per connection.
        record(newest_first, list(reversed(files)), "--cutoff", "4k")
        record(oldest_first, files, "--cutoff", "4k")
        f1, f2 = self.flows(newest_first), self.flows(oldest_first)
        self.assertGreater(len(f1), 100)
        self.assertEqual(len(f1), len(f2))
        key = lambda f: (f["first"], f["orig_addr"], f["orig_port"], f["resp_addr"], f["resp_port"], f["proto"])
        for a, b in zip(sorted(f1, key=key), sorted(f2, key=key)):
            self.assertEqual(a, b)
        # No connection of these captures is idle for 5 minutes mid-way: none ends by timeout early, and
        # each has a single record (before merging, one TCP connection became five, four "timeout").
        conns = collections.Counter((f["proto"], frozenset([(f["orig_addr"], f["orig_port"]),
                                                            (f["resp_addr"], f["resp_port"])])) for f in f1)
        self.assertEqual([c for c, n in conns.items() if n > 1 and c[0] == "tcp"], [])
        # The same packets stored, so the same count per host.
        h1, p1 = self.stored(newest_first)
        h2, p2 = self.stored(oldest_first)
        self.assertEqual(h1, h2)
        self.assertEqual(len(p1), len(p2))
        self.assertTrue(p1 == p2, "the two stores hold different packets")
        # The host the issue saw doubled: one cutoff for its connection, whatever the order.
        host = "172.17.0.184"
        counts = [int(tm("query", "--store", s, "--count", "-q", "host " + host).stdout.split()[0])
                  for s in (newest_first, oldest_first)]
        self.assertGreater(counts[0], 0)
        self.assertEqual(counts[0], counts[1])

    def test_time_going_backwards_inside_a_file(self):
        # One capture made of its two halves, the later half first: the earlier half's connections are
        # from before the clock. Each connection must still be one flow record with the same times and
        # counts as in the capture in order. (The capture spans less than any timeout: no connection
        # ends by inactivity in either order.)
        src = corpus("mixed", "wikipedia.pcap")
        pkts = read_pcap(src)
        self.assertLess(pkts[-1][0] - pkts[0][0], 10 * 10**9)
        half = len(pkts) // 2
        swapped = self.path("swapped.pcap")
        write_pcap(swapped, pkts[half:] + pkts[:half])
        inorder, backwards = self.path("inorder"), self.path("backwards")
        record(inorder, [src], "--cutoff", "none")
        record(backwards, [swapped], "--cutoff", "none")
        f1, f2 = self.flows(inorder), self.flows(backwards)
        self.assertGreater(len(f1), 10)
        self.assertEqual(len(f1), len(f2))
        # Originator and responder may swap (the first packet seen is another one); the id is seeded
        # by the time the connection was first seen.
        ends = lambda f: tuple(sorted([(f["orig_addr"], f["orig_port"]), (f["resp_addr"], f["resp_port"])]))
        same = lambda f: (f["first"], f["last"], f["duration"], f["proto"], ends(f), f["orig_pkts"] + f["resp_pkts"],
                          f["orig_bytes"] + f["resp_bytes"], f["state"], f["stored_pkts"], f["tunnel"])
        self.assertEqual(sorted(map(same, f1)), sorted(map(same, f2)))

    def test_timestamps_back_decades_do_not_split_connections(self):
        # One packet from 20 years later, then a capture in order (as corpus/tunnels/l2tp-avp-overflow.pcap
        # has packets from 1971 after ones from 1995): the clock stays 20 years ahead of the capture's
        # packets, which must neither expire nor split their connections. (Timeouts of a day, so that
        # nothing expires in the capture alone either; a small table, so that the expiry sweep between
        # two batches of packets looks at every connection.)
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(LONG_TIMEOUTS + "max = 256\n")
        src = corpus("mixed", "bro.org.pcap")
        pkts = read_pcap(src)
        self.assertGreater(len(pkts), 2 * 256)  # several batches
        later = read_pcap(corpus("mixed", "nmap-vsn.pcap"))[0]
        later = (pkts[-1][0] + 20 * 365 * 86400 * 10**9,) + later[1:]
        jump = self.path("jump.pcap")
        write_pcap(jump, [later] + pkts)
        alone, after = self.path("alone"), self.path("after")
        r = record(alone, [src], "--config", cfg, "--cutoff", "none")
        self.assertEqual(r["untracked_packets"], 0)
        record(after, [jump], "--config", cfg, "--cutoff", "none")
        f1, f2 = self.flows(alone), self.flows(after)
        self.assertGreater(len(f1), 10)
        self.assertEqual(len(f2), len(f1) + 1)
        # The same records but for the id (seeded by the clock when the connection was first seen).
        no_id = lambda f: json.dumps({k: v for k, v in f.items() if k != "id"}, sort_keys=True)
        f2 = [f for f in f2 if f["first"] < "2030"]
        self.assertEqual(sorted(map(no_id, f1)), sorted(map(no_id, f2)))

if __name__ == "__main__":
    unittest.main()
