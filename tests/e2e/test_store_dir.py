"""The store directory (issue 19, weak spots): the STORE marker is checked, a store that lost
its marker gets a hint, and a file named as a segment that is no pcap is set aside, never
deleted, its sequence number never given again."""
import glob
import os
import subprocess
import sys
import unittest

from tmtest import TM, StoreTest, corpus, record, store_segments, tm

A = corpus("mixed", "ssh.pcap")
B = corpus("mixed", "afs.pcap")


class Marker(StoreTest):
    def test_two_recorders_making_one_new_store_at_once(self):
        # The second found the first one's files there before its marker and said "not empty and not a
        # tm store" (23 of 30 rounds before the fix); it is now told the store is in use.
        for i in range(10):
            store = self.path("race%d" % i)
            procs = [subprocess.Popen([TM, "record", "--store", store, "--read", A], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE) for _ in range(2)]
            for p in procs:
                err = p.communicate(timeout=60)[1].decode()
                if p.returncode != 0:
                    self.assertTrue("in use by another recorder" in err or "already imported" in err, err)

    def refused(self, want):
        for args in (["record", "--store", self.store, "--read", B], ["query", "--store", self.store, "--count", "tcp"]):
            p = tm(*args, check=False)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(want, p.stderr.decode(), args)

    def test_empty_marker_refused(self):
        record(self.store, [A])
        open(os.path.join(self.store, "STORE"), "w").close()
        self.refused("STORE is empty")

    def test_foreign_marker_refused(self):
        record(self.store, [A])
        with open(os.path.join(self.store, "STORE"), "wb") as f:
            f.write(b"GIF89a\x00\x01")
        self.refused("does not hold a tm store marker")

    def test_other_format_refused(self):
        record(self.store, [A])
        with open(os.path.join(self.store, "STORE"), "w") as f:
            f.write("tm store format 99\n")
        self.refused("format 99")

    def test_missing_marker_hint_repairs(self):
        record(self.store, [A])
        os.remove(os.path.join(self.store, "STORE"))
        self.refused("no STORE marker")
        p = tm("record", "--store", self.store, "--read", B, check=False)
        hint = p.stderr.decode().split("mark it as one again: ", 1)[1].strip()
        self.assertEqual(hint, "tm record --store %s --repair" % self.store)
        p = tm("record", "--store", self.store, "--repair")  # the hint, as given
        self.assertIn("marked as a tm store again (1 segment(s) found)", p.stderr.decode())
        s = record(self.store, [B])
        self.assertGreater(s["classes"]["default"]["stored_packets"], 0)
        self.assertEqual(len(store_segments(self.store)), 2)
        p = tm("record", "--store", self.store, "--repair", "--read", corpus("mixed", "wikipedia.pcap"))
        self.assertNotIn("marked", p.stderr.decode(), "a store with its marker needs no repair")
        self.assertEqual(len(store_segments(self.store)), 3)

    def test_repair_refuses_what_is_not_a_store(self):
        record(self.store, [A])
        os.remove(os.path.join(self.store, "STORE"))
        stray = os.path.join(self.store, "default", "notes.txt")
        with open(stray, "w") as f:
            f.write("mine\n")
        p = tm("record", "--store", self.store, "--repair", "--read", B, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot repair %s: %s is not a segment file" % (self.store, stray), p.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(self.store, "STORE")), "nothing changed")
        self.assertEqual(len(store_segments(self.store)), 1)
        empty = self.path("empty-dir")
        os.mkdir(empty)
        p = tm("record", "--store", empty, "--repair", check=False)
        self.assertIn("holds no segment", p.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(empty, "STORE")))


class Quarantine(StoreTest):
    def test_not_a_pcap_is_set_aside(self):
        record(self.store, [A])
        bogus = os.path.join(self.store, "default", "00000009-1000-lt1.pcap")
        content = b"not a pcap at all, but named like a segment\n" * 10
        with open(bogus, "wb") as f:
            f.write(content)
        p = tm("record", "--store", self.store, "--read", B, "--json")
        self.assertIn("not a pcap file: moved to", p.stderr.decode())
        self.assertFalse(os.path.exists(bogus))
        kept = glob.glob(os.path.join(self.store, "quarantine", "default", "*"))
        self.assertEqual(len(kept), 1)
        with open(kept[0], "rb") as f:
            self.assertEqual(f.read(), content)
        seqs = [int(os.path.basename(s).split("-")[0]) for s in store_segments(self.store)]
        self.assertEqual(seqs, [1, 10], "sequence number 9 is not given again")
        # Queries and the next recorder leave the quarantine alone.
        n = int(tm("query", "--store", self.store, "--count", "").stdout)
        self.assertGreater(n, 0)
        p = tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"))
        self.assertNotIn("quarantine", p.stderr.decode())
        self.assertEqual(len(glob.glob(os.path.join(self.store, "quarantine", "default", "*"))), 1)


if __name__ == "__main__":
    unittest.main()
