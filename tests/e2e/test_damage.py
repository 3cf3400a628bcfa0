"""Damage inside a sealed segment: a sidecar damaged past its header is rebuilt by the next tm record; a
damaged record header in a pcap whose index is intact costs that record only (the index's offsets find the
others), and is reported rather than returned with a wrong length. A segment without sidecar (what a crash
leaves) is scanned up to a record tm never writes, reported with its offset, and left as it is by recovery; a
sidecar whose pcap is lost is reported as a missing segment."""
import json
import os
import re
import shutil
import struct
import subprocess
import time

from tmtest import TM, StoreTest, corpus, listening_port, read_pcap, record, run, store_segments, tcpdump_packets, tm


def when(ns):
    """A --from/--to time of epoch nanoseconds."""
    return "%d.%09d" % (ns // 10**9, ns % 10**9)


class DamagedSidecarBody(StoreTest):
    def test_damage_past_the_header_is_rebuilt_at_the_next_record(self):
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k")
        idx = store_segments(self.store)[0][:-5] + ".idx"
        size = os.path.getsize(idx)
        with open(idx, "r+b") as f:  # the last byte: a section no header check reads
            f.seek(size - 1)
            c = f.read(1)
            f.seek(size - 1)
            f.write(bytes([c[0] ^ 0x20]))
        with open(idx, "rb") as f:
            damaged = f.read()
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        err = p.stderr.decode()
        self.assertIn(os.path.basename(idx), err)
        self.assertIn("checksum mismatch (rebuilt)", err)
        with open(idx, "rb") as f:
            self.assertNotEqual(f.read(), damaged)
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"), "--force")
        self.assertNotIn("rebuilt", p.stderr.decode(), "sound once rebuilt")
        out = self.path("q.pcap")
        q = tm("query", "--store", self.store, "-q", "-w", out, "host 10.0.2.15")
        self.assertEqual(q.stderr.decode(), "")
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(src, "host 10.0.2.15"))


    def test_a_clean_restart_checks_no_sidecar_known_sound(self):
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k")
        n = len(store_segments(self.store))
        self.assertGreater(n, 4)

        def checked(*extra):
            p = tm("--log-level", "info", "record", "--store", self.store, "--read",
                   corpus("malformed", "empty.pcap"), *extra)
            m = re.search(r"adopted (\d+) sealed segments; sidecars checked whole: (\d+)", p.stderr.decode())
            self.assertIsNotNone(m, p.stderr.decode())
            self.assertEqual(int(m.group(1)), n)
            return int(m.group(2))

        # Those sealed in the file system's last clock tick before the stop may be checked once more.
        self.assertLess(checked(), n)
        self.assertEqual(checked("--force"), 0)
        os.remove(os.path.join(self.store, "VERIFIED"))  # nothing known: every one is checked
        self.assertEqual(checked("--force"), n)
        self.assertEqual(checked("--force"), 0)

    def test_a_rebuild_that_would_cut_the_pcap_is_not_done(self):
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none")
        seg = store_segments(self.store)[0]
        idx, size = seg[:-5] + ".idx", os.path.getsize(seg)
        with open(idx, "r+b") as f:
            f.seek(-1, os.SEEK_END)
            c = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([c[0] ^ 0x20]))
        with open(seg, "r+b") as f:  # the first record's captured length
            f.seek(24 + 8)
            f.write(struct.pack("<I", 0x7fffff00))
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        self.assertIn("not rebuilt: %s has a damaged record at offset 24" % seg, p.stderr.decode())
        self.assertEqual(os.path.getsize(seg), size, "nothing cut")


