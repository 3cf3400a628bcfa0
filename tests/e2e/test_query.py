"""tm query end to end: answers equal tcpdump's on the original capture, byte for byte and in
order — with one deliberate difference: a later IP fragment is judged as its datagram (as its
first fragment), so `port 7001` also returns the later fragments of port-7001 datagrams
(docs/USAGE.md "Fragments"). The oracle computes that from tcpdump's answer and the fragment headers
read here, not from tm."""
import glob
import os
import pwd
import re
import shutil
import struct
import subprocess

from tmtest import TM, StoreTest, corpus, read_pcap, record, store_segments, tcpdump_packets, tm

FILES = ["var-services-std-ports.pcap", "bro.org.pcap", "1000-requests-one-dropped-response.pcap",
         "chromium-115.0.5790.110-google-de-fragmented.pcap", "afs.pcap", "wikipedia.pcap", "smb3_multichannel.pcap"]

# Filters the parser plans (answered through the indexes); the others are BPF scans.
# `ip broadcast`: compiled as tcpdump -r compiles it, with netmask 0 (it was refused: "netmask not known").
BPF_FILTERS = {"tcp[13] & 2 != 0", "greater 1000", "ether broadcast", "ip broadcast or ip multicast"}

FILTERS = [
    "ip broadcast or ip multicast",
    "host 172.16.238.131",
    "src host 172.16.238.1",
    "dst host 172.16.238.131",
    "host 172.16.238.1 and host 172.16.238.131",
    "net 172.16.238.0/24",
    "net 74.125.0.0/16 or net 141.142.0.0/16",
    "port 22",
    "src port 53",
    "dst port 80",
    "portrange 20-23",
    "tcp",
    "udp",
    "icmp",
    "ip6",
    "ip",
    "arp",
    "tcp and port 80",
    "udp and port 5353",
    "not port 22",
    "not tcp and not udp",
    "host 172.16.238.131 and not port 53",
    "(port 21 or port 22) and host 172.16.238.1",
    "port 80 or port 443 and host 10.0.2.15",
    "host ::1",
    "ip6 and tcp and port 80",
    "net 6699::/16",
    "host 6699:ded3:da8c:be73:5a99:ca73:5a99:cadb and src port 443",
    "udp port 53 or arp",
    "! icmp && (tcp || udp)",
    "tcp dst port 80 and src host 10.0.2.15",
    "proto 17",
    "ip proto 6",
    "host 131.151.32.21 and port 1799",
    "sctp",
    "vlan 100",
    "ip6 host ff02::fb",
    "host 208.80.152.3 and tcp port 80 and not src host 141.142.220.118",
    "udp portrange 5000-6000",
    "not (host 172.16.238.131 or host 172.16.238.1)",
    "icmp6",
    "host 172.16.238.1 or 172.16.238.2",
    "src net 192.150.187.0/24 and dst port 55080",
    # afs.pcap has 200 later IPv4 fragments of UDP 7000 <-> 7001 datagrams:
    # tcpdump -nr mixed/afs.pcap 'ip[6:2] & 0x1fff != 0' | wc -l -> 200
    "port 7001",
    "udp src port 7000 and host 131.151.32.21",
    "not port 7001",
    "portrange 7000-7001 and not src host 131.151.1.146",
    # Not indexed: answered by a BPF scan, same answer.
    "tcp[13] & 2 != 0",
    "greater 1000",
    "ether broadcast",
]


