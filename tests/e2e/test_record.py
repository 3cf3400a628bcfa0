"""tm record end to end: what goes into the store, the cutoff rule, budgets, every corpus file."""
import os
import subprocess
import unittest

from tmtest import (LONG_TIMEOUTS, StoreTest, conn_of, corpus, corpus_files, read_pcap, record, run, store_segments,
                    tcpdump_packets, tm)

MIXED = ["bro.org.pcap", "ssh.pcap", "smb3_multichannel.pcap", "1000-requests-one-dropped-response.pcap",
         "chromium-115.0.5790.110-google-de-fragmented.pcap", "wikipedia.pcap", "afs.pcap", "dhcp_flood.pcap",
         "nmap-vsn.pcap", "var-services-std-ports.pcap", "echo-connections.pcap"]



def total(summary, key):
    return sum(c[key] for c in summary["classes"].values())


class RecordExact(StoreTest):
    def test_cutoff_none_stores_exactly_the_input(self):
        for name in MIXED:
            with self.subTest(file=name):
                store = self.path("s-" + name)
                src = corpus("mixed", name)
                s = record(store, [src], "--cutoff", "none", "--segment-size", "256k")
                segs = store_segments(store)
                self.assertGreater(len(segs), 0)
                got = []
                for seg in segs:
                    got += tcpdump_packets(seg)
                want = tcpdump_packets(src)
                self.assertSamePackets(got, want)  # same bytes, same timestamps, same order
                self.assertEqual(s["packets"], len(want))
                self.assertEqual(total(s, "stored_packets"), len(want))
                if os.path.getsize(src) > 600 * 1024:
                    self.assertGreater(len(segs), 1, "a small segment size must rotate")


class CutoffRule(StoreTest):
    CUTOFF = 4096

    def model(self, frames):
        """The cutoff rule applied to the input: which packets must be stored, in order."""
        seen, keep = {}, []
        for ts, cap, wire, data in frames:
            c = conn_of(data)
            if c is None:
                keep.append((ts, data))
                continue
            key, control = c
            before = seen.get(key, 0)
            if before < self.CUTOFF or control:
                keep.append((ts, data))
            seen[key] = before + wire
        return keep, seen

    def test_cutoff_per_connection(self):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(LONG_TIMEOUTS)
        for name in ["bro.org.pcap", "ssh.pcap", "smb3_multichannel.pcap", "1000-requests-one-dropped-response.pcap",
                     "echo-connections.pcap", "chromium-115.0.5790.110-google-de-fragmented.pcap"]:
            with self.subTest(file=name):
                store = self.path("s-" + name)
                src = corpus("mixed", name)
                s = record(store, [src], "--config", cfg, "--cutoff", "4k", "--segment-size", "256k")
                frames = read_pcap(src)
                want, totals = self.model(frames)
                got = []
                for seg in store_segments(store):
                    got += [(ts, data) for ts, cap, wire, data in read_pcap(seg)]
                self.assertSamePackets(got, want)
                # The properties the rule promises, checked on the store itself.
                stored_bytes, stored_pkts, input_pkts, biggest = {}, {}, {}, {}
                for ts, cap, wire, data in frames:
                    c = conn_of(data)
                    if c:
                        input_pkts[c[0]] = input_pkts.get(c[0], 0) + 1
                        biggest[c[0]] = max(biggest.get(c[0], 0), wire)
                for ts, data in got:
                    c = conn_of(data)
                    if c and not c[1]:
                        stored_bytes[c[0]] = stored_bytes.get(c[0], 0) + len(data)
                    if c:
                        stored_pkts[c[0]] = stored_pkts.get(c[0], 0) + 1
                for key, tot in totals.items():
                    if tot <= self.CUTOFF:
                        self.assertEqual(stored_pkts.get(key, 0), input_pkts[key], "short connection stored whole")
                    self.assertLessEqual(stored_bytes.get(key, 0), self.CUTOFF + biggest[key])
                self.assertEqual(s["packets"], total(s, "stored_packets") + total(s, "cut_packets") +
                                 total(s, "dropped_ring_full"))
                self.assertGreater(total(s, "cut_packets"), 0)


