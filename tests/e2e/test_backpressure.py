"""A live capture whose RAM budget is full waits for the writer by default, leaving the overflow in the kernel's
capture buffer, instead of dropping at once: a burst of several times a 1 MiB ram_budget, replayed over a veth
pair in a namespace of the test's own into a writer slowed down by the test hook, is stored whole, nothing
dropped by tm or by the kernel; with --when-ring-full drop the same burst loses packets (dropped_ring_full), so
the test tells the two apart.

Needs root, `ip netns` and tcpreplay; skips (saying why) otherwise."""
import json
import struct
import sys
import unittest

from tmtest import TM, NetnsTest, StoreTest, read_pcap, store_segments, write_pcap

FRAMES = 3000
FRAME = 1000  # bytes: a 3 MB burst, three times the budget
BUDGET = "1m"
DELAY_US = "1000"  # the writer takes >= 3 s for the burst, the replay (50 Mbit/s) about 0.5 s


def burst(path):
    """FRAMES UDP frames of FRAME bytes over 50 connections, each frame distinct."""
    frames = []
    for i in range(FRAMES):
        payload = struct.pack(">I", i) + bytes([i % 251]) * (FRAME - 46)
        udp = struct.pack(">HHHH", 10000 + i % 50, 53, 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                         bytes([10, 0, 1, 2])) + udp
        eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
        frames.append((1_700_000_000 * 10**9 + i * 1000, len(eth), len(eth), eth))
    write_pcap(path, frames)
    return [f[3] for f in frames]


class Backpressure(NetnsTest, StoreTest):
    def setUp(self):
        self.netns("tmbp")
        super().setUp()

    def record_burst(self, *extra):
        pcap = self.path("burst.pcap")
        want = burst(pcap)
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:  # a kernel buffer far larger than the burst
            f.write('[capture]\nbuffer_size = "32m"\n')
        tm = self.spawn("tm", [TM, "record", "--store", self.store, "--interface", self.capture, "--json", "--config",
                               cfg, "--cutoff", "none", "--ram-budget", BUDGET, "--test-writer-delay-us", DELAY_US,
                               *extra])
        self.wait_capturing(tm, "tm record")
        self.replay([pcap])
        return tm, want

    def test_a_full_budget_waits_and_the_kernel_buffer_holds_the_overflow(self):
        tm, want = self.record_burst()
        self.wait_size(lambda: store_segments(self.store), 24 + sum(16 + len(f) for f in want), "tm")
        s = json.loads(self.stop(tm, "tm record"))
        c = s["classes"]["default"]
        got = [rec[3] for seg in store_segments(self.store) for rec in read_pcap(seg)]
        self.assertEqual(c["dropped_ring_full"], 0)
        self.assertEqual(s["kernel"]["dropped"], 0)
        self.assertGreater(s["ring_waits"], 0, "the burst did not fill the budget: the test proves nothing")
        self.assertEqual(len(got), FRAMES)
        self.assertEqual(got, want)

    def test_drop_mode_loses_the_same_burst(self):
        tm, want = self.record_burst("--when-ring-full", "drop")
        s = json.loads(self.stop(tm, "tm record"))
        c = s["classes"]["default"]
        self.assertGreater(c["dropped_ring_full"], 0)
        self.assertEqual(c["stored_packets"] + c["dropped_ring_full"], FRAMES)
        self.assertEqual(s.get("ring_waits", 0), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[1:], verbosity=2)
