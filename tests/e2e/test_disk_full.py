"""A full disk (issue 19): the counters say what is on disk, a second recorder leaves nothing
behind, and a segment larger than the disk budget does not empty the store.

The disk-full tests mount a small tmpfs as the store's file system: they need root and skip
(exit 77 when nothing ran) otherwise."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

from tmtest import StoreTest, TM, corpus, corpus_files, read_pcap, record, run, store_segments, tm

INPUT = corpus_files("mixed")  # ~16 MB of pcap


def records_on_disk(store):
    """Complete pcap records in every segment of every class."""
    return sum(len(read_pcap(f)) for f in glob.glob(os.path.join(store, "*", "*.pcap")))


class TmpfsStore(StoreTest):
    """A store on a tmpfs of `size` (unmounted at cleanup)."""
    size = "4m"

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        self.mnt = self.path("mnt")
        os.mkdir(self.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + self.size, "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % p.stderr.decode(errors="replace").strip())
        self.addCleanup(subprocess.run, ["umount", "-l", self.mnt])
        self.store = os.path.join(self.mnt, "store")


class SmallDisk(TmpfsStore):
    def record_full(self, *extra):
        args = ["record", "--store", self.store, "--cutoff", "none", "--disk-budget", "1g"] + list(extra)
        for f in INPUT:
            args += ["--read", f]
        return run([TM] + args, check=False)

    def test_stored_is_what_is_on_disk(self):
        p = self.record_full("--json")
        self.assertEqual(p.returncode, 1)
        self.assertIn("No space left on device", p.stderr.decode())
        j = json.loads(p.stdout)
        c = j["classes"]["default"]
        on_disk = records_on_disk(self.store)
        self.assertGreater(on_disk, 0)
        self.assertEqual(c["stored_packets"], on_disk, "--json stored_packets")
        self.assertEqual(c["written_packets"], on_disk, "--json written_packets")
        self.assertEqual(c["stored_packets"] + j["writer"]["lost_packets"] + c["dropped_ring_full"],
                         c["seen_packets"] - c["cut_packets"])
        # What the failed write left without a sidecar (the segment it cut, a seal it stopped) is counted.
        pcaps = glob.glob(os.path.join(self.store, "default", "*.pcap"))
        unsealed = [f for f in pcaps if not os.path.exists(f[:-5] + ".idx")]
        self.assertGreater(len(unsealed), 0)
        self.assertEqual(c["segments_unsealed"], len(unsealed), unsealed)

    def test_summary_stored_is_what_is_on_disk(self):
        p = self.record_full()
        self.assertEqual(p.returncode, 1)
        out = p.stdout.decode()
        row = re.search(r"^default\s+\S+\s+(\d+)\s+(\d+)", out, re.M)
        self.assertIsNotNone(row, out)
        self.assertEqual(int(row.group(2)), records_on_disk(self.store), out)
        self.assertIn("lost:", out)
        # The headline adds up: stored + cut + dropped + lost = every packet read (it left the lost out).
        m = re.search(r"^stored (\d+) of (\d+) packets \((\d+) cut off by the connection cutoff, (\d+) dropped, "
                      r"(\d+) lost to failed writes\)", out, re.M)
        self.assertIsNotNone(m, out)
        stored, seen, cut, dropped, lost = map(int, m.groups())
        self.assertEqual(stored + cut + dropped + lost, seen, out)
        self.assertEqual(seen, int(row.group(1)), out)
        # The import stopped at the failure: the rest of the input is said not read.
        self.assertRegex(out, r"stopped by the writer's failure after \d+ packets: \d+ of \d+ bytes of input read, "
                              r"\d+ of %d inputs complete; the rest was not read" % len(INPUT))

    def test_flow_records_a_failed_write_lost_are_counted(self):
        """Every connection's flow record is on disk or counted as lost (a full disk at the end lost
        them without a count: only a log line said the write failed)."""
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[flows]\ninterim_interval = "100d"\n')  # one record a connection, at its end
        p = self.record_full("--json", "--config", cfg)
        self.assertEqual(p.returncode, 1)
        j = json.loads(p.stdout)
        flows = run([TM, "flows", "--store", self.store, "--format", "json"], check=False)
        on_disk = len([line for line in flows.stdout.decode().splitlines() if line.startswith("{")])
        self.assertGreater(j["flow_records_lost"], 0, p.stderr.decode())
        self.assertEqual(on_disk + j["flow_records_lost"], j["connections"], flows.stderr.decode())
        shutil.rmtree(self.store)
        p = self.record_full("--config", cfg)
        self.assertRegex(p.stdout.decode(), r"(?m)^lost: \d+ flow records of ended connections were not written "
                                             r"\(.*No space left on device\)$")

    def test_second_record_leaves_nothing_behind(self):
        self.record_full()
        before = set(os.listdir(os.path.join(self.store, "default")))
        p = run([TM, "record", "--store", self.store, "--cutoff", "none", "--read", INPUT[0]], check=False)
        self.assertEqual(p.returncode, 1, p.stderr.decode())
        files = sorted(glob.glob(os.path.join(self.store, "**", "*"), recursive=True))
        self.assertEqual([f for f in files if f.endswith(".tmp")], [], "temporary files left")
        self.assertEqual([f for f in files if f.endswith(".pcap") and os.path.getsize(f) == 0], [],
                         "empty segments left")
        seqs = [os.path.basename(f).split("-")[0] for f in store_segments(self.store)]
        self.assertEqual(len(seqs), len(set(seqs)), "a sequence number twice: %s" % sorted(
            set(os.listdir(os.path.join(self.store, "default"))) - before))


class NoRoomForTheLastSidecar(TmpfsStore):
    """The last segment's seal fails at the end of a recording (its sidecar cannot be created: a
    tmpfs with few inodes, found by trying): the run says so and exits 1, the summary counts the
    segment as unsealed, and its packets stay queryable; the next run on the store indexes it."""
    size = "64m"

    def record_until_the_sidecar_fails(self):
        """With one segment only the last seal can fail (one on the sealer thread races the next segment's
        creation for the last inode: StoreFull.EverySegmentLeftUnsealedIsCounted makes that one fail)."""
        src = corpus("mixed", "1000-requests-one-dropped-response.pcap")
        for inodes in range(6, 24):
            shutil.rmtree(self.store, ignore_errors=True)
            run(["mount", "-o", "remount,nr_inodes=%d" % inodes, self.mnt])
            p = run([TM, "record", "--store", self.store, "--cutoff", "none", "--read", src, "--json"], check=False)
            if re.search(r"default/\S+\.idx\.tmp: No space left on device", p.stderr.decode()):
                return p
        self.fail("no inode limit made the last seal fail")

    def test_reported_counted_and_queryable(self):
        p = self.record_until_the_sidecar_fails()
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("was not sealed", err)
        self.assertIn("queries scan it", err)
        j = json.loads(p.stdout)
        c = j["classes"]["default"]
        self.assertEqual(c["segments_unsealed"], 1)
        self.assertIn("not sealed", j["writer"]["unsealed"])
        self.assertEqual(j["writer"]["lost_packets"], 0)
        self.assertEqual(c["stored_packets"], c["seen_packets"])
        self.assertEqual(c["stored_packets"], records_on_disk(self.store))
        segs = store_segments(self.store)
        self.assertEqual(len(segs), 1)
        self.assertFalse(os.path.exists(segs[0][:-5] + ".idx"))
        q = run([TM, "query", "--store", self.store, "-q", "--count", ""])
        self.assertEqual(int(q.stdout), c["stored_packets"])
        # With room again, the next run indexes it.
        run(["mount", "-o", "remount,nr_inodes=1000", self.mnt])
        run([TM, "record", "--store", self.store, "--read", corpus("malformed", "empty.pcap")])
        self.assertEqual(len(glob.glob(os.path.join(self.store, "default", "*.idx"))), 1)
        q = run([TM, "query", "--store", self.store, "-q", "--count", ""])
        self.assertEqual(int(q.stdout), c["stored_packets"])


class NoRoomForTheFlowSidecar(StoreTest):
    """The flow file's sidecar cannot be written at the end of a recording: the run says so, names the
    file and exits 1, the summary counts it (flow_files_unsealed), tm flows still reads its records, and
    the next run on the store indexes it. A directory in the way of the sidecar's temporary file stands
    for the full disk (as unit StoreFull.EverySegmentLeftUnsealedIsCounted does): at the end of a run the
    flow file's seal and the last segment's race for a tmpfs's last inode, which would make the test
    hit one or the other by chance."""
    SRC = corpus("mixed", "1000-requests-one-dropped-response.pcap")

    def flow_file_name(self):
        """The flow file this input makes in a new store (its name: sequence number 1, first record's time)."""
        other = self.path("learn")
        record(other, [self.SRC])
        names = [os.path.basename(f)[:-len(".flows")] for f in glob.glob(os.path.join(other, "flows", "*.flows"))]
        self.assertEqual(len(names), 1, names)
        return names[0]

    def test_counted_reported_and_indexed_next_time(self):
        name = self.flow_file_name()
        record(self.store, [corpus("malformed", "empty.pcap")])  # a store, no flow file yet
        in_the_way = os.path.join(self.store, "flows", name + ".idx.tmp")
        os.makedirs(in_the_way)
        p = tm("record", "--store", self.store, "--read", self.SRC, "--json", check=False)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("flows/%s.flows was not sealed" % name, err)
        self.assertIn(".idx.tmp", err)
        j = json.loads(p.stdout)
        self.assertEqual(j["flow_files_unsealed"], 1)
        self.assertEqual(j["classes"]["default"]["segments_unsealed"], 0)
        self.assertFalse(os.path.exists(os.path.join(self.store, "flows", name + ".idx")))
        flows = tm("flows", "--store", self.store, "--format", "csv").stdout.decode().splitlines()
        self.assertEqual(len(flows), 2, flows)  # the header and the input's one connection
        # The text summary says it too.
        os.rmdir(in_the_way)
        shutil.rmtree(self.store)
        record(self.store, [corpus("malformed", "empty.pcap")])
        os.makedirs(in_the_way)
        p = tm("record", "--store", self.store, "--read", self.SRC, check=False)
        self.assertIn("not indexed: 1 flow files stored without a sidecar", p.stdout.decode())
        # With the way clear, the next run indexes it.
        os.rmdir(in_the_way)
        j = record(self.store, [corpus("malformed", "empty.pcap")])
        self.assertEqual(j["flow_files_unsealed"], 0)
        self.assertTrue(os.path.exists(os.path.join(self.store, "flows", name + ".idx")))
        self.assertEqual(tm("flows", "--store", self.store, "--format", "csv").stdout.decode().splitlines(), flows)


class LiveServe:
    """tm serve -i lo on self.store, and what it answers (a mixin of StoreTest)."""

    def serve(self, *extra):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.err = open(self.path("serve.err"), "w+b")
        self.addCleanup(self.err.close)
        self.proc = subprocess.Popen([TM, "serve", "--store", self.store, "-i", "lo", "--segment-size", "512k",
                                      "--listen", "127.0.0.1:%d" % port, *extra], stdout=subprocess.DEVNULL, stderr=self.err)
        self.addCleanup(lambda: (self.proc.poll() is None and self.proc.kill(), self.proc.wait()))
        self.url = "http://127.0.0.1:%d" % port
        self.until(lambda: self.get("/health") is not None, "serve answers /health")

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:  # (slow under sanitizers)
                return r.read().decode()
        except OSError:
            return None

    def health(self):
        """(HTTP status, JSON body) of /health."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stats(self):
        return json.loads(self.get("/api/v1/stats"))["capture"]

    def metric(self, name):
        text = self.get("/metrics")  # None while the server does not answer: not yet
        m = text and re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % name, text, re.M)
        return float(m.group(1)) if m else None

    def until(self, ok, what, seconds=10, traffic=False):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.err.seek(0)
                self.fail("tm serve exited (%d): %s" % (self.proc.returncode, self.err.read().decode()))
            if traffic:
                self.send(2 << 20)
            if ok():
                return
            time.sleep(0.1)
        self.err.seek(0)
        self.fail("not within %d s: %s\n%s" % (seconds, what, self.err.read().decode()[-3000:]))

    def send(self, nbytes):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(nbytes // 8000):
                s.sendto(b"x" * 8000, ("127.0.0.1", 9))

    def ring_full_drops(self):
        text = self.get("/metrics") or ""
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tm_packets_dropped_total{") and 'reason="ring_full"' in line)


class LiveDiskFull(TmpfsStore, LiveServe):
    """tm serve -i lo on a full disk: it deletes its oldest segments, or says it cannot write
    (stats writer_error, /metrics tm_writer_error) and writes again once there is room."""
    size = "6m"

    def test_oldest_segments_make_room(self):
        if os.geteuid() != 0:
            self.skipTest("live capture on lo needs root")
        self.serve()
        self.until(lambda: (self.metric("tm_segments_evicted_total") or 0) > 0, "segments deleted for room",
                   seconds=30, traffic=True)
        self.assertEqual(self.stats()["writer_error"], "")
        self.assertEqual(self.metric("tm_writer_error"), 0)
        self.assertGreater(self.metric("tm_writer_write_errors_total"), 0)
        # Segments a failed seal left without a sidecar are exported as the stats count them (a counter:
        # read after the stats, it is at least what they said).
        unsealed = self.stats()["classes"]["default"]["segments_unsealed"]
        self.assertIsNotNone(self.metric("tm_segments_unsealed_total"), "tm_segments_unsealed_total in /metrics")
        self.assertGreaterEqual(self.metric("tm_segments_unsealed_total"), unsealed)
        flows_unsealed = self.stats()["flow_files_unsealed"]  # (the flow files' count, the same way)
        self.assertGreaterEqual(self.metric("tm_flow_files_unsealed_total"), flows_unsealed)

    def test_nothing_to_delete_reports_and_retries(self):
        if os.geteuid() != 0:
            self.skipTest("live capture on lo needs root")
        self.serve()
        ballast = self.fill_disk()
        self.until(lambda: self.stats()["writer_error"] != "", "writer_error reported", traffic=True)
        self.assertIn("No space left", self.stats()["writer_error"])
        self.assertEqual(self.metric("tm_writer_error"), 1)
        status, body = self.health()  # a monitor sees it: 503, degraded, with the reason
        self.assertEqual(status, 503)
        self.assertEqual(body["status"], "degraded")
        self.assertIn("No space left", body["error"])
        os.remove(ballast)
        self.until(lambda: self.stats()["writer_error"] == "", "writing again", traffic=True)
        self.assertEqual(self.metric("tm_writer_error"), 0)
        self.assertEqual(self.health(), (200, {"status": "ok", "live": True, "store": self.store}))

    def test_stop_is_not_held_up_by_a_writer_that_cannot_write(self):
        # Live, a full RAM budget makes the capture thread wait for the writer; a writer that makes no room
        # at all (nothing left to delete) must not keep it waiting: after a short while it drops, counted,
        # and SIGINT still stops tm serve.
        if os.geteuid() != 0:
            self.skipTest("live capture on lo needs root")
        self.serve("--ram-budget", "1m")
        self.fill_disk()
        self.until(lambda: self.stats()["writer_error"] != "", "writer_error reported", traffic=True)
        self.until(lambda: self.ring_full_drops() > 0, "packets dropped once the writer made no room", seconds=30,
                   traffic=True)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("tm serve still running 30 s after SIGINT while its writer could not write")

    def fill_disk(self):
        ballast = os.path.join(self.mnt, "ballast")
        with open(ballast, "wb") as f:
            try:
                for _ in range(16):
                    f.write(b"b" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        return ballast


class LiveReadOnly(StoreTest, LiveServe):
    """tm serve -i lo on a file system that goes read-only under it (ext4 on a loop device,
    errors=remount-ro, an error triggered through /sys/fs/ext4/<dev>/trigger_fs_error): the
    writer reports it as it reports a full disk, logs it once rather than at every attempt,
    counts what it drops, and still stops on SIGINT."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("a loop device and live capture on lo need root")
        if not shutil.which("mkfs.ext4"):
            self.skipTest("no mkfs.ext4")
        image = self.path("fs.img")
        with open(image, "wb") as f:
            f.truncate(32 << 20)
        run(["mkfs.ext4", "-q", "-F", image])
        self.mnt = self.path("mnt")
        os.mkdir(self.mnt)
        p = subprocess.run(["mount", "-o", "loop,errors=remount-ro", image, self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            self.skipTest("cannot mount an ext4 image: %s" % p.stderr.decode(errors="replace").strip())
        self.addCleanup(subprocess.run, ["umount", "-l", self.mnt])
        dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", self.mnt], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip()
        self.trigger = "/sys/fs/ext4/%s/trigger_fs_error" % os.path.basename(dev)
        if not os.path.exists(self.trigger):
            self.skipTest("no %s (a kernel before 5.x)" % self.trigger)
        self.store = os.path.join(self.mnt, "store")

    def log_lines(self, text):
        self.err.flush()
        with open(self.path("serve.err"), "rb") as f:
            return [line for line in f.read().decode(errors="replace").splitlines() if text in line]

    def test_reported_once_counted_and_stopped(self):
        self.serve("--ram-budget", "1m", "--status-interval", "0")  # (no status lines among the counted)
        self.until(lambda: self.stats()["classes"]["default"]["written_packets"] > 0, "packets written",
                   traffic=True)
        with open(self.trigger, "w") as f:
            f.write("tm test\n")
        self.until(lambda: "Read-only file system" in self.stats()["writer_error"], "writer_error reported",
                   traffic=True)
        status, body = self.health()
        self.assertEqual(status, 503)
        self.assertEqual(body["status"], "degraded")
        self.assertIn("Read-only file system", body["error"])
        self.assertEqual(self.metric("tm_writer_error"), 1)
        # Traffic goes on for 3 s: the writer tries again about once a second, and logs none of it.
        # (The flow records' writer reports its own failure once, when it first needs a file: when
        # that is depends on the flow tick, so it is counted apart.)
        packets_lines = lambda: [l for l in self.log_lines("Read-only file system") if "flow records:" not in l]
        before = len(packets_lines())
        self.until(lambda: self.ring_full_drops() > 0, "packets dropped once the writer could not write",
                   seconds=30, traffic=True)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            self.send(2 << 20)
            time.sleep(0.1)
        self.assertIn("Read-only file system", self.stats()["writer_error"])
        lines = packets_lines()
        self.assertLessEqual(len(lines), 3, "\n".join(lines))  # the first failure, then "writes keep failing"
        self.assertEqual(len(lines), before, "\n".join(lines))
        self.assertLessEqual(len(self.log_lines("flow records:")), 1)
        self.assertEqual(len(self.log_lines("writes keep failing")), 1)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("tm serve still running 30 s after SIGINT on a read-only file system")
        stopped = self.log_lines("stopped; at the end")
        self.assertEqual(len(stopped), 1)
        dropped = re.search(r"dropped: (\d+) in tm", stopped[0])
        self.assertIsNotNone(dropped, stopped[0])
        self.assertGreater(int(dropped.group(1)), 0, stopped[0])


class SegmentLargerThanBudget(StoreTest):
    def test_shrunk_with_a_warning(self):
        args = ["record", "--store", self.store, "--cutoff", "none", "--disk-budget", "4m",
                "--segment-size", "64m", "--json"]
        for f in INPUT:
            args += ["--read", f]
        p = run([TM] + args)
        self.assertIn("larger than the disk budget", p.stderr.decode())
        segs = store_segments(self.store)
        self.assertGreater(len(segs), 0, "the store kept nothing")
        size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(self.store, "default", "*")))
        self.assertLessEqual(size, 4 << 20)
        self.assertGreater(size, 2 << 20)


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)
