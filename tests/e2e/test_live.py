"""tm record on a live interface, end to end: a real capture replayed with tcpreplay over a veth pair
inside a network namespace of its own, recorded with the default capture method (AF_PACKET on a veth;
test_afpacket.py also runs libpcap), stopped by SIGINT or SIGTERM.

Needs root, `ip netns` and tcpreplay; skips (saying why) otherwise."""
import json
import os
import sys
import re
import shutil
import signal
import subprocess
import time
import unittest

from tmtest import LONG_TIMEOUTS, TmProcess, TM, StoreTest, capturing, veth_namespace, corpus, read_pcap, run, store_segments, tcpdump_packets, tm

SEND, CAPTURE = "tmsend", "tmcap"  # the veth pair, both ends inside the test's namespace
FILES = [corpus("mixed", "wikipedia.pcap"), corpus("mixed", "bro.org.pcap")]
WAIT = 60  # seconds: the most any step may take on a loaded machine; a healthy run needs about 1 s


def strip_ts(pkts):
    """tcpdump_packets() text without the leading timestamp: live timestamps are the replay's."""
    return [p.split(" ", 1)[1] for p in pkts]


def stored(store):
    got = []
    for seg in store_segments(store):
        got += tcpdump_packets(seg)
    return strip_ts(got)


def pcap_bytes(files):
    """Size of a store's pcap segment(s) holding exactly these files' packets."""
    return 24 + sum(16 + cap for f in files for _, cap, _, _ in read_pcap(f))


