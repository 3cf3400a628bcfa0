"""Restart and crash recovery: everything that reached disk stays queryable."""
import os
import random
import signal
import struct
import subprocess
import time

from tmtest import (write_pcap, TM, StoreTest, corpus, read_pcap, record, run, store_segments, tcpdump_packets, tm)


def wait_first_sealed(p, d, most=60):
    """Until recorder P has sealed a segment in class directory D (or ended, or MOST seconds passed)."""
    deadline = time.monotonic() + most
    while p.poll() is None and time.monotonic() < deadline and not (
            os.path.isdir(d) and any(f.endswith(".idx") for f in os.listdir(d))):
        time.sleep(0.01)


class Restart(StoreTest):
    def test_half_then_half_equals_whole(self):
        src = corpus("mixed", "bro.org.pcap")
        frames = read_pcap(src)
        a, b = self.path("a.pcap"), self.path("b.pcap")
        write_pcap(a, frames[:len(frames) // 2])
        write_pcap(b, frames[len(frames) // 2:])
        record(self.store, [a], "--cutoff", "none", "--segment-size", "64k")
        first = set(store_segments(self.store))
        s = record(self.store, [b], "--cutoff", "none", "--segment-size", "64k")
        self.assertGreater(s["classes"]["default"]["segments"], len(first))
        self.assertTrue(first <= set(store_segments(self.store)), "old segments are kept")
        for flt in ["", "host 10.0.2.15", "port 55080", "tcp and not port 80", "dst host 192.150.187.43"]:
            with self.subTest(filter=flt):
                out = self.path("q.pcap")
                tm("query", "--store", self.store, "-q", "-w", out, flt)
                self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(src, flt or None))
        st = tm("stats", "--store", self.store, "--json").stdout
        import json
        j = json.loads(st)
        self.assertEqual(j["total"]["packets"], len(frames))
        self.assertEqual(j["total"]["open"], 0)

    def test_sequence_continues(self):
        record(self.store, [corpus("mixed", "wikipedia.pcap")], "--cutoff", "none")
        record(self.store, [corpus("mixed", "wikipedia.pcap")], "--cutoff", "none", "--force")
        names = [os.path.basename(p) for p in store_segments(self.store)]
        self.assertEqual([n[:8] for n in names], ["00000001", "00000002"])


class Crash(StoreTest):
    def test_kill_9_loses_nothing_sealed(self):
        src = corpus("mixed", "echo-connections.pcap")
        rnd = random.Random(7)
        budget = 2 * 1024 * 1024
        recovered = had_sealed = 0
        for attempt in range(4):
            with self.subTest(attempt=attempt):
                p = subprocess.Popen([TM, "record", "--store", self.store, "--read", src, "--cutoff", "none",
                                      "--segment-size", "64k", "--disk-budget", "2m", "--test-writer-delay-us", "65",
                                      "--force"],  # (the attempt before left the file begun)
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                d = os.path.join(self.store, "default")
                # Kill at a random moment after the first segment is sealed (waited for rather
                # than guessed: a sanitizer build on a loaded machine starts slowly).
                wait_first_sealed(p, d)
                time.sleep(rnd.random() * 0.8)
                sealed = {}
                if os.path.isdir(d):
                    for f in sorted(os.listdir(d)):
                        if f.endswith(".idx"):
                            pc = os.path.join(d, f[:-4] + ".pcap")
                            try:
                                sealed[pc] = tcpdump_packets(pc)
                            except AssertionError:  # (deleted meanwhile for the budget, oldest first)
                                if os.path.exists(pc):
                                    raise
                p.send_signal(signal.SIGKILL)
                p.wait()
                # Restart: adopting the store recovers the segment that was being written.
                r = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"),
                       "--disk-budget", "2m", "--segment-size", "64k")
                stats = tm("stats", "--store", self.store, "--json").stdout
                import json
                j = json.loads(stats)
                self.assertEqual(j["total"]["open"], 0, "the partial segment was sealed")
                self.assertEqual(j["total"]["bad_sidecar"], 0)
                size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
                self.assertLessEqual(size, budget + 80 * 1024)
                out = self.path("all.pcap")
                tm("query", "--store", self.store, "-q", "-w", out, "")
                got = set(tcpdump_packets(out))
                for seg, pkts in sealed.items():
                    if os.path.exists(seg):  # still there unless the budget evicted it (oldest first)
                        missing = [x for x in pkts if x not in got]
                        self.assertEqual(missing[:1], [], "%s: sealed packets lost" % seg)
                for seg in store_segments(self.store):
                    run(["tcpdump", "-r", seg, "-w", "/dev/null"])
                recovered += "recovered" in r.stderr.decode()
                had_sealed += bool(sealed)
        self.assertGreater(recovered, 0, "no kill landed while a segment was open: the test proved nothing")
        self.assertGreater(had_sealed, 0)


    def test_an_import_killed_midway_is_not_stored_twice_by_the_next_run(self):
        """kill -9 of an import: the next `tm record` of the same file refuses it (its first part is in the
        store already) rather than storing that part twice; --force records it whole again, and a leftover
        flow file that cannot be read does not stop that run."""
        src = corpus("mixed", "echo-connections.pcap")
        n = len(tcpdump_packets(src))
        p = subprocess.Popen([TM, "record", "--store", self.store, "--read", src, "--cutoff", "none",
                              "--segment-size", "64k", "--test-writer-delay-us", "200"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = os.path.join(self.store, "default")
        wait_first_sealed(p, d)
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL, "the import ended before the kill: the test proved nothing")
        # What a kill leaves at worst in the flow files: one cut short before its header's end.
        flows = os.path.join(self.store, "flows")
        os.makedirs(flows, exist_ok=True)
        for f in os.listdir(flows):
            if f.endswith(".idx"):
                os.remove(os.path.join(flows, f))
        with open(os.path.join(flows, "00000009-1000000000-lt0.flows"), "wb") as f:
            f.write(b"TMFLOW\0")
        stored = int(tm("query", "--store", self.store, "-q", "--count", "").stdout)
        self.assertGreater(stored, 0)
        self.assertLess(stored, n)
        again = tm("record", "--store", self.store, "--read", src, "--cutoff", "none", check=False)
        err = again.stderr.decode()
        self.assertEqual(again.returncode, 1, err)
        self.assertIn("has no end logged", err)
        self.assertEqual(int(tm("query", "--store", self.store, "-q", "--count", "").stdout), stored)
        forced = tm("record", "--store", self.store, "--read", src, "--cutoff", "none", "--force", check=False)
        self.assertEqual(forced.returncode, 0, forced.stderr.decode())
        self.assertEqual(int(tm("query", "--store", self.store, "-q", "--count", "").stdout), stored + n)
        # That run ended its import: a next one says the file is imported, whole.
        third = tm("record", "--store", self.store, "--read", src, "--cutoff", "none", check=False)
        self.assertEqual(third.returncode, 1)
        self.assertIn("already imported", third.stderr.decode())
        self.assertNotIn("has no end logged", third.stderr.decode())
        # A --force run killed in its turn stored part of the file once more: the next run's message says
        # so, not only that the file was imported whole before.
        sealed_before = len([f for f in os.listdir(d) if f.endswith(".idx")])
        p = subprocess.Popen([TM, "record", "--store", self.store, "--read", src, "--cutoff", "none", "--force",
                              "--segment-size", "64k", "--test-writer-delay-us", "200"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline and \
                len([f for f in os.listdir(d) if f.endswith(".idx")]) <= sealed_before:
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL, "the forced import ended before the kill")
        fourth = tm("record", "--store", self.store, "--read", src, "--cutoff", "none", check=False)
        err = fourth.stderr.decode()
        self.assertEqual(fourth.returncode, 1, err)
        self.assertIn("already imported", err)
        self.assertIn("has no end logged", err)

class DamagedFiles(StoreTest):
    def test_a_fifo_or_directory_named_as_a_segment_is_foreign_not_read(self):
        """A FIFO in place of a segment's pcap hung every query and the recorder (opened as the segment,
        waiting for a writer); it, and a directory there, is a foreign file and the segment is missing."""
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k")
        d = os.path.join(self.store, "default")
        pcaps = sorted(f for f in os.listdir(d) if f.endswith(".pcap"))
        fifo, folder = os.path.join(d, pcaps[1]), os.path.join(d, pcaps[2])
        lost = sum(len(read_pcap(p)) for p in (fifo, folder))
        os.remove(fifo)
        os.mkfifo(fifo)
        os.remove(folder)
        os.mkdir(folder)
        p = run([TM, "query", "--store", self.store, "--count", ""], check=False, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(int(p.stdout), len(read_pcap(src)) - lost)
        import json
        j = json.loads(run([TM, "stats", "--store", self.store, "--json"], timeout=60).stdout)
        self.assertEqual(sorted(j["missing_segments"]), [fifo, folder])
        self.assertEqual(sorted(j["foreign_files"]), [fifo, folder])

    def test_corrupt_sidecars_rebuilt_foreign_files_left_alone(self):
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k")
        d = os.path.join(self.store, "default")
        idx = sorted(f for f in os.listdir(d) if f.endswith(".idx"))
        with open(os.path.join(d, idx[0]), "r+b") as f:  # bit flip in the body
            f.seek(150)
            c = f.read(1)
            f.seek(150)
            f.write(bytes([c[0] ^ 1]))
        os.truncate(os.path.join(d, idx[1]), 60)  # cut short
        with open(os.path.join(d, idx[2]), "r+b") as f:  # another version number
            f.seek(8)
            f.write(struct.pack("<I", 99))
        # Before they are rebuilt, tm stats names each with why (it counted them "bad" without a name).
        import json
        j = json.loads(tm("stats", "--store", self.store, "--json").stdout)
        # (stats reads the sidecars' headers: the bit flip in a body is the query's to find)
        self.assertEqual(j["total"]["bad_sidecar"], 2)
        self.assertEqual(sorted(b["segment"] for b in j["bad_segments"]),
                         [os.path.join(d, i[:-4] + ".pcap") for i in idx[1:3]])
        self.assertTrue(all(b["problem"] for b in j["bad_segments"]), j["bad_segments"])
        text = tm("stats", "--store", self.store).stdout.decode()
        self.assertEqual(text.count("bad sidecar (the segment is read whole by queries"), 2, text)
        foreign = [os.path.join(d, "notes.txt"), os.path.join(self.store, "operator.log")]
        for path in foreign:
            with open(path, "w") as f:
                f.write("mine\n")
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        err = p.stderr.decode()
        for path in foreign:
            self.assertTrue(os.path.exists(path))
            self.assertIn(os.path.basename(path), err)
        self.assertIn("rebuilt", err)
        j = json.loads(tm("stats", "--store", self.store, "--json").stdout)
        self.assertEqual(j["total"]["bad_sidecar"], 0)
        self.assertEqual(j["bad_segments"], [])
        self.assertEqual(j["total"]["packets"], len(read_pcap(src)))
        self.assertEqual(len(j["foreign_files"]), 2)
        out = self.path("q.pcap")
        tm("query", "--store", self.store, "-q", "-w", out, "host 10.0.2.15")
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(src, "host 10.0.2.15"))


if __name__ == "__main__":
    import unittest
    unittest.main()
