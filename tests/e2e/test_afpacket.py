"""Live capture through AF_PACKET TPACKET_V3 (capture.method = "afpacket"), end to end: corpus captures,
VLAN-tagged ones among them, replayed with tcpreplay over a veth pair in a network namespace of the test's
own, recorded by `tm record -i` and by `tcpdump -w` side by side; and PACKET_FANOUT: two sockets of one
group (build/afpacket_dump) share a replay, every packet once, each connection on one socket.

Needs root, `ip netns` and tcpreplay; skips (saying why) otherwise."""
import collections
import json
import os
import sys
import time
import unittest

from tmtest import TM, NetnsTest, StoreTest, TmProcess, conn_of, corpus, read_pcap, store_segments

SEND, CAPTURE = "tmsend", "tmcap"
WAIT = 60  # seconds: the most any step may take on a loaded machine
PLAIN = [corpus("mixed", "bro.org.pcap"), corpus("mixed", "wikipedia.pcap")]
# Outer 802.1Q and 802.1ad tags (the kernel takes the outer one out of the frame), stacked tags, one
# frame of 1526 bytes.
VLAN = [corpus("link", f) for f in ("icmp_dot1q.pcap", "q-in-q.pcap", "802.1ad_QinQ.pcap", "vlan-qinqinq.pcap")]
DUMP = os.path.join(os.path.dirname(TM), "afpacket_dump")


def frames(files):
    return [rec[3] for f in files for rec in read_pcap(f)]


def tagged(fs):
    return sum(1 for f in fs if f[12:14] in (b"\x81\x00", b"\x88\xa8"))


