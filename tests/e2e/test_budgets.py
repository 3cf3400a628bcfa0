"""Budgets as users write them: disk_budget as a share of the file system, max_age for packets."""
import os
import unittest

from tmtest import StoreTest, corpus, read_pcap, record, store_segments, tm

DAY = 86400 * 10 ** 9


class MaxAge(StoreTest):
    def test_class_max_age_evicts_segments_older_than_the_newest_packet(self):
        old, new = corpus("mixed", "wikipedia.pcap"), corpus("mixed", "bro.org.pcap")  # 2011, 2014
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[store]\nsegment_size = "4k"\n[[class]]\nname = "all"\nmax_age = "30d"\n')
        s = record(self.store, [old, new], "--config", cfg, "--cutoff", "none")
        self.assertGreater(s["classes"]["all"]["segments_evicted"], 0)
        segs = store_segments(self.store, "all")
        self.assertGreater(len(segs), 1)
        kept = [read_pcap(p) for p in segs]
        newest = max(ts for pk in kept for ts, _, _, _ in pk)
        for p, pk in zip(segs, kept):
            self.assertGreaterEqual(max(ts for ts, _, _, _ in pk), newest - 30 * DAY, p)
        old_ts = [ts for ts, _, _, _ in read_pcap(old)]
        kept_old = [ts for pk in kept for ts, _, _, _ in pk if ts <= max(old_ts)]
        # At most the segment holding the last old packets and the first new ones keeps old packets.
        self.assertLess(len(kept_old), len(old_ts) // 2)

    def test_max_age_of_captures_read_newest_first(self):
        """An older capture recorded after a newer one: its segments and flow files are past max_age
        by the store's clock. Only the first segment recorded was looked at, so they were kept for
        good (every later start too)."""
        old, new = corpus("mixed", "wikipedia.pcap"), corpus("mixed", "bro.org.pcap")  # 2011, 2014
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[store]\nsegment_size = "4k"\nmax_age = "30d"\n[flows]\nmax_age = "30d"\n')
        record(self.store, [new], "--config", cfg, "--cutoff", "none")
        want = int(tm("query", "--store", self.store, "--count", "").stdout)
        flows = tm("flows", "--store", self.store, "--format", "csv").stdout
        s = record(self.store, [old], "--config", cfg, "--cutoff", "none")
        self.assertGreater(s["classes"]["default"]["segments_evicted"], 0)
        self.assertEqual(int(tm("query", "--store", self.store, "--count", "").stdout), want)
        self.assertEqual(tm("flows", "--store", self.store, "--format", "csv").stdout, flows)

    def test_store_max_age_and_errors(self):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[store]\nsegment_size = "4k"\nmax_age = "30d"\n')
        s = record(self.store, [corpus("mixed", "wikipedia.pcap"), corpus("mixed", "bro.org.pcap")],
                   "--config", cfg, "--cutoff", "none")
        self.assertGreater(s["classes"]["default"]["segments_evicted"], 0)
        with open(cfg, "w") as f:
            f.write('[store]\nmax_age = "soon"\n')
        p = tm("record", "--store", self.path("s2"), "--config", cfg, "--read", corpus("mixed", "wikipedia.pcap"),
               check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(cfg + ":2: store.max_age: 'soon' is not a duration", p.stderr.decode())


class DiskShare(StoreTest):
    def test_percent_of_the_file_system(self):
        s = record(self.store, [corpus("mixed", "wikipedia.pcap")], "--disk-budget", "90%")
        self.assertEqual(s["classes"]["default"]["segments_evicted"], 0)
        p = tm("record", "--store", self.path("s2"), "--read", corpus("mixed", "wikipedia.pcap"), "--disk-budget",
               "150%", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--disk-budget: '150%'", p.stderr.decode())
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[[class]]\nname = "all"\ndisk_budget = "0.0000001%"\n[store]\nsegment_size = "4k"\n')
        # A tiny share of any real file system: a few kilobytes or less, so segments are evicted.
        s = record(self.path("s3"), [corpus("mixed", "bro.org.pcap")], "--config", cfg, "--cutoff", "none")
        self.assertGreater(s["classes"]["all"]["segments_evicted"], 0)


if __name__ == "__main__":
    unittest.main()
