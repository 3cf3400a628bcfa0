"""Hostile or awkward input to tm record: damaged pcapng files (every unreadable part warned with its
offset and counted, a file of which nothing can be read refused), and a capture read from a pipe that
stays open (packets stored within a second, SIGTERM ends the run at once)."""
import json
import os
import re
import signal
import struct
import subprocess
import time
import unittest

from tmtest import TM, StoreTest, corpus, read_pcap, record, run, store_segments, tcpdump_packets, tm


def block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def shb():
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype=1, snaplen=65535):
    return block(1, struct.pack("<HHI", linktype, 0, snaplen))


def epb(ifid, ts_ns, data):
    us = ts_ns // 1000
    return block(6, struct.pack("<IIIII", ifid, us >> 32, us & 0xffffffff, len(data), len(data)) + data)


def tshark_count(path):
    p = run(["tshark", "-r", path, "-T", "fields", "-e", "frame.number"], check=False)
    return len(p.stdout.split())


class DamagedPcapng(StoreTest):
    def frames(self, n=10):
        return [(ts - ts % 1000, data) for ts, cap, wire, data in read_pcap(corpus("mixed", "wikipedia.pcap"))[:n]]

    def record(self, path, *extra):
        return tm("record", "--store", self.store, "--read", path, "--json", "--cutoff", "none", *extra, check=False)

    def test_bad_block_before_the_first_packet_loses_nothing_else(self):
        frames = self.frames()
        head = shb() + idb()
        bad = struct.pack("<II", 4, 7) + b"garbage!"  # a name resolution block of impossible length
        path = self.path("bad.pcapng")
        with open(path, "wb") as f:
            f.write(head + bad + b"".join(epb(0, ts, d) for ts, d in frames))
        # libpcap stops there: tcpdump reads none of the 10 packets.
        self.assertEqual(run(["tcpdump", "-r", path], check=False).stdout.count(b"\n"), 0)
        p = self.record(path)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(json.loads(p.stdout)["packets"], 10)
        self.assertIn("offset %d" % len(head), err)
        self.assertIn("1 unreadable part(s) skipped (%d bytes" % len(bad), err)
        got = [(ts, d) for seg in store_segments(self.store) for ts, cap, wire, d in read_pcap(seg)]
        self.assertEqual(got, frames)

    def test_packets_of_undefined_interfaces_are_counted(self):
        frames = self.frames(4)
        path = self.path("ifaces.pcapng")
        with open(path, "wb") as f:
            f.write(shb() + idb() + b"".join(epb(i % 2 * 5, ts, d) for i, (ts, d) in enumerate(frames)))
        p = self.record(path)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(json.loads(p.stdout)["packets"], 2)
        self.assertIn("interface 5", err)
        self.assertIn("2 unreadable part(s) skipped", err)

    def test_a_file_of_which_nothing_can_be_read_is_an_error(self):
        frames = self.frames(3)
        for name, content in [("no-idb.pcapng", shb() + b"".join(epb(0, ts, d) for ts, d in frames)),
                              ("garbage.pcapng", shb() + b"\x01\x00\x00\x00\xff\xff\xff\x7f" + b"x" * 100)]:
            with self.subTest(file=name):
                path = self.path(name)
                with open(path, "wb") as f:
                    f.write(content)
                p = self.record(path)
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 1, err)
                self.assertIn(name, err)
                self.assertIn("no packet could be read", err)
                self.assertFalse(os.path.exists(self.store), "the store is not touched")

    def test_interfaces_of_different_snapshot_lengths_are_read_as_tshark_does(self):
        src = corpus("pcapng", "gap-data-missing.pcapng")
        self.assertNotEqual(run(["tcpdump", "-r", src], check=False).returncode, 0)  # libpcap refuses it
        p = self.record(src)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(json.loads(p.stdout)["packets"], tshark_count(src))

    def test_simple_packet_blocks_have_no_time_and_say_so(self):
        # A simple packet block carries no time: libpcap reads it at time 0, and so does tm,
        # which said nothing (a flow holding one then lasted 53 years).
        frames = self.frames(3)
        spb = block(3, struct.pack("<I", len(frames[1][1])) + frames[1][1])
        path = self.path("spb.pcapng")
        head = shb() + idb() + epb(0, *frames[0])
        with open(path, "wb") as f:
            f.write(head + spb + epb(0, *frames[2]))
        self.assertEqual(run(["tcpdump", "-tt", "-r", path]).stdout.split(b"\n")[1][:11], b"0.000000 IP")
        p = self.record(path)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(json.loads(p.stdout)["packets"], 3)
        self.assertIn("%s: 1 simple packet blocks, which carry no time (the first at offset %d): stored at time 0"
                      % (path, len(head)), err)