def fragment_of(frame):
    """((src, dst, proto, id), offset) of an Ethernet frame carrying a fragment of an IPv4 or
    IPv6 datagram (more-fragments set or offset > 0), else None."""
    off, et = 14, struct.unpack(">H", frame[12:14])[0]
    while et in (0x8100, 0x88a8) and len(frame) >= off + 4:
        et = struct.unpack(">H", frame[off + 2:off + 4])[0]
        off += 4
    if et == 0x0800 and len(frame) >= off + 20:
        ident, fl = struct.unpack(">HH", frame[off + 4:off + 8])
        if (fl & 0x3fff) == 0:
            return None
        return (frame[off + 12:off + 16], frame[off + 16:off + 20], frame[off + 9], ident), fl & 0x1fff
    if et == 0x86dd and len(frame) >= off + 40:
        src, dst, nh, p = frame[off + 8:off + 24], frame[off + 24:off + 40], frame[off + 6], off + 40
        while nh in (0, 43, 60) and len(frame) >= p + 2:  # hop-by-hop, routing, destination options
            nh, p = frame[p], p + (frame[p + 1] + 1) * 8
        if nh == 44 and len(frame) >= p + 8:
            fo, ident = struct.unpack(">HI", frame[p + 2:p + 8])
            if (fo & 0xfff9) == 0:  # atomic fragment
                return None
            return (src, dst, frame[p], ident), fo >> 3
    return None


def positions(all_pkts, selected):
    """The positions of `selected` (a subsequence of `all_pkts`, both tcpdump texts) in `all_pkts`."""
    out, i = set(), 0
    for text in selected:
        while all_pkts[i] != text:
            i += 1
        out.add(i)
        i += 1
    return out


class FragmentOracle:
    """tcpdump's answer, except that a later fragment takes the verdict of its datagram's
    first fragment (the nearest one before it within 30 s, else the nearest after it);
    a later fragment whose first is not in the capture keeps tcpdump's verdict."""

    def __init__(self, path):
        self.path = path
        frames = read_pcap(path)
        firsts, later = {}, []
        for i, (ts, _, _, data) in enumerate(frames):
            f = fragment_of(data)
            if f:
                (firsts.setdefault(f[0], []).append((ts, i)) if f[1] == 0 else later.append((i, ts, f[0])))
        self.first_of = {}
        for i, ts, key in later:
            near = [(j > i, abs(t - ts), j) for t, j in firsts.get(key, []) if abs(t - ts) <= 30 * 10**9]
            if near:
                self.first_of[i] = min(near)[2]
        self.all = tcpdump_packets(path) if self.first_of else None

    def answer(self, flt):
        if not self.first_of:
            return tcpdump_packets(self.path, flt)
        hits = positions(self.all, tcpdump_packets(self.path, flt))
        for i, j in self.first_of.items():
            hits.discard(i)
            if j in hits:
                hits.add(i)
        return [self.all[i] for i in sorted(hits)]


class QueryOracle(StoreTest):
    def test_filters_equal_tcpdump_cutoff_none(self):
        stores = {}
        for name in FILES:
            store = self.path("s-" + name)
            record(store, [corpus("mixed", name)], "--cutoff", "none", "--segment-size", "64k")
            stores[name] = store
        nonempty = 0
        for name in FILES:
            src = corpus("mixed", name)
            oracle = FragmentOracle(src)
            for flt in FILTERS:
                with self.subTest(file=name, filter=flt):
                    # BPF scans keep tcpdump's semantics (BPF knows nothing of fragments).
                    want = tcpdump_packets(src, flt) if flt in BPF_FILTERS else oracle.answer(flt)
                    got = self.query_packets(stores[name], flt)
                    self.assertSamePackets(got, want)
                    nonempty += bool(want)
        self.assertGreater(nonempty, 80, "the filters must select something on most files")

    def test_filters_with_cutoff_equal_tcpdump_on_the_store(self):
        name = "var-services-std-ports.pcap"
        store = self.path("s")
        record(self.store if False else store, [corpus("mixed", name)], "--cutoff", "2k", "--segment-size", "16k")
        segs = store_segments(store)
        self.assertGreater(len(segs), 1)
        for flt in FILTERS[:30]:
            with self.subTest(filter=flt):
                want = []
                for seg in segs:
                    want += tcpdump_packets(seg, flt)
                self.assertSamePackets(self.query_packets(store, flt), want)

    def test_explain_names_indexes_and_fallback(self):
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none", "--segment-size", "64k")
        p = tm("query", "--store", self.store, "--explain", "host 10.0.2.15 and not port 22")
        out = p.stdout.decode()
        self.assertIn("address index", out)
        self.assertIn("port index", out)
        self.assertIn("candidates read", out)
        p = tm("query", "--store", self.store, "--explain", "tcp[13] & 2 != 0")
        self.assertIn("scan with libpcap BPF", p.stdout.decode())

    def test_index_prunes_segments(self):
        # A host present in one connection only: most segments have no candidate and no packet is read in vain.
        record(self.store, [corpus("mixed", "bro.org.pcap")], "--cutoff", "none", "--segment-size", "32k")
        p = tm("query", "--store", self.store, "--explain", "port 55085")
        out = p.stdout.decode()
        want = len(tcpdump_packets(corpus("mixed", "bro.org.pcap"), "port 55085"))
        self.assertIn("candidates read: %d, matched: %d" % (want, want), out)