class DamagedRecordHeader(StoreTest):
    def damage(self, k, caplen_of):
        """Records bro.org.pcap into one segment and rewrites the captured length of its record k."""
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none")
        seg = store_segments(self.store)[0]
        recs = read_pcap(seg)
        off = 24 + sum(16 + cap for ts, cap, wire, d in recs[:k])
        with open(seg, "r+b") as f:
            f.seek(off + 8)
            f.write(struct.pack("<I", caplen_of(recs[k][1])))
        return src, off

    def check(self, k, caplen_of, flt=""):
        src, off = self.damage(k, caplen_of)
        out = self.path("q.pcap")
        p = tm("query", "--store", self.store, "-q", "-w", out, flt)
        err = p.stderr.decode()
        self.assertIn("damaged record at offset %d" % off, err)
        want = tcpdump_packets(src)
        self.assertSamePackets(tcpdump_packets(out), want[:k] + want[k + 1:])

    def test_impossible_length_costs_that_record_only(self):
        self.check(100, lambda cap: 0x7fffff00)

    def test_plausible_but_wrong_length_is_reported_not_returned_cut(self):
        self.check(100, lambda cap: cap - 10)

    def test_a_filter_libpcap_answers_also_resynchronises(self):
        # 'greater 0' is no index field: every record is read by the index's offsets and BPF-checked.
        self.check(100, lambda cap: 0x7fffff00, "greater 0")