class OversizeRecords(StoreTest):
    """A record longer than 262144 bytes (written by a tool with a larger snaplen, or BIG TCP on
    loopback): libpcap and Wireshark refuse it, so tm stores it cut to 262144 bytes, as a capture
    with that snaplen would hold it, and says so. Its answers stay readable."""

    def test_a_record_longer_than_262144_bytes_is_stored_cut_to_it(self):
        frames = [(ts - ts % 1000, cap, wire, d) for ts, cap, wire, d in
                  read_pcap(corpus("mixed", "wikipedia.pcap"))[:3]]
        big = bytearray(frames[1][3]) + bytes(range(256)) * 1200  # 307,200 bytes past the headers
        frames[1] = (frames[1][0], len(big), len(big), bytes(big))
        path = self.path("oversize.pcap")
        with open(path, "wb") as f:  # a microsecond pcap whose header claims a 512 KiB snaplen
            f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 524288, 1))
            for ts, cap, wire, d in frames:
                f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9 // 1000, cap, wire) + d)
        self.assertNotEqual(run(["tcpdump", "-r", path], check=False).returncode, 0)  # libpcap refuses it
        j = record(self.store, [path], "--cutoff", "none")
        self.assertEqual(j["packets"], 3)
        self.assertEqual(j["records_cut_to_snaplen"], 1)
        answer = self.path("answer.pcap")
        tm("query", "--store", self.store, "-w", answer, "-q", "ip or ip6")
        got = read_pcap(answer)
        self.assertEqual([(ts, cap, wire) for ts, cap, wire, d in got],
                         [(frames[0][0], frames[0][1], frames[0][2]), (frames[1][0], 262144, len(big)),
                          (frames[2][0], frames[2][1], frames[2][2])])
        self.assertEqual(got[1][3], big[:262144])
        self.assertEqual(len(tcpdump_packets(answer)), 3)  # readable by libpcap
        self.assertEqual(tshark_count(answer), 3)  # and by Wireshark


