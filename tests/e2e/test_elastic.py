"""The elastic RAM buffer: a burst far larger than the two chunks a ring turns over while the writer keeps
up is absorbed up to the class's ram_budget, with nothing dropped, and the writer catches up; only a burst
beyond the whole budget loses packets, counted by reason. The writer is slowed down by the test hook
--test-writer-delay-us; reading a file with --when-ring-full drop behaves as a live capture when full."""
import os
import struct
import sys
import unittest

from tmtest import StoreTest, read_pcap, record, store_segments, write_pcap

FRAMES = 3000
FRAME = 1000  # bytes: a 3 MB burst


def burst(path):
    """FRAMES UDP frames of FRAME bytes, 1 us apart, over 50 connections."""
    frames = []
    for i in range(FRAMES):
        payload = bytes([i % 251]) * (FRAME - 42)
        udp = struct.pack(">HHHH", 10000 + i % 50, 53, 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                         bytes([10, 0, 1, 2])) + udp
        eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
        frames.append((1_700_000_000 * 10**9 + i * 1000, len(eth), len(eth), eth))
    write_pcap(path, frames)
    return [f[3] for f in frames]


class Elastic(StoreTest):
    def run_burst(self, budget):
        pcap = self.path("burst.pcap")
        want = burst(pcap)
        s = record(self.store, [pcap], "--cutoff", "none", "--ram-budget", budget, "--when-ring-full", "drop",
                   "--test-writer-delay-us", "300")
        c = s["classes"]["default"]
        stored = [rec[3] for seg in store_segments(self.store) for rec in read_pcap(seg)]
        self.assertEqual(c["seen_packets"], FRAMES)
        self.assertEqual(c["stored_packets"] + c["dropped_ring_full"] + c["dropped_too_large"], FRAMES)
        self.assertEqual(c["written_packets"], c["stored_packets"], "the writer caught up with what it was given")
        self.assertEqual(len(stored), c["stored_packets"])
        return s, c, want, stored

    def test_burst_within_the_budget_loses_nothing(self):
        s, c, want, stored = self.run_burst("8m")
        self.assertEqual(c["dropped_ring_full"], 0)
        self.assertEqual(c["dropped_too_large"], 0)
        self.assertEqual(stored, want)
        # The buffer grew far beyond the two chunks (2 MiB) a ring turns over while the writer keeps up.
        self.assertGreaterEqual(c["ring_high_water"], 3 << 20)
        self.assertLessEqual(c["ring_high_water"], c["ring_capacity"])
        self.assertEqual(c["ring_capacity"], 8 << 20)
        self.assertEqual(c["ring_used"], 0, "the buffer is empty once the writer finished")

    def test_burst_beyond_the_budget_drops_only_when_the_budget_is_full(self):
        s, c, want, stored = self.run_burst("1m")
        self.assertGreater(c["dropped_ring_full"], 0)
        self.assertEqual(c["dropped_too_large"], 0)
        self.assertEqual(c["ring_capacity"], 1 << 20)
        # Drops began only once (nearly) every chunk of the budget was lent: at most one chunk (an eighth)
        # short, the consumed part of the chunk the writer was in.
        self.assertGreaterEqual(c["ring_high_water"], c["ring_capacity"] - (c["ring_capacity"] >> 3))
        # What was kept is what was sent, in order, without the dropped ones.
        it = iter(want)
        self.assertTrue(all(any(f == w for w in it) for f in stored), "stored frames are not a subsequence")
        # At least the budget's worth (less chunk tails) got in before the first drop.
        self.assertGreater(c["stored_packets"] * FRAME, (1 << 20) * 3 // 4)


if __name__ == "__main__":
    unittest.main()