class AfPacket(NetnsTest, TmProcess, StoreTest):
    def setUp(self):
        self.netns("tmafp")
        super().setUp()
        self.proc = None
        for ifc in (SEND, CAPTURE):  # room for the 1526-byte frame of vlan-qinqinq.pcap
            self.ns_run("ip", "link", "set", ifc, "mtu", "9000")

    # --- tm record ----------------------------------------------------------------------------------------

    def record_live(self, method, files):
        """tm record -i with capture.method = `method` and tcpdump -w on the same interface, one replay of
        `files`: both hold the replayed frames, byte for byte, in order."""
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[capture]\nmethod = "%s"\n' % method)
        tm = self.spawn("tm", [TM, "record", "--store", self.store, "--interface", CAPTURE, "--json", "--config", cfg,
                               "--cutoff", "none"])
        self.wait_capturing(tm, "tm record")
        dump = self.path("tcpdump.pcap")
        td = self.spawn("tcpdump", ["tcpdump", "-i", CAPTURE, "-s", "0", "-U", "-w", dump, "--time-stamp-precision",
                                    "nano"])
        self.wait_capturing(td, "tcpdump")
        want = frames(files)
        self.replay(files)
        size = 24 + sum(16 + len(f) for f in want)
        self.wait_size(lambda: store_segments(self.store), size, "tm")
        self.wait_size(lambda: [dump], size, "tcpdump")
        s = json.loads(self.stop(tm, "tm record"))
        self.stop(td, "tcpdump")
        got = [rec[3] for seg in store_segments(self.store) for rec in read_pcap(seg)]
        by_tcpdump = [rec[3] for rec in read_pcap(dump)]
        self.assertEqual(len(by_tcpdump), len(want), "tcpdump -w on the interface")
        self.assertEqual(by_tcpdump, want, "tcpdump -w on the interface vs the replayed files")
        self.assertEqual(len(got), len(want), "packets stored by tm (%s)" % method)
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "frame %d stored by tm (%s) differs from the one replayed" % (i, method))
        self.assertEqual(tagged(got), tagged(want))
        self.assertEqual(s["packets"], len(want))
        self.assertEqual(s["classes"]["default"]["stored_packets"], len(want))
        self.assertEqual(s["kernel"]["dropped"], 0)
        self.assertGreaterEqual(s["kernel"]["received"], len(want))
        # Every frame was captured: the interface dropped none, whatever the stack did with the
        # tagged frames afterwards (it has no VLAN device for them: its rx_dropped rises).
        self.assertEqual(s["kernel"]["interface_dropped"], 0, "interface drops (%s)" % method)
        return s

    def test_afpacket_stores_the_frames_as_replayed_vlan_tags_included(self):
        files = PLAIN + VLAN
        self.assertGreater(tagged(frames(VLAN)), 30)
        s = self.record_live("afpacket", files)
        self.assertEqual(s["kernel"]["ring_freezes"], 0)
        self.assertEqual(s["kernel"]["ring_damaged"], 0)  # no frame the kernel wrote taken for damage

    def wait_link(self):
        deadline = time.monotonic() + WAIT
        while "LOWER_UP" not in self.ns_run("ip", "link", "show", CAPTURE).stdout.decode():
            self.assertLess(time.monotonic(), deadline, "%s has no carrier %d s after up" % (CAPTURE, WAIT))
            time.sleep(0.05)

    def test_a_link_flap_is_no_end(self):
        """The interface down and up again: tm stopped at ENETDOWN (exit 1, tm serve with it), and the
        packets of the block the kernel was filling were neither stored nor counted. It now carries on,
        as libpcap and tcpdump do."""
        tm = self.spawn("tm", [TM, "record", "--store", self.store, "--interface", CAPTURE, "--json",
                               "--cutoff", "none"])
        self.wait_capturing(tm, "tm record")
        self.replay(PLAIN[:1])
        self.ns_run("ip", "link", "set", CAPTURE, "down")
        time.sleep(0.5)
        self.ns_run("ip", "link", "set", CAPTURE, "up")
        self.wait_link()
        self.replay(PLAIN[1:])
        want = frames(PLAIN)
        self.wait_size(lambda: store_segments(self.store), 24 + sum(16 + len(f) for f in want), "tm")
        # The whole line: "it is up again" alone is also the end of the went-down warning.
        up_again = ("interface %s: it is up again" % CAPTURE).encode()
        deadline = time.monotonic() + WAIT
        while True:
            with open(self.path("tm.err"), "rb") as f:
                if up_again in f.read():
                    break
            self.assertLess(time.monotonic(), deadline, "no 'it is up again' %d s after the link came up" % WAIT)
            time.sleep(0.05)
        s = json.loads(self.stop(tm, "tm record"))
        got = [rec[3] for seg in store_segments(self.store) for rec in read_pcap(seg)]
        self.assertEqual(got, want)
        self.assertEqual(s["classes"]["default"]["stored_packets"], len(want))
        tm.err.seek(0)
        err = tm.err.read().decode()
        self.assertIn("interface %s: it went down; capture goes on when it is up again" % CAPTURE, err)
        self.assertIn("interface %s: it is up again" % CAPTURE, err)

    def test_an_interface_gone_ends_the_capture_after_its_packets(self):
        tm = self.spawn("tm", [TM, "record", "--store", self.store, "--interface", CAPTURE, "--json",
                               "--cutoff", "none"])
        self.wait_capturing(tm, "tm record")
        self.replay(PLAIN[:1])
        self.ns_run("ip", "link", "del", CAPTURE)
        rc = tm.wait(timeout=WAIT)
        tm.err.seek(0)
        err = tm.err.read().decode()
        self.assertEqual(rc, 1, err)
        self.assertIn("interface %s: capture socket error: Network is down (ENETDOWN): the interface is gone"
                      % CAPTURE, err)
        got = [rec[3] for seg in store_segments(self.store) for rec in read_pcap(seg)]
        self.assertEqual(got, frames(PLAIN[:1]), "what the kernel had given tm before is stored")

    def test_an_interface_deleted_while_down_ends_the_capture(self):
        # Down, then deleted: no second ENETDOWN comes; the interface is looked up again while down.
        tm = self.spawn("tm", [TM, "record", "--store", self.store, "--interface", CAPTURE, "--json"])
        self.wait_capturing(tm, "tm record")
        self.ns_run("ip", "link", "set", CAPTURE, "down")
        time.sleep(0.5)
        self.ns_run("ip", "link", "del", CAPTURE)
        rc = tm.wait(timeout=WAIT)
        tm.err.seek(0)
        err = tm.err.read().decode()
        self.assertEqual(rc, 1, err)
        self.assertIn("it went down; capture goes on when it is up again", err)
        self.assertIn("the interface is gone", err)

    def test_several_capture_threads_on_a_down_interface_are_refused_naming_why(self):
        # The kernel lets no socket of a down interface join a fanout group: it said "it is not up;
        # capture starts when it is", then failed on setsockopt(PACKET_FANOUT) with EINVAL. Then it
        # was refused once the store was made; now before, as a typo in the name is.
        self.ns_run("ip", "link", "set", CAPTURE, "down")
        for args in (["record", "--capture-threads", "2"], ["serve", "--capture-threads", "2"],
                     ["record", "--worker-id", "0", "--workers", "2"]):
            p = self.ns_run(TM, *args, "--store", self.store, "--interface", CAPTURE, check=False)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn("interface %s: it is not up, and the kernel lets no socket of a down interface join a "
                          "fanout group" % CAPTURE, p.stderr.decode(), args)
            self.assertIn("nothing recorded", p.stderr.decode(), args)
            self.assertFalse(os.path.exists(self.store), args)

    def test_libpcap_method_stores_the_same(self):
        self.record_live("libpcap", PLAIN + VLAN)

    def test_afpacket_method_refuses_what_it_cannot_read(self):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[capture]\nmethod = "afpacket"\nfilter = "tcp"\n')
        p = self.ns_run(TM, "record", "--store", self.store, "--interface", CAPTURE, "--config", cfg, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('interface tmcap: capture.method = "afpacket" cannot be used: a capture filter is set',
                      p.stderr.decode())
        with open(cfg, "w") as f:
            f.write('[capture]\nmethod = "pfring"\n')
        p = self.ns_run(TM, "record", "--store", self.store, "--interface", CAPTURE, "--config", cfg, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("capture.method", p.stderr.decode())

    # --- fanout -------------------------------------------------------------------------------------------

    def fanout(self, method, files):
        if not os.access(DUMP, os.X_OK):
            self.skipTest("%s is not built" % DUMP)
        prefix = self.path("fanout")
        paths = [prefix + ".0.pcap", prefix + ".1.pcap"]
        p = self.spawn("dump", [DUMP, CAPTURE, "4711", "2", prefix, method])
        self.wait_capturing(p, "afpacket_dump")
        deadline = time.monotonic() + WAIT  # "ready": every socket bound (capturing() sees one of them)
        while True:
            with open(p.out.name, "rb") as f:
                if b"ready" in f.read():
                    break
            self.assertLess(time.monotonic(), deadline, "afpacket_dump not ready")
            time.sleep(0.05)
        want = frames(files)
        self.replay(files)
        self.wait_size(lambda: paths, 2 * 24 + sum(16 + len(f) for f in want), "afpacket_dump")
        stats = [json.loads(line) for line in self.stop(p, "afpacket_dump").splitlines() if line.startswith("{")]
        got = [[rec[3] for rec in read_pcap(path)] for path in paths]
        self.assertEqual([s["packets"] for s in stats], [len(g) for g in got])
        self.assertEqual(sum(s["kernel_dropped"] for s in stats), 0)
        # Every frame exactly once over the two sockets.
        self.assertEqual(collections.Counter(got[0] + got[1]), collections.Counter(want))
        self.assertTrue(got[0] and got[1], "one socket got nothing: %d and %d frames" % tuple(map(len, got)))
        # Each connection (both directions) on one socket.
        where = collections.defaultdict(set)
        for sock, fs in enumerate(got):
            for f in fs:
                c = conn_of(f)
                if c and c[0][0] in (6, 17):
                    where[c[0]].add(sock)
        split = [k for k, s in where.items() if len(s) > 1]
        self.assertGreater(len(where), 20)
        self.assertEqual(split, [], "connections split over the two sockets")

    def test_fanout_two_afpacket_sockets_share_a_replay_by_connection(self):
        self.fanout("afpacket", PLAIN + VLAN)

    def test_fanout_on_libpcap_sockets(self):
        self.fanout("libpcap", PLAIN)


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)