class UnindexedSegment(StoreTest):
    """Damage in a segment without its sidecar: the query scans it up to the damage and says so."""

    def setUp(self):
        super().setUp()
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none", "--segment-size", "128k")
        segs = store_segments(self.store)
        self.assertGreater(len(segs), 2)
        self.seg = segs[1]
        self.others = [r for s in segs if s != self.seg for r in read_pcap(s)]
        self.recs = read_pcap(self.seg)
        self.offs = []
        off = 24
        for ts, cap, wire, d in self.recs:
            self.offs.append(off)
            off += 16 + cap
        os.remove(self.seg[:-5] + ".idx")  # as a crash leaves it (or a lost sidecar)

    def poke(self, off, data):
        with open(self.seg, "r+b") as f:
            f.seek(off)
            f.write(data)

    def answer(self):
        """The query's answer (records) and warnings, the answer checked to hold no record that was not stored."""
        out = self.path("q.pcap")
        p = tm("query", "--store", self.store, "-q", "-w", out)
        got = read_pcap(out)
        stored = set((ts, d) for ts, cap, wire, d in self.others + self.recs)
        for ts, cap, wire, d in got:
            self.assertTrue((ts, d) in stored, "a record answered that was never stored (garbled): time %d, "
                            "%d bytes" % (ts, cap))
        return got, p.stderr.decode()

    def expect_answered(self, got, k):
        """All other segments' records and the first k records of the damaged one."""
        key = lambda r: (r[0], r[3])
        self.assertEqual(sorted(map(key, got)), sorted(map(key, self.others + self.recs[:k])))

    def test_a_grown_captured_length_is_reported_and_nothing_garbled_answered(self):
        k = len(self.recs) // 2
        ts, cap, wire, d = self.recs[k]
        self.assertEqual(cap, wire)
        self.poke(self.offs[k] + 8, struct.pack("<I", cap + 40))
        got, err = self.answer()
        self.assertIn("%s: damaged record at offset %d (captured length %d larger than its wire length %d)" % (
            self.seg, self.offs[k], cap + 40, wire), err)
        self.expect_answered(got, k)

    def test_a_damaged_magic_makes_the_segment_unreadable_and_says_so(self):
        self.poke(0, b"\0")
        got, err = self.answer()
        self.assertIn("%s: no pcap file header: segment unreadable" % self.seg, err)
        self.expect_answered(got, 0)

    def test_a_short_file_is_a_segment_being_created_only_if_it_begins_a_pcap_header(self):
        # Shorter than a pcap file header, without a sidecar: a segment being created when its
        # bytes begin the header tm writes (not warned, nothing to read yet); anything else is
        # no segment, said as a longer one is (5 bytes of junk were an open segment, unsaid).
        with open(self.seg, "rb") as f:
            head = f.read(24)
        for data, warned in ((b"junk!", True), (head[:5], False), (b"", False), (head[:23], False),
                             (b"\xd4\xc3\xb2\xa1\x02", True)):  # (a microsecond pcap's magic: not ours)
            with open(self.seg, "wb") as f:
                f.write(data)
            got, err = self.answer()
            self.assertEqual(warned, "%s: no pcap file header: segment unreadable (%d bytes not read)" % (
                self.seg, len(data)) in err, (data, err))
            self.expect_answered(got, 0)

    def test_zeros_are_no_packets_and_recovery_neither_cuts_nor_renames(self):
        size = os.path.getsize(self.seg)
        at = size // 3
        self.poke(at, bytes(4096))
        k = max(i for i, o in enumerate(self.offs) if o <= at)  # the record the zeros begin in
        got, err = self.answer()
        m = re.search(re.escape(self.seg) + r": damaged record at offset (\d+) \(", err)
        self.assertIsNotNone(m, err)
        bad = self.offs.index(int(m.group(1)))
        self.assertIn(bad, (k - 1, k), "the record the zeros begin in (or the one whose length leads there)")
        self.expect_answered(got, bad)
        self.assertFalse([r for r in got if r[0] < 10**18], "no packet of 1970")
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        self.assertIn("%s: damaged record at offset %d" % (self.seg, self.offs[bad]), p.stderr.decode())
        self.assertIn("not indexed and not cut", p.stderr.decode())
        self.assertTrue(os.path.exists(self.seg), "not renamed (to time 0)")
        self.assertEqual(os.path.getsize(self.seg), size, "nothing cut")
        self.assertFalse(os.path.exists(self.seg[:-5] + ".idx"))
        got2, err2 = self.answer()
        self.assertIn("damaged record at offset %d" % self.offs[bad], err2)
        self.expect_answered(got2, bad)
        # tm stats names it as damaged (it called it "open (being written, or left by a crash)"), once
        # it has not been written to for 10 s (until then it may be a recorder's, not read whole).
        os.utime(self.seg, None)  # (just written, as by a recorder)
        self.assertIn("being written, or left by a crash", tm("stats", "--store", self.store).stdout.decode())
        old = time.time() - 60
        os.utime(self.seg, (old, old))
        out = tm("stats", "--store", self.store).stdout.decode()
        self.assertIn("damaged (counted as open; not indexed: queries scan its %d packets before offset %d"
                      % (bad, self.offs[bad]), out)
        self.assertIn(self.seg, out)
        self.assertNotIn("being written, or left by a crash", out)
        st = json.loads(tm("stats", "--store", self.store, "--format", "json").stdout)
        self.assertEqual([(d["segment"], d["offset"], d["packets_before"]) for d in st["damaged_segments"]],
                         [(self.seg, self.offs[bad], bad)])
        # A recording tm serve on the store names it too (it took every open segment for its own).
        if os.geteuid() != 0:
            return
        with open(self.path("serve.err"), "w+b") as err:
            p = subprocess.Popen([TM, "serve", "--store", self.store, "-i", "lo", "--listen", "127.0.0.1:0"],
                                 stdout=subprocess.DEVNULL, stderr=err)
            try:
                port = listening_port(p, err, "tm serve")
                body = run(["curl", "-s", "http://127.0.0.1:%d/api/v1/stats" % port]).stdout
                damaged = json.loads(body)["store"]["damaged_segments"]
                self.assertEqual([(d["segment"], d["offset"]) for d in damaged], [(self.seg, self.offs[bad])])
            finally:
                p.terminate()
                p.wait(timeout=60)


