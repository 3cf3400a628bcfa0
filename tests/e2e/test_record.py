"""tm record end to end: what goes into the store, the cutoff rule, budgets, every corpus file."""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import time
import unittest

from tmtest import (LONG_TIMEOUTS, TM, StoreTest, conn_of, corpus, corpus_files, read_pcap, record, run, store_segments,
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
                if td.returncode != 0 and src.endswith(".pcapng"):
                    # tm reads pcapng itself, as tshark does, where libpcap gives up (interfaces of
                    # different snapshot lengths): tshark is the oracle then.
                    tshark = run(["tshark", "-r", src, "-T", "fields", "-e", "frame.number"], check=False)
                    read_by_tcpdump = len(tshark.stdout.split())
                # (A packet stamped where a pcap record's time cannot go is counted, not recorded.)
                self.assertEqual(s["packets"] + s["packets_outside_pcap_time"], read_by_tcpdump)
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
            p = tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"), "--force",
                   check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("in use", p.stderr.decode())

    def test_a_deleted_lock_file_lets_no_second_recorder_in(self):
        # `rm store/LOCK` (a "stale lock" cleaned up) let a second recorder in while the first
        # wrote: it took the open segment for a crash's, indexed it while it grew, and numbered
        # its own segment as the first's next one. The store directory is locked too now.
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        first = subprocess.Popen([TM, "record", "--store", self.store, "--read", "-", "--cutoff", "none"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with open(corpus("mixed", "ssh.pcap"), "rb") as f:
                first.stdin.write(f.read(24))  # (a pcap header: tm takes the store once input begins)
            first.stdin.flush()
            lock = os.path.join(self.store, "LOCK")
            deadline = time.time() + 30
            while True:  # (the first recorder holds the store once LOCK names its pid)
                with open(lock) as f:
                    if f.read().strip() == str(first.pid):
                        break
                self.assertLess(time.time(), deadline, "the first recorder did not take the store")
                time.sleep(0.02)
            os.remove(lock)
            p = tm("record", "--store", self.store, "--read", corpus("mixed", "ssh.pcap"), check=False)
            self.assertEqual(p.returncode, 1, p.stderr.decode())
            self.assertIn("is in use by another recorder", p.stderr.decode())
        finally:
            first.stdin.close()
            first.wait(timeout=60)
            first.stdout.close()
            first.stderr.close()

    def test_a_lock_that_cannot_be_opened_says_why_not_in_use(self):
        # (A file system remounted read-only after disk errors gives EROFS the same way.) It
        # said "in use by another recorder", sending the operator after a recorder that is not there.
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        lock = os.path.join(self.store, "LOCK")
        os.remove(lock)
        os.mkdir(lock)
        p = tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"), "--force", check=False)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("cannot open its lock %s for writing: Is a directory" % lock, err)
        self.assertNotIn("in use", err)


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
                   "--test-writer-delay-us", "100")
        c = s["classes"]["default"]
        self.assertGreater(c["dropped_ring_full"], 0, "a slow writer must make the ring overflow")
        self.assertEqual(s["packets"], c["stored_packets"] + c["cut_packets"] + c["dropped_ring_full"])
        stored = sum(len(read_pcap(p)) for p in store_segments(self.store))
        self.assertEqual(stored, c["stored_packets"])

    def test_wait_mode_loses_nothing(self):
        src = corpus("mixed", "ssh.pcap")
        s = record(self.store, [src], "--cutoff", "none", "--ram-budget", "1m", "--test-writer-delay-us", "70")
        c = s["classes"]["default"]
        self.assertEqual(c["dropped_ring_full"], 0)
        self.assertEqual(c["stored_packets"], s["packets"])


class Config(StoreTest):
    def test_config_errors_name_file_line_key(self):
        cfg = self.path("bad.toml")
        cases = [
            ('[store]\nsegment_size = "12 parsecs"\n', "bad.toml:2: store.segment_size"),
            ('[[class]]\nname = "web"\ncutoff = "lots"\n', "bad.toml:3: class 'web'.cutoff"),
            ('[[class]]\nname = "web"\nfilter = "port port"\n', "bad.toml:3: class 'web'.filter: 'port port'"),
            ('[capture]\nfilter = "tcp port"\n', "bad.toml:2: capture.filter"),
            ('[[class]]\nname = "a"\n[[class]]\nname = "a"\n', "bad.toml:4: class 'a'.name: defined twice (first at line 2)"),
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
                self.assertFalse(os.path.exists(self.store), "the store is not touched")

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


def query_count(store, flt="ip or not ip"):
    return int(tm("query", "--store", store, "--count", "-q", flt).stdout)


def store_files(store):
    """Every file of the store with its size, the import log aside."""
    out = {}
    for root, _, files in os.walk(store):
        for f in files:
            if f not in ("imports.jsonl", "LOCK"):
                p = os.path.join(root, f)
                out[os.path.relpath(p, store)] = os.path.getsize(p)
    return out


class Reimport(StoreTest):
    SRC = corpus("mixed", "wikipedia.pcap")  # 136 packets

    def test_same_file_again_is_refused_and_force_records_it_again(self):
        first = record(self.store, [self.SRC], "--cutoff", "none")
        n = query_count(self.store)
        self.assertEqual(n, first["packets"])
        self.assertGreater(n, 0)
        before = store_files(self.store)
        # The same bytes under another name: still the same file.
        copy = self.path("renamed.pcap")
        shutil.copyfile(self.SRC, copy)
        p = record(self.store, [copy], "--cutoff", "none", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        err = p.stderr.decode()
        self.assertIn("renamed.pcap: already imported into " + self.store, err)
        self.assertIn(os.path.abspath(self.SRC), err)  # as what it was imported
        self.assertIn("%d packets" % n, err)
        self.assertIn("--force", err)
        self.assertEqual(store_files(self.store), before)
        self.assertEqual(query_count(self.store), n)
        # --force: recorded again, every packet twice.
        again = record(self.store, [copy], "--cutoff", "none", "--force")
        self.assertEqual(again["packets"], n)
        self.assertFalse(again["interrupted"])
        self.assertEqual(query_count(self.store), 2 * n)

    def test_a_capture_that_grew_since_its_import_is_refused(self):
        """A capture imported while tcpdump -w was still writing it, then again whole: its first packets
        were stored twice without a word (the fingerprint is the size and both ends)."""
        with open(self.SRC, "rb") as f:
            whole = f.read()
        recs = read_pcap(self.SRC)
        k = len(recs) // 3
        head = self.path("growing.pcap")
        with open(head, "wb") as f:
            f.write(whole[:24 + sum(16 + r[1] for r in recs[:k])])
        record(self.store, [head], "--cutoff", "none")
        with open(head, "wb") as f:
            f.write(whole)
        p = record(self.store, [head], "--cutoff", "none", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("growing.pcap: it begins with a file imported into %s" % self.store, p.stderr.decode())
        self.assertIn("%d packets" % k, p.stderr.decode())
        self.assertEqual(query_count(self.store), k)
        # Another capture with the same first packets but others after them is recorded.
        other = self.path("other.pcap")
        with open(other, "wb") as f:
            f.write(whole[:24 + sum(16 + r[1] for r in recs[:k - 1])] + whole[24:])
        record(self.store, [other], "--cutoff", "none")
        self.assertEqual(query_count(self.store), k + k - 1 + len(recs))

    def test_several_inputs_skip_only_those_imported(self):
        other = corpus("mixed", "nmap-vsn.pcap")
        record(self.store, [self.SRC], "--cutoff", "none")
        n = query_count(self.store)
        p = tm("record", "--store", self.store, "--json", "--cutoff", "none", "--read", self.SRC, "--read", other,
               "--read", other)
        s = json.loads(p.stdout)
        err = p.stderr.decode()
        self.assertIn("skipping %s: already imported" % self.SRC, err)
        self.assertIn("skipping %s: the same file as %s" % (other, other), err)
        self.assertEqual(s["input"]["skipped_already_imported"], [self.SRC, other])
        self.assertEqual(s["input"]["files"], 1)
        self.assertEqual(s["packets"], len(read_pcap(other)))
        self.assertEqual(query_count(self.store), n + len(read_pcap(other)))

    def test_stdin_is_recorded_every_time(self):
        for i in (1, 2):
            with open(self.SRC, "rb") as f:
                p = subprocess.run([TM, "record", "--store", self.store, "--read", "-", "--cutoff", "none"], stdin=f,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn(b"already imported", p.stderr)
            self.assertEqual(query_count(self.store), i * 136)


class Interrupted(StoreTest):
    SRC = corpus("mixed", "echo-connections.pcap")  # 82582 packets

    def start(self, *extra):
        """tm record on SRC with a slow writer, signalled once its first segment exists."""
        args = [TM, "record", "--store", self.store, "--read", self.SRC, "--cutoff", "none", "--ram-budget", "1m",
                "--test-writer-delay-us", "100"] + list(extra)
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not store_segments(self.store):
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                self.fail("tm record wrote no segment: %r" % (proc.communicate(),))
            time.sleep(0.01)
        return proc

    def check_store_answers(self, stored):
        self.assertGreater(stored, 0)
        self.assertLess(stored, len(read_pcap(self.SRC)), "the signal came too late to interrupt anything")
        self.assertEqual(query_count(self.store), stored)
        self.assertEqual(sum(len(read_pcap(p)) for p in store_segments(self.store)), stored)
        # The file read in part is logged as such: recording it again is refused, saying so.
        p = tm("record", "--store", self.store, "--read", self.SRC, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("partly imported", p.stderr.decode())
        # Everything was sealed: the next recorder has nothing to recover.
        p = tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"))
        self.assertNotIn("recovered", p.stderr.decode())

    def test_sigint_exits_130_and_says_interrupted(self):
        proc = self.start()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        text = out.decode()
        m = re.search(r"^interrupted by SIGINT after (\d+) packets: (\d+) of (\d+) bytes of input read, 0 of 1 inputs "
                      r"complete", text, re.M)
        self.assertTrue(m, text)
        self.assertEqual(int(m.group(3)), os.path.getsize(self.SRC))
        self.assertLess(int(m.group(2)), int(m.group(3)))
        row = [line.split() for line in text.splitlines() if line.startswith("default ")][0]
        stored = int(row[3])  # class cutoff seen stored ...
        self.assertEqual(stored, int(m.group(1)))  # --cutoff none: every packet read is stored
        self.check_store_answers(stored)

    def test_sigterm_exits_143_and_json_says_interrupted(self):
        proc = self.start("--json")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 143, err)
        s = json.loads(out)
        self.assertTrue(s["interrupted"])
        self.assertEqual(s["input"]["signal"], "SIGTERM")
        self.assertEqual(s["input"]["files_complete"], 0)
        self.assertEqual(s["input"]["packets_read"], s["packets"])
        self.check_store_answers(s["classes"]["default"]["stored_packets"])

    def test_sighup_ends_the_import_as_sigterm_does(self):
        # A closed terminal or ssh session (SIGHUP) killed tm outright: no summary, the segment
        # left unsealed, the import logged as begun and never ended (re-importing it needed --force).
        proc = self.start("--json")
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 129, err)
        s = json.loads(out)
        self.assertTrue(s["interrupted"])
        self.assertEqual(s["input"]["signal"], "SIGHUP")
        self.check_store_answers(s["classes"]["default"]["stored_packets"])

    def test_sighup_under_nohup_is_no_end(self):
        # Linux keeps an ignored signal pending while it is blocked: asked for with sigwait, nohup's
        # ignored SIGHUP would end the run all the same.
        args = [TM, "record", "--store", self.store, "--read", self.SRC, "--cutoff", "none", "--ram-budget", "1m",
                "--test-writer-delay-us", "100"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        deadline = time.time() + 20
        while not store_segments(self.store):
            self.assertIsNone(proc.poll(), "tm record ended before its first segment")
            self.assertLess(time.time(), deadline)
            time.sleep(0.01)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        self.assertIsNone(proc.poll(), "nohup's SIGHUP ended tm record")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 143, err)

    def test_a_file_size_limit_is_a_write_error_not_a_kill(self):
        # `ulimit -f`: SIGXFSZ killed tm (exit 153) with no word and the segment unsealed; tm's own
        # handling of the write error (EFBIG) was never reached.
        limit = 256 * 1024
        p = subprocess.run([TM, "record", "--store", self.store, "--read", self.SRC, "--cutoff", "none"],
                           capture_output=True, timeout=60,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("failed: File too large", err)

    def test_an_address_space_limit_too_small_is_said_as_such(self):
        # `ulimit -v` below what tm maps at start: "tm record: std::bad_alloc", naming neither what nor why.
        with open(TM, "rb") as f:
            if re.search(rb"__[at]san_init", f.read()):
                self.skipTest("a sanitizer's shadow memory needs more address space than any limit tested here")
        limit = 400 << 20
        p = subprocess.run([TM, "record", "--store", self.store, "--read", self.SRC, "--ram-budget", "8g"],
                           capture_output=True, timeout=60,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("out of memory: an allocation failed under the address-space limit (ulimit -v) of 400 MiB",
                      err)

    def test_a_named_pipe_without_a_writer_yet_is_ended_by_a_signal(self):
        """tm record --read FIFO waits in open() for a writer: SIGINT and SIGTERM end it there, as any
        program (they were blocked: only SIGKILL did), with nothing written."""
        fifo = self.path("pipe")
        os.mkfifo(fifo)
        for sig in (signal.SIGINT, signal.SIGTERM):
            proc = subprocess.Popen([TM, "record", "--store", self.store, "--read", fifo],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(0.3)
            proc.send_signal(sig)
            proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, -sig)
            self.assertFalse(os.path.exists(self.store), "no store made")

    def test_a_named_pipe_is_opened_once_and_read_whole(self):
        """A named pipe is opened once (it was opened, looked at and closed, then opened twice more: a
        writer that had written everything and closed its end lost it, and tm waited for another)."""
        fifo = self.path("pipe2")
        os.mkfifo(fifo)
        src = corpus("mixed", "wikipedia.pcap")
        writer = subprocess.Popen(["sh", "-c", 'cat "$0" > "$1"', src, fifo])
        try:
            p = run([TM, "record", "--store", self.store, "--read", fifo, "--cutoff", "none", "--json"],
                    timeout=60)
        finally:
            writer.wait(timeout=60)
        self.assertEqual(json.loads(p.stdout)["packets"], len(read_pcap(src)))


if __name__ == "__main__":
    unittest.main()