class Live(TmProcess, StoreTest):
    def setUp(self):
        self.ns, self.ifindex = veth_namespace(self, "tmtest", SEND, CAPTURE)
        super().setUp()
        self.proc = None

    def ns_run(self, *args, check=True):
        return run(["ip", "netns", "exec", self.ns] + list(args), check=check)

    def sysctl(self, *settings):
        self.ns_run("sysctl", "-q", "-w", *settings, check=False)

    # --- tm -----------------------------------------------------------------------------------------------

    def start(self, *extra):
        args = ["ip", "netns", "exec", self.ns, TM, "record", "--store", self.store, "--interface", CAPTURE,
                "--json"] + list(extra)
        self.out, self.err = open(self.path("stdout"), "w+b"), open(self.path("stderr"), "w+b")
        self.addCleanup(self.err.close)
        self.addCleanup(self.out.close)
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err)  # ip netns exec execs tm: same pid
        self.addCleanup(self.kill)
        self.wait_capturing()

    def wait_capturing(self):
        """Until tm's packet socket is bound to the capture end, running, with its ring mapped: from then on
        the kernel keeps every packet for it, however late tm's loop starts reading."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.alive("starting")
            if capturing(self.proc.pid, self.ifindex):
                return
            time.sleep(0.05)
        self.fail("tm did not start capturing on %s within %d s:\n%s" % (CAPTURE, WAIT, self.stderr()))

    def wait_written(self, nbytes):
        """Until the store's segments hold nbytes: tm writes the open segment out every 500 ms while running,
        so what was captured must reach the disk without stopping tm."""
        deadline = time.monotonic() + WAIT
        have = 0
        while time.monotonic() < deadline:
            self.alive("recording")
            have = sum(os.path.getsize(s) for s in store_segments(self.store))
            if have >= nbytes:
                return
            time.sleep(0.05)
        self.fail("%d s after the replay, the running tm had written %d of its %d bytes" % (WAIT, have, nbytes))

    def stop(self, sig=signal.SIGINT):
        """Signal tm, wait for it, return its JSON summary."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("tm still running %d s after %s" % (WAIT, signal.Signals(sig).name))
        self.assertEqual(rc, 0, "exit code after %s:\n%s" % (signal.Signals(sig).name, self.stderr()))
        self.assertLess(time.monotonic() - t0, 10, "shutdown is slow")
        self.out.seek(0)
        return json.loads(self.out.read())

    def replay(self, files):
        # A modest rate: at top speed the kernel's per-CPU backlog (netdev_max_backlog) may drop packets
        # between the veth ends, before any capture sees them.
        p = self.ns_run("tcpreplay", "-i", SEND, "--mbps", "50", *files)
        text = p.stdout.decode(errors="replace")
        m = re.search(r"Successful packets:\s+(\d+)", text)
        want = sum(len(read_pcap(f)) for f in files)
        self.assertTrue(m and int(m.group(1)) == want, "tcpreplay did not send all %d packets:\n%s" % (want, text))
        failed = re.search(r"Failed packets:\s+(\d+)", text)
        self.assertTrue(failed and failed.group(1) == "0", text)

    # --- checks -------------------------------------------------------------------------------------------

    def check_accounting(self, s):
        c = s["classes"]["default"]
        self.assertEqual(s["packets"], c["stored_packets"] + c["cut_packets"] + c["dropped_ring_full"], s)
        for k in ("dropped", "received", "interface_dropped", "ring_damaged"):
            self.assertIsInstance(s["kernel"][k], int, "kernel.%s in %s" % (k, s["kernel"]))
        # The ring blocks' offsets are checked before they are followed: no frame the kernel
        # wrote may be taken for damage.
        self.assertEqual(s["kernel"]["ring_damaged"], 0, s["kernel"])
        self.assertEqual(c["stored_packets"], sum(len(read_pcap(p)) for p in store_segments(self.store)))
        for seg in store_segments(self.store):
            run(["tcpdump", "-r", seg, "-w", "/dev/null"])

    def check_exact(self, s, files):
        """The store holds the replayed packets: same bytes, same order, nothing else."""
        want = []
        for f in files:
            want += strip_ts(tcpdump_packets(f))
        self.assertSamePackets(stored(self.store), want, "live store vs replayed files")
        self.assertEqual(s["packets"], len(want))
        self.assertEqual(s["classes"]["default"]["stored_packets"], len(want))
        self.assertEqual(s["kernel"]["dropped"], 0)
        self.check_accounting(s)

    # --- tests --------------------------------------------------------------------------------------------

    def test_sigint_stores_exactly_the_replayed_packets(self):
        self.start("--cutoff", "none")
        self.replay(FILES)
        self.wait_written(pcap_bytes(FILES))
        s = self.stop(signal.SIGINT)
        self.check_exact(s, FILES)

    def test_idle_second_interface_does_not_stall_the_first(self):
        # A second veth pair that stays silent: reading it must not hold up the busy one.
        self.ns_run("ip", "link", "add", "tmsend2", "type", "veth", "peer", "name", "tmcap2")
        self.sysctl("net.ipv6.conf.tmsend2.disable_ipv6=1", "net.ipv6.conf.tmcap2.disable_ipv6=1")
        for ifc in ("tmsend2", "tmcap2"):
            self.ns_run("ip", "link", "set", ifc, "up")
        self.start("--cutoff", "none", "--interface", "tmcap2")
        self.replay(FILES)
        self.wait_written(pcap_bytes(FILES))
        s = self.stop(signal.SIGINT)
        self.check_exact(s, FILES)

    def test_sigterm_stops_the_same_way(self):
        files = FILES[:1]
        self.start("--cutoff", "none")
        self.replay(files)
        self.wait_written(pcap_bytes(files))
        s = self.stop(signal.SIGTERM)
        self.check_exact(s, files)

    def test_idle_link_stops_promptly(self):
        self.start("--cutoff", "none")
        s = self.stop(signal.SIGINT)
        self.assertEqual(s["packets"], 0)
        self.check_accounting(s)

    def test_cutoff_live_as_offline(self):
        """--cutoff 2k live stores what the same record of the files stores: the cutoff counts bytes per
        connection, not time (long timeouts: the replay takes milliseconds, the originals minutes)."""
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(LONG_TIMEOUTS)
        offline = self.path("offline")
        p = tm("record", "--store", offline, "--json", "--config", cfg, "--cutoff", "2k",
               *[a for f in FILES for a in ("--read", f)])
        off = json.loads(p.stdout)
        want = stored(offline)
        self.start("--config", cfg, "--cutoff", "2k")
        self.replay(FILES)
        self.wait_written(sum(os.path.getsize(s) for s in store_segments(offline)))
        s = self.stop()
        c = s["classes"]["default"]
        self.assertSamePackets(stored(self.store), want, "live store vs offline store")
        total = sum(len(read_pcap(f)) for f in FILES)
        self.assertEqual(s["packets"], total)
        self.assertLess(c["stored_packets"], total)
        self.assertGreater(c["cut_packets"], 0)
        self.assertEqual(c["cut_packets"], off["classes"]["default"]["cut_packets"])
        self.assertEqual(c["stored_packets"], len(want))
        self.check_accounting(s)

    def test_a_store_deleted_while_recording_ends_the_run(self):
        # `rm -rf` of the store under a live tm: it went on writing into the deleted files, counted the
        # packets stored and stayed healthy, while every one of them was lost.
        files = FILES[:1]
        self.start("--cutoff", "none")
        self.replay(files)
        self.wait_written(pcap_bytes(files))
        shutil.rmtree(self.store)
        try:
            rc = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("tm still running %d s after its store was deleted:\n%s" % (WAIT, self.stderr()))
        err = self.stderr()
        self.assertEqual(rc, 1, err)
        self.assertIn("the store directory %s was deleted while recording" % self.store, err)
        self.assertFalse(os.path.exists(self.store), "the deleted store was made again")


if __name__ == "__main__":
    # Exit 77 (CTest's SKIP_RETURN_CODE) when nothing could run, so a machine without
    # namespaces shows the test as skipped, not passed.
    result = unittest.main(exit=False).result
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)
