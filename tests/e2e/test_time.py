"""Time truth: time windows are exact whatever the order of the input — files given newest
first, timestamps that go backwards inside a file — checked against tshark's timestamps."""
import bisect
import os
import subprocess
import unittest
from decimal import Decimal

import tmtest
from tmtest import corpus, corpus_files, run, tm

NS = 1000000000


def timestamps(path):
    """Every packet's time in nanoseconds, as tshark reads it (frame.time_epoch)."""
    p = run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.time_epoch"])
    return [int(Decimal(x) * NS) for x in p.stdout.decode().split()]


def epoch(ns):
    return "%d.%09d" % (ns // NS, ns % NS)


def count_between(sorted_ts, lo, hi):
    return bisect.bisect_left(sorted_ts, hi) - bisect.bisect_left(sorted_ts, lo)


def tm_count(store, lo, hi, flt=""):
    p = tm("query", "--store", store, "--count", "--from", epoch(lo), "--to", epoch(hi), flt)
    return int(p.stdout.decode().split()[0])


def tm_times(store, lo, hi):
    """The timestamps of `tm query` output (checks it is a pcap in time order)."""
    p = tm("query", "--store", store, "--from", epoch(lo), "--to", epoch(hi), "-w", "-", "")
    out = []
    for line in run(["tcpdump", "-tt", "-nn", "-r", "-"], input=p.stdout).stdout.decode().splitlines():
        out.append(int(Decimal(line.split()[0]) * NS))
    return out


class TimeWindows(tmtest.StoreTest):
    @classmethod
    def setUpClass(cls):
        cls.files = corpus_files("mixed")
        cls.ts = {f: timestamps(f) for f in cls.files}
        cls.all_ts = sorted(t for f in cls.files for t in cls.ts[f])

    def store_dir(self):
        return self.path("store%d" % len(os.listdir(self.tmp)))

    def windows(self, f):
        lo, hi = min(self.ts[f]), max(self.ts[f]) + 1
        mid = lo + (hi - lo) // 2
        return [(lo, mid), (mid, hi)]

    def test_newest_file_first(self):
        # One run, the newest capture first: every capture's own first and second half is
        # answered exactly, by index and by scan (a libpcap-only filter), over small segments.
        store = self.store_dir()
        order = sorted(self.files, key=lambda f: min(self.ts[f]), reverse=True)
        tmtest.record(store, order, "--cutoff", "none", "--segment-size", "256k")
        self.assertGreater(len(tmtest.store_segments(store)), 10)
        for f in self.files:
            for lo, hi in self.windows(f):
                want = count_between(self.all_ts, lo, hi)
                with self.subTest(file=os.path.basename(f), window=(epoch(lo), epoch(hi))):
                    self.assertEqual(tm_count(store, lo, hi), want)
                    self.assertEqual(tm_count(store, lo, hi, "greater 0"), want)  # scanned
        # The whole answer in time order.
        got = tm_times(store, self.all_ts[0], self.all_ts[-1] + 1)
        self.assertEqual(got, self.all_ts)

    def test_names_tell_the_smallest_time(self):
        # A segment's name carries its smallest timestamp once sealed, wherever that packet is.
        store = self.store_dir()
        f1, f2 = corpus("mixed", "1000-requests-one-dropped-response.pcap"), corpus("mixed", "smb3_multichannel.pcap")
        tmtest.record(store, [f1, f2], "--cutoff", "none")
        for seg in tmtest.store_segments(store):
            name_ts = int(os.path.basename(seg).split("-")[1])
            seg_ts = timestamps(seg)
            self.assertEqual(name_ts, min(seg_ts), seg)
        lo, hi = min(self.ts[f2]), max(self.ts[f2]) + 1
        want = len(tmtest.tcpdump_packets(f2, "host 172.17.0.184"))
        self.assertGreater(want, 0)
        self.assertEqual(tm_count(store, lo, hi, "host 172.17.0.184"), want)
        self.assertEqual(tm_count(store, lo, hi), len(self.ts[f2]))


class BackwardsInFile(tmtest.StoreTest):
    def store_dir(self):
        return self.path("store%d" % len(os.listdir(self.tmp)))

    def make_capture(self):
        """cwd-navigation.pcap with its middle third moved two hours back (editcap -t) and
        the thirds concatenated in file order (mergecap -a): time jumps back, then forward."""
        src = corpus("mixed", "cwd-navigation.pcap")
        d = self.path("src")
        os.makedirs(d)
        n = len(timestamps(src))
        a, b = n // 3, 2 * n // 3
        parts = []
        for i, (first, last, shift) in enumerate([(1, a, 0), (a + 1, b, -7200), (b + 1, n, 0)]):
            p = os.path.join(d, "part%d.pcap" % i)
            run(["editcap", "-F", "pcap", "-r", "-t", str(shift), src, p, "%d-%d" % (first, last)])
            parts.append(p)
        out = os.path.join(d, "backwards.pcap")
        run(["mergecap", "-F", "pcap", "-a", "-w", out] + parts)
        return out

    def test_every_window_exact(self):
        cap = self.make_capture()
        ts_file = timestamps(cap)
        self.assertLess(min(ts_file[len(ts_file) // 2:]), ts_file[0])  # it does go back
        ts = sorted(ts_file)
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write("[store]\ndirectory_every = 64\n")
        for seg_size in ["64m", "512k"]:
            store = self.store_dir()
            tmtest.record(store, [cap], "--cutoff", "none", "--segment-size", seg_size, "--config", cfg)
            span = ts[-1] + 1 - ts[0]
            bounds = [ts[0] + span * i // 16 for i in range(17)]
            # Also windows that start or end on a packet's own timestamp, around the jumps.
            edges = [ts_file[0], ts_file[len(ts_file) // 3], ts_file[len(ts_file) // 3 + 1],
                     ts_file[2 * len(ts_file) // 3], ts_file[-1]]
            wins = list(zip(bounds, bounds[1:])) + [(e, e + 60 * NS) for e in edges] + \
                [(e - 60 * NS, e) for e in edges] + [(e, e + 1) for e in edges]
            for lo, hi in wins:
                with self.subTest(segment_size=seg_size, window=(epoch(lo), epoch(hi))):
                    self.assertEqual(tm_count(store, lo, hi), count_between(ts, lo, hi))
            self.assertEqual(tm_times(store, ts[0], ts[-1] + 1), ts)


if __name__ == "__main__":
    unittest.main()