def big_endian_copy(src, dst):
    """A little-endian pcap as a big-endian host writes it: every header field, and each BSD loopback
    frame's address family (in the writer's byte order, pcap's rule for DLT_NULL), big-endian."""
    with open(src, "rb") as f:
        buf = f.read()
    out, pos = [struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", buf[:24]))], 24
    while pos + 16 <= len(buf):
        s, frac, cap, wire = struct.unpack("<IIII", buf[pos:pos + 16])
        d = buf[pos + 16:pos + 16 + cap]
        out.append(struct.pack(">IIII", s, frac, cap, wire) + struct.pack(">I", *struct.unpack("<I", d[:4])) + d[4:])
        pos += 16 + cap
    with open(dst, "wb") as f:
        f.write(b"".join(out))


class ForeignByteOrder(StoreTest):
    """A BSD loopback (DLT_NULL) frame's address family is in its writer's byte order, the file's. libpcap
    reads a big-endian file's swapped; tm's segments are in this host's order, so the family is stored
    swapped into it, or libpcap (tm's own filters, and tcpdump on an answer) would read another family.
    The same for a file of this host's order holding families of the other (what tcpdump -r -w makes of
    a big-endian capture). The answer must be the little-endian original's frames, byte for byte."""

    FILTERS = ["", "ip6", "ip", "not ip6", "tcp", "udp", "ip6 protochain 17", "ip6[6] == 6", "ip6 and greater 10",
               "ip and greater 10", "host ::1"]

    def test_families_of_the_other_byte_order_are_stored_in_the_stores(self):
        for name in ("quic_handshake.pcap", "connect-with-header.pcap"):
            original = corpus("link", name)
            be = self.path("be-" + name)
            big_endian_copy(original, be)
            copied = self.path("copied-" + name)  # this host's order, the families still big-endian
            run(["tcpdump", "-r", be, "-w", copied])
            self.assertEqual(len(tcpdump_packets(be, "ip6")), len(tcpdump_packets(original, "ip6")))
            self.assertTrue(tcpdump_packets(original, "ip6"))  # (not an empty comparison)
            for kind, path in (("big-endian", be), ("copied", copied)):
                store = self.path("store-%s-%s" % (kind, name))
                j = record(store, [path], "--cutoff", "none")
                self.assertEqual(j["null_family_swapped"], j["packets"], (kind, name))
                for flt in self.FILTERS:
                    with self.subTest(capture=name, kind=kind, filter=flt):
                        answer = self.path("answer.pcap")
                        tm("query", "--store", store, "-w", answer, "-q", flt)
                        self.assertSamePackets(tcpdump_packets(answer), tcpdump_packets(original, flt or None),
                                               "%s %s %r" % (kind, name, flt))
                        if flt:  # tcpdump's filter on the answer: the families as libpcap reads them
                            self.assertEqual(len(tcpdump_packets(answer, flt)), len(tcpdump_packets(answer)))
        j = record(self.path("store-original"), [corpus("link", "quic_handshake.pcap")], "--cutoff", "none")
        self.assertEqual(j["null_family_swapped"], 0)


class TimesOutsidePcap(StoreTest):
    """A pcap record's seconds are 32 bits: a packet stamped from 2106-02-07 06:28:16 UTC on (a pcapng time),
    or before 1970 (a pcapng interface's negative if_tsoffset), cannot be stored with its time. It is not
    recorded, and the summary counts it, rather than stored with a wrapped time that the index contradicts."""

    def test_a_time_past_2106_is_counted_not_stored(self):
        src = corpus("pcapng", "time_2107.pcapng")
        self.assertEqual(run(["tshark", "-r", src, "-T", "fields", "-e", "frame.time_epoch"]).stdout.split(),
                         [b"4323283200.000000000"])  # 2107-01-01
        p = tm("record", "--store", self.store, "--read", src, "--cutoff", "none")
        self.assertIn("not recorded: 1 packets stamped outside", p.stdout.decode())
        j = record(self.path("s2"), [src], "--cutoff", "none")
        self.assertEqual(j["packets_outside_pcap_time"], 1)
        self.assertEqual(j["packets"], 0)

    def test_a_time_before_1970_is_counted_not_stored(self):
        frames = [(ts - ts % 1000, d) for ts, cap, wire, d in read_pcap(corpus("mixed", "wikipedia.pcap"))[:2]]
        offset = -(frames[0][0] // 10**9) - 100  # the first packet 100 s before 1970, the second after it
        frames[1] = (frames[0][0] + 200 * 10**9, frames[1][1])
        opt = struct.pack("<HHq", 14, 8, offset) + struct.pack("<HH", 0, 0)  # if_tsoffset, opt_endofopt
        path = self.path("negative.pcapng")
        with open(path, "wb") as f:
            f.write(shb() + block(1, struct.pack("<HHI", 1, 0, 65535) + opt) +
                    b"".join(epb(0, ts, d) for ts, d in frames))
        times = run(["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch"]).stdout.split()
        self.assertEqual(len(times), 2)
        self.assertTrue(times[0].startswith(b"-"), times)
        j = record(self.store, [path], "--cutoff", "none")
        self.assertEqual(j["packets_outside_pcap_time"], 1)
        self.assertEqual(j["packets"], 1)
        answer = self.path("answer.pcap")
        tm("query", "--store", self.store, "-w", answer, "-q", "")
        got = run(["tshark", "-r", answer, "-T", "fields", "-e", "frame.time_epoch"]).stdout.split()
        self.assertEqual(got, times[1:])


class Pipe(StoreTest):
    """`--read -` on a pipe that stays open: what came is stored within a second, SIGTERM ends tm at once."""

    def test_an_interface_that_does_not_exist_makes_no_store(self):
        # A typo in -i made the store (and printed an empty summary) before the capture failed.
        for cmd in ("record", "serve"):
            p = subprocess.run([TM, cmd, "--store", self.store, "-i", "tm-nosuch0"], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 1, cmd)
            self.assertIn("interface tm-nosuch0: no such interface (ip link lists them)", p.stderr.decode())
            self.assertFalse(os.path.exists(self.store), cmd)

    def test_read_takes_over_the_interfaces_of_the_config(self):
        # A sensor's config (capture.interfaces) used to import a capture: "give either --read or
        # --interface, not both", naming an option not given.
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write('[capture]\ninterfaces = ["tm-nosuch0"]\n')
        s = record(self.store, [corpus("mixed", "wikipedia.pcap")], "--config", cfg)
        self.assertEqual(s["packets"], len(read_pcap(corpus("mixed", "wikipedia.pcap"))))

    def test_stdin_given_twice_is_refused_as_such(self):
        # The second reader started mid-stream and called the capture "not a pcap or pcapng".
        with open(corpus("ipv4", "5-pings.pcap"), "rb") as f:
            p = subprocess.run([TM, "record", "--store", self.store, "-r", "-", "-r", "-"], stdin=f,
                               capture_output=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--read: '-' (stdin) given more than once", p.stderr.decode())
        self.assertFalse(os.path.exists(self.store))

    def test_idle_pipe_packets_stored_and_sigterm_prompt(self):
        src = corpus("mixed", "wikipedia.pcap")
        with open(src, "rb") as f:
            data = f.read()
        frames = read_pcap(src)[:5]
        size = 24 + sum(16 + cap for ts, cap, wire, d in frames)
        r, w = os.pipe()
        err = open(self.path("stderr"), "w+b")
        proc = subprocess.Popen([TM, "record", "--store", self.store, "--read", "-", "--json", "--cutoff", "none"],
                                stdin=r, stdout=subprocess.PIPE, stderr=err)
        os.close(r)
        try:
            os.write(w, data[:size])  # five packets, and the pipe stays open
            deadline, got = time.time() + 1.0, 0
            while time.time() < deadline and got < 5:
                time.sleep(0.05)
                q = tm("query", "--store", self.store, "-w", self.path("a.pcap"), "-q", "ip or not ip", check=False)
                if q.returncode == 0 and os.path.exists(self.path("a.pcap")):
                    got = len(read_pcap(self.path("a.pcap")))
            self.assertEqual(got, 5, "the store shows the packets within a second")
            t0 = time.time()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            self.assertLess(time.time() - t0, 2.0, "SIGTERM ends tm promptly")
            err.seek(0)
            self.assertEqual(proc.returncode, 143, err.read().decode())
            self.assertEqual(json.loads(out)["classes"]["default"]["stored_packets"], 5)
            stored = [x for seg in store_segments(self.store) for x in read_pcap(seg)]
            self.assertEqual([(ts, d) for ts, c, wl, d in stored], [(ts, d) for ts, c, wl, d in frames])
        finally:
            os.close(w)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()


class CommandLine(StoreTest):
    """Numbers and ports out of range are refused naming the option; port 0 says which port was bound."""

    def test_numbers_out_of_range_name_the_option(self):
        tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"))
        cases = [
            (["query", "--store", self.store, "--from", "99999999999999999999", "-w", "/dev/null"],
             "--from: bad time '99999999999999999999': out of range: times run from 1970-01-01T00:00:00Z to 2554-07-21"),
            (["query", "--store", self.store, "--flow", "99999999999999999999999", "-w", "/dev/null"],
             "--flow: 99999999999999999999999 is out of range"),
            (["flows", "--store", self.store, "--top", "-5"], "--top: '-5' is not a whole number"),
            (["serve", "--store", self.store, "--listen", "127.0.0.1:99999"],
             "--listen: bad port '99999' in 127.0.0.1:99999: expected 0 to 65535"),
            (["serve", "--store", self.store, "--max-queries", "99999999999"], "--max-queries: 99999999999 is out of range"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                p = tm(*args, check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(want, p.stderr.decode())

    def test_port_0_prints_the_port_bound(self):
        import urllib.request
        tm("record", "--store", self.store, "--read", corpus("mixed", "wikipedia.pcap"))
        err = open(self.path("serve.err"), "w+b")
        proc = subprocess.Popen([TM, "serve", "--store", self.store, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline, port = time.time() + 10, None
            while time.time() < deadline and port is None:
                time.sleep(0.05)
                err.seek(0)
                m = re.search(rb"read-only on 127\.0\.0\.1:(\d+)", err.read())
                port = int(m.group(1)) if m else None
            self.assertIsNotNone(port, "tm serve says where it listens")
            self.assertNotEqual(port, 0)
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5) as r:
                self.assertEqual(json.loads(r.read())["status"], "ok")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            err.close()


if __name__ == "__main__":
    unittest.main()