class SegmentNotItsSidecars(StoreTest):
    """A segment's name and its sidecar must agree; where they may not, the packets are still found."""

    def setUp(self):
        super().setUp()
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none", "--segment-size", "128k")
        self.pristine = self.path("pristine")
        shutil.copytree(self.store, self.pristine)
        self.seg = store_segments(self.store)[1]
        recs = read_pcap(self.seg)
        times = sorted(r[0] for r in recs)
        self.window = ("--from", when(times[0]), "--to", when(times[len(times) // 2]))

    def test_a_sidecar_of_another_segment_is_not_trusted(self):
        # A mixed-up restore: the sidecar of the same capture's segment in another store, recorded
        # 100 s later (same sequence number, link type and pcap size). It was trusted, as its size
        # agreed: a window of the segment's time answered nothing.
        shifted, other = self.path("shifted.pcap"), self.path("other")
        run(["editcap", "-F", "pcap", "-t", "100", corpus("mixed", "bro.org.pcap"), shifted])
        record(other, [shifted], "--cutoff", "none", "--segment-size", "128k")
        theirs = store_segments(other)[1]
        self.assertEqual(os.path.getsize(theirs), os.path.getsize(self.seg))
        idx = self.seg[:-5] + ".idx"
        shutil.copy(theirs[:-5] + ".idx", idx)
        out = self.path("q.pcap")
        p = tm("query", "--store", self.store, "-q", "-w", out, *self.window, "")
        self.assertIn("%s describes packets from" % idx, p.stderr.decode())
        want = self.query_packets(self.pristine, "", *self.window)
        self.assertTrue(want)
        self.assertSamePackets(tcpdump_packets(out), want)
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        self.assertIn(os.path.basename(idx), p.stderr.decode())
        with open(idx, "rb") as a, open(os.path.join(self.pristine, "default", os.path.basename(idx)), "rb") as b:
            self.assertEqual(a.read(), b.read(), "rebuilt as it was")

    def test_a_sealed_pcap_cut_short_is_rebuilt_counting_what_it_lost(self):
        # The rebuild said only that the sidecar described more bytes than the file has.
        recs = read_pcap(self.seg)
        cut = 24 + sum(16 + r[1] for r in recs[:len(recs) // 2]) + 5  # inside the record after half
        with open(self.seg, "r+b") as f:
            f.truncate(cut)
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        self.assertIn("(rebuilt: it indexed %d packets" % len(recs), p.stderr.decode())
        self.assertIn("the pcap holds %d now: %d packets are lost)" % (len(recs) // 2, len(recs) - len(recs) // 2),
                      p.stderr.decode())
        self.assertEqual(len(read_pcap(self.seg)), len(recs) // 2)

    def test_a_segment_without_sidecar_named_too_new_is_searched_by_time(self):
        # A power cut may lose a rename to an older name (made durable at once only past 30
        # minutes): a segment without its sidecar may be named later than its packets. A window
        # of their time skipped it, answering nothing without a word.
        os.remove(self.seg[:-5] + ".idx")
        d, name = os.path.split(self.seg)
        seq, ts, rest = name.split("-", 2)
        os.rename(self.seg, os.path.join(d, "%s-%d-%s" % (seq, int(ts) + 5 * 60 * 10**9, rest)))
        want = self.query_packets(self.pristine, "", *self.window)
        self.assertTrue(want)
        self.assertSamePackets(self.query_packets(self.store, "", *self.window), want)


class SegmentPcapLost(StoreTest):
    def test_a_sidecar_without_its_pcap_is_a_missing_segment(self):
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none", "--segment-size", "128k")
        seg = store_segments(self.store)[1]
        idx = seg[:-5] + ".idx"
        n = len(read_pcap(seg))
        os.remove(seg)
        p = tm("query", "--store", self.store, "--count")
        self.assertIn("%s: missing (its sidecar %s is there)" % (seg, idx), p.stderr.decode())
        p = tm("record", "--store", self.store, "--read", corpus("malformed", "empty.pcap"))
        err = p.stderr.decode()
        self.assertNotIn("not written by tm", err)
        moved = os.path.join(self.store, "quarantine", "default", os.path.basename(idx))
        self.assertIn("%s is missing (its %d packets" % (seg, n), err)
        self.assertIn("moved to %s" % moved, err)
        self.assertTrue(os.path.exists(moved), "set aside, not deleted")
        self.assertFalse(os.path.exists(idx))
        p = tm("query", "--store", self.store, "--count")
        self.assertNotIn("warning", p.stderr.decode(), "reported once set aside")


if __name__ == "__main__":
    import unittest
    unittest.main()