class TimeRanges(StoreTest):
    def setUp(self):
        super().setUp()
        self.src = corpus("mixed", "bro.org.pcap")
        record(self.store, [self.src], "--cutoff", "none", "--segment-size", "64k")
        self.frames = read_pcap(self.src)

    def answer(self, *args):
        out = self.path("a.pcap")
        tm("query", "--store", self.store, "-w", out, "-q", *args)
        return [ts for ts, _, _, _ in read_pcap(out)]

    def test_from_inclusive_to_exclusive(self):
        t1, t2 = self.frames[100][0], self.frames[400][0]
        got = self.answer("--from", "%d.%09d" % divmod(t1, 10**9), "--to", "%d.%09d" % divmod(t2, 10**9), "")
        want = [ts for ts, _, _, _ in self.frames if t1 <= ts < t2]
        self.assertEqual(got, want)
        self.assertEqual(got[0], t1)
        self.assertNotIn(t2, got)

    def test_iso_and_relative(self):
        import datetime
        t1 = self.frames[200][0]
        iso = datetime.datetime.fromtimestamp(t1 // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        iso += ".%09dZ" % (t1 % 10**9)
        got = self.answer("--from", iso, "tcp")
        want = [ts for ts, _, _, data in self.frames if ts >= t1 and data[23] == 6]
        self.assertEqual(got, want)
        self.assertEqual(len(self.answer("--from", "100000d ago", "")), len(self.frames))
        self.assertEqual(self.answer("--from", "1h ago", ""), [])  # the capture is years old

    def test_range_without_data_is_an_empty_pcap(self):
        out = self.path("empty.pcap")
        tm("query", "--store", self.store, "-w", out, "--from", "2001-01-01T00:00:00Z", "--to", "2001-01-02", "")
        self.assertEqual(tcpdump_packets(out), [])


class DeletedBefore(StoreTest):
    def test_a_time_range_before_what_the_budget_kept_says_so(self):
        # An empty answer for a time whose segments the budget deleted read as "no traffic then".
        src = corpus("mixed", "echo-connections.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k", "--disk-budget", "256k")
        ts = sorted(r[0] for r in read_pcap(src))
        kept = sorted(r[0] for seg in store_segments(self.store) for r in read_pcap(seg))
        self.assertGreater(kept[0], ts[0], "the budget deleted the first segments")
        at = lambda ns: "%d.%09d" % (ns // 10**9, ns % 10**9)
        p = tm("query", "--store", self.store, "--count", "--from", at(ts[0]), "--to", at(kept[0]), "")
        self.assertEqual(p.stdout.strip(), b"0")
        self.assertIn("warning: class default holds no packet before ", p.stderr.decode())
        self.assertIn("of its segments are gone (deleted by the disk budget or max_age, or lost)", p.stderr.decode())
        # From the oldest packet kept on, or with no time asked, nothing to say.
        for args in (("--from", at(kept[0])), ()):
            self.assertNotIn("warning", tm("query", "--store", self.store, "--count", *args, "").stderr.decode())
        # A store that deleted nothing says nothing either.
        other = self.path("whole")
        record(other, [src], "--cutoff", "none", "--segment-size", "64k")
        p = tm("query", "--store", other, "--count", "--from", at(ts[0] - 10**9), "")
        self.assertNotIn("warning", p.stderr.decode())


class StackedVlanTags(StoreTest):
    def test_vlan_and_vlan_is_said_to_be_every_tagged_frame(self):
        # tcpdump's `vlan and vlan` asks for double-tagged frames; tm's `vlan` is a tag at any depth, so it
        # answered every tagged frame without a word (encapsulation tester).
        record(self.store, [corpus("link", "q-in-q.pcap")], "--cutoff", "none")
        note = "the filter repeats 'vlan' in a conjunction"
        for f in ("vlan and vlan", "vlan and vlan 10", "(vlan 10 and tcp) and vlan 10"):
            self.assertIn(note, tm("query", "--store", self.store, "--count", f).stderr.decode(), f)
        for f in ("vlan", "vlan 10 and vlan 13", "vlan and greater 0 and vlan", "vlan or vlan"):
            self.assertNotIn(note, tm("query", "--store", self.store, "--count", f).stderr.decode(), f)


class UndecodedLinkTypes(StoreTest):
    def test_a_link_type_tm_does_not_decode_is_answered_by_libpcap(self):
        # PFLOG (117): tm decodes nothing of it, so its index held no key, and `host A` found none of the
        # packets tcpdump finds, without a word (exploratory tester). libpcap now answers every filter
        # there; a filter of tm's own terms, which libpcap does not know, matches none and says so.
        from tmtest import write_pcap

        def ip(proto, a, b, l4):
            return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, bytes(a), bytes(b)) + l4
        pflog = b"\x3d\x02" + b"\0" * 62  # its header's length (61, padded to 64) and family
        frames = []
        for i, (proto, a, b, sp, dp) in enumerate([(17, (10, 0, 0, 1), (10, 0, 0, 2), 1000, 53),
                                                   (6, (10, 0, 0, 3), (10, 0, 0, 4), 2000, 80),
                                                   (17, (10, 0, 0, 5), (10, 0, 0, 1), 53, 1000)]):
            l4 = struct.pack("!HHHH", sp, dp, 12, 0) + b"abcd" if proto == 17 else \
                struct.pack("!HHIIBBHHH", sp, dp, 1, 0, 0x50, 0x02, 1024, 0, 0)
            f = pflog + ip(proto, a, b, l4)
            frames.append((10**18 + i * 10**6, len(f), len(f), f))
        path = self.path("pflog.pcap")
        write_pcap(path, frames, linktype=117)
        s = record(self.store, [path], "--cutoff", "none")
        self.assertEqual(s["packets"], 3)
        for flt in ("host 10.0.0.1", "ip", "udp port 53", "not udp", "tcp", "net 10.0.0.4/31", "host 10.0.0.9"):
            out = self.path("a.pcap")
            tm("query", "--store", self.store, "-w", out, "-q", flt)
            self.assertEqual(tcpdump_packets(out), tcpdump_packets(path, flt), flt)
        p = tm("query", "--store", self.store, "--count", "vxlan")
        self.assertEqual(int(p.stdout), 0)
        self.assertIn("link type 117, which tm does not decode", p.stderr.decode())


class Errors(StoreTest):
    def test_an_answer_is_not_written_into_the_store(self):
        # -w onto a segment of the store asked truncated it while it was read: its packets lost,
        # the answer's duplicated, and the next tm record indexed the damage as sound.
        record(self.store, [corpus("mixed", "wikipedia.pcap")], "--cutoff", "none")
        want = tm("query", "--store", self.store, "--count", "").stdout
        seg = store_segments(self.store)[0]
        with open(seg, "rb") as f:
            before = f.read()
        for out in (seg, os.path.join(self.store, "answer.pcap"), os.path.relpath(seg)):
            p = tm("query", "--store", self.store, "-w", out, "tcp", check=False)
            self.assertEqual(p.returncode, 1, out)
            self.assertIn("that is inside the store", p.stderr.decode())
        with open(seg, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertFalse(os.path.exists(os.path.join(self.store, "answer.pcap")))
        self.assertEqual(tm("query", "--store", self.store, "--count", "").stdout, want)

    def test_output_that_did_not_reach_standard_output_is_an_error(self):
        # `tm flows > conn.log` on a full disk left a truncated file, exit 0 and no word; so did a
        # closed standard output. As coreutils: say so, exit status 1.
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        for args in (["flows", "--format", "zeek"], ["stats", "--json"], ["query", "--count", "tcp"]):
            with open("/dev/full", "wb") as full:
                p = subprocess.run([TM, args[0], "--store", self.store, *args[1:]], stdout=full,
                                   stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn("tm %s: write to standard output failed" % args[0], p.stderr.decode())
            p = subprocess.run([TM, args[0], "--store", self.store, *args[1:]], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, args)
        # A closed standard output: no file tm opens takes its place.
        p = subprocess.run("exec %s flows --store %s >&-" % (TM, self.store), shell=True, stderr=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("tm flows: write to standard output failed", p.stderr.decode())

    def test_a_segment_there_but_unreadable_ends_the_answer(self):
        # A segment the user may not read (or one out of file descriptors) was warned of and
        # passed: an empty or short answer, exit status 0, as if the store held nothing more.
        # Unreadable is an error (tcpdump -r of a file it may not read exits 1); a segment
        # deleted since it was listed (evicted) stays a warning.
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv")
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        os.chmod(self.tmp, 0o711)
        for d in (self.store, os.path.join(self.store, "default"), os.path.join(self.store, "flows")):
            os.chmod(d, 0o755)
        for f in glob.glob(os.path.join(self.store, "default", "*.pcap")) + \
                glob.glob(os.path.join(self.store, "flows", "*.flows")):
            os.chmod(f, 0o600)
        nobody = ["setpriv", "--reuid", "nobody", "--regid", str(pwd.getpwnam("nobody").pw_gid), "--clear-groups", TM]
        if subprocess.run(nobody + ["--version"], capture_output=True).returncode != 0:
            self.skipTest("user nobody cannot run %s" % TM)
        for args, what in ((["query", "--count", "tcp"], ".pcap"), (["flows"], ".flows")):
            p = subprocess.run(nobody + [args[0], "--store", self.store, *args[1:]], capture_output=True, timeout=60)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 1, err)
            self.assertRegex(err, r"%s: cannot open \(Permission denied\): the answer would lack what it "
                                  r"holds" % re.escape(what), args)
        # As its owner, the whole answer.
        self.assertEqual(tm("query", "--store", self.store, "--count", "tcp").returncode, 0)

    def test_bad_syntax_points_at_token(self):
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        p = tm("query", "--store", self.store, "--count", "host 10.0.0.1 and and port 80", check=False)
        self.assertEqual(p.returncode, 2)
        err = p.stderr.decode()
        self.assertIn("and", err)
        self.assertIn("^", err)

    def test_a_filter_libpcap_refuses_is_a_usage_error_naming_it(self):
        # What tm's parser hands to libpcap whole has no caret to show: libpcap's error, with the filter,
        # exit status 2 as for a syntax error tm finds (before: exit 1, the filter not named).
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        for flt in ("ip[0] =", "len >", "(tcp[13] & 2 != 0"):
            for how in (("--count",), ("--explain",), ("-w", self.path("x.pcap"))):
                with self.subTest(filter=flt, how=how):
                    p = tm("query", "--store", self.store, *how, flt, check=False)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(b"libpcap, compiling '%s'" % flt.encode(), p.stderr)

    def test_a_time_given_empty_is_refused(self):
        # A script's unset variable: not taken for "no bound" (tm flows alike).
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        for cmd, opt in (("query", "--from"), ("query", "--to"), ("flows", "--from"), ("flows", "--to")):
            with self.subTest(cmd=cmd, opt=opt):
                p = tm(cmd, "--store", self.store, *(["--count"] if cmd == "query" else []), opt, "", check=False)
                self.assertEqual(p.returncode, 105, p.stderr)
                self.assertIn(b"%s: given empty" % opt.encode(), p.stderr)
                self.assertEqual(p.stdout, b"")

    def test_a_recording_option_given_empty_is_refused(self):
        # --cutoff '' recorded with the default cutoff (the config file refuses an empty value).
        for opt in ("--config", "--store", "--cutoff", "--segment-size", "--disk-budget", "--ram-budget",
                    "--when-ring-full", "--cluster-key"):
            with self.subTest(opt=opt):
                args = [] if opt == "--store" else ["--store", self.store]
                p = tm("record", *args, "-r", corpus("mixed", "wikipedia.pcap"), opt, "", check=False)
                self.assertEqual(p.returncode, 105, p.stderr)
                self.assertIn(b"%s: given empty" % opt.encode(), p.stderr)
                self.assertFalse(os.path.exists(self.store))

    def test_unknown_keyword(self):
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        p = tm("query", "--store", self.store, "--count", "hots 10.0.0.1", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("hots", p.stderr.decode())

    def test_missing_store(self):
        p = tm("query", "--store", self.path("nothing"), "--count", "tcp", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not exist", p.stderr.decode())

    def test_not_a_store(self):
        os.makedirs(self.path("plain"))
        p = tm("query", "--store", self.path("plain"), "--count", "tcp", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a tm store", p.stderr.decode())

    def test_empty_store(self):
        record(self.store, [corpus("malformed", "empty.pcap")])
        p = tm("query", "--store", self.store, "--count", "tcp")
        self.assertEqual(p.stdout.decode().strip(), "0")

    def test_bad_time(self):
        record(self.store, [corpus("mixed", "wikipedia.pcap")])
        p = tm("query", "--store", self.store, "--count", "--from", "yesterday-ish", "tcp", check=False)
        self.assertEqual(p.returncode, 2)  # a refused request, as through a server (its 400)
        self.assertIn("yesterday-ish", p.stderr.decode())

    def test_damaged_sidecar_is_scanned_not_trusted(self):
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k")
        idx = sorted(f for f in os.listdir(os.path.join(self.store, "default")) if f.endswith(".idx"))
        # Flip a bit in one sidecar's body and truncate another.
        p1 = os.path.join(self.store, "default", idx[0])
        with open(p1, "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 0x10]))
        p2 = os.path.join(self.store, "default", idx[1])
        os.truncate(p2, 100)
        out = self.path("a.pcap")
        p = tm("query", "--store", self.store, "-w", out, "host 10.0.2.15")
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(src, "host 10.0.2.15"))
        self.assertIn("warning", p.stderr.decode() + p.stdout.decode())

    def test_pcap_grown_after_its_sidecar_is_scanned(self):
        # The sidecar describes fewer bytes than the pcap now holds (bytes appended after
        # sealing): the index is not trusted for that segment, which is scanned (complete
        # records only) and reported.
        src = corpus("mixed", "bro.org.pcap")
        record(self.store, [src], "--cutoff", "none", "--segment-size", "64k")
        pcaps = sorted(f for f in os.listdir(os.path.join(self.store, "default")) if f.endswith(".pcap"))
        with open(os.path.join(self.store, "default", pcaps[0]), "ab") as f:
            f.write(b"\0" * 10)
        out = self.path("a.pcap")
        p = tm("query", "--store", self.store, "-w", out, "host 10.0.2.15")
        self.assertSamePackets(tcpdump_packets(out), tcpdump_packets(src, "host 10.0.2.15"))
        err = p.stderr.decode()
        self.assertIn("warning", err)
        self.assertIn("1 read whole", err)


if __name__ == "__main__":
    import unittest
    unittest.main()