class EveryCorpusFile(StoreTest):
    def test_every_file_recorded_and_accounted(self):
        for src in corpus_files():
            with self.subTest(file=os.path.relpath(src, corpus())):
                store = self.path("s-" + os.path.basename(src))
                p = tm("record", "--store", store, "--read", src, "--json", "--segment-size", "64k", check=False)
                self.assertIn(p.returncode, (0, 1), "no crash: %s" % p.stderr.decode(errors="replace"))
                # libpcap is the oracle of what the file holds: tcpdump copies what it can read.
                copy = self.path("copy.pcap")
                td = subprocess.run(["tcpdump", "-r", src, "-w", copy], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if p.returncode == 1:
                    # Only a file that libpcap itself cannot open may be refused, with a message naming it.
                    err = p.stderr.decode(errors="replace")
                    self.assertIn(os.path.basename(src), err)
                    self.assertNotEqual(td.returncode, 0, "tcpdump reads it, so must tm: " + err)
                    continue
                import json
                s = json.loads(p.stdout)
                read_by_tcpdump = len(read_pcap(copy)) if os.path.exists(copy) else 0
                self.assertEqual(s["packets"], read_by_tcpdump)
                self.assertEqual(s["packets"], total(s, "stored_packets") + total(s, "cut_packets") +
                                 total(s, "dropped_ring_full"))
                self.assertEqual(s["packets"], sum(s["decode"].values()))
                for seg in store_segments(store):
                    run(["tcpdump", "-r", seg, "-w", "/dev/null"])
                    run(["capinfos", seg])


class Sources(StoreTest):
    def test_several_files_and_stdin(self):
        a, b = corpus("mixed", "wikipedia.pcap"), corpus("mixed", "bro.org.pcap")
        with open(b, "rb") as f:
            p = subprocess.run([os.environ.get("TM_BIN"), "record", "--store", self.store, "--read", a, "--read", "-",
                                "--json", "--cutoff", "none"], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = []
        for seg in store_segments(self.store):
            got += tcpdump_packets(seg)
        self.assertSamePackets(got, tcpdump_packets(a) + tcpdump_packets(b))

    def test_link_types_get_their_own_segments(self):
        a, b = corpus("mixed", "wikipedia.pcap"), corpus("link", "linux_dlt_sll2.pcap")
        record(self.store, [a, b], "--cutoff", "none")
        segs = store_segments(self.store)
        self.assertEqual(len(segs), 2)
        self.assertEqual(tcpdump_packets(segs[0]), tcpdump_packets(a))
        self.assertEqual(tcpdump_packets(segs[1]), tcpdump_packets(b))

    def test_missing_file_is_a_clear_error(self):
        p = tm("record", "--store", self.store, "--read", self.path("nope.pcap"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope.pcap", p.stderr.decode())

    def test_second_recorder_on_a_store_is_refused(self):
        import fcntl
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        with open(os.path.join(self.store, "LOCK"), "r+") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            p = tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("in use", p.stderr.decode())


class Budget(StoreTest):
    def test_disk_budget_keeps_the_newest(self):
        src = corpus("mixed", "echo-connections.pcap")
        seg, budget = 256 * 1024, 1024 * 1024
        s = record(self.store, [src], "--cutoff", "none", "--segment-size", "256k", "--disk-budget", "1m")
        size = sum(os.path.getsize(os.path.join(self.store, "default", f))
                   for f in os.listdir(os.path.join(self.store, "default")))
        self.assertLessEqual(size, budget + seg + 64 * 1024)  # one segment and its sidecar over, at most
        self.assertGreater(s["classes"]["default"]["segments_evicted"], 0)
        segs = store_segments(self.store)
        kept = []
        for p in segs:
            kept += read_pcap(p)
        frames = read_pcap(src)
        # What remains is the tail of the input: the newest packets, in order, up to the last one.
        self.assertSamePackets([d for _, _, _, d in kept], [d for _, _, _, d in frames[len(frames) - len(kept):]])


class RingFull(StoreTest):
    def test_slow_writer_drops_and_counts(self):
        src = corpus("mixed", "echo-connections.pcap")
        s = record(self.store, [src], "--cutoff", "none", "--when-ring-full", "drop", "--ram-budget", "1m",
                   "--test-writer-delay-us", "50")
        c = s["classes"]["default"]
        self.assertGreater(c["dropped_ring_full"], 0, "a slow writer must make the ring overflow")
        self.assertEqual(s["packets"], c["stored_packets"] + c["cut_packets"] + c["dropped_ring_full"])
        stored = sum(len(read_pcap(p)) for p in store_segments(self.store))
        self.assertEqual(stored, c["stored_packets"])

    def test_wait_mode_loses_nothing(self):
        src = corpus("mixed", "ssh.pcap")
        s = record(self.store, [src], "--cutoff", "none", "--ram-budget", "1m", "--test-writer-delay-us", "20")
        c = s["classes"]["default"]
        self.assertEqual(c["dropped_ring_full"], 0)
        self.assertEqual(c["stored_packets"], s["packets"])


class Config(StoreTest):
    def test_config_errors_name_file_line_key(self):
        cfg = self.path("bad.toml")
        cases = [
            ('[store]\nsegment_size = "12 parsecs"\n', "bad.toml:2: store.segment_size"),
            ('[[class]]\nname = "web"\ncutoff = "lots"\n', "bad.toml:3: class 'web'.cutoff"),
            ('[[class]]\nname = "web"\nfilter = "port port"\n', "class 'web': filter"),
            ('[store]\nbogus = 1\n', "bad.toml:2: store.bogus: unknown key"),
            ('[store\n', "bad.toml:1"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                with open(cfg, "w") as f:
                    f.write(text)
                p = tm("record", "--store", self.store, "--config", cfg, "--read", corpus("mixed", "wikipedia.pcap"),
                       check=False)
                self.assertEqual(p.returncode, 1)
                self.assertIn(want, p.stderr.decode())

    def test_classes_by_filter(self):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[[class]]\nname = "ssh"\nfilter = "tcp port 22"\ncutoff = "none"\nprecedence = 10\n'
                    '[[class]]\nname = "rest"\ncutoff = "1k"\n')
        src = corpus("mixed", "var-services-std-ports.pcap")
        s = record(self.store, [src], "--config", cfg)
        ssh = tcpdump_packets(src, "tcp port 22")
        self.assertEqual(s["classes"]["ssh"]["stored_packets"], len(ssh))
        got = []
        for seg in store_segments(self.store, "ssh"):
            got += tcpdump_packets(seg)
        self.assertSamePackets(got, ssh)


if __name__ == "__main__":
    unittest.main()
