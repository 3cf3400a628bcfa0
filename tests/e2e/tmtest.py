"""Shared helpers of the end-to-end tests: run the real tm binary on ../shared/corpus and
compare its answers with tcpdump's."""
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest
import uuid

TM = os.environ.get("TM_BIN", os.path.join(os.path.dirname(__file__), "../../build/tm"))
CORPUS = os.environ.get("TM_CORPUS", os.path.join(os.path.dirname(__file__), "../../../shared/corpus"))
SOURCE = os.environ.get("TM_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))


# What tm serve and tm frontend print once their socket is bound ("... read-only on HOST:PORT",
# "... API on HOST:PORT"): the port the system chose for --listen HOST:0.
LISTENING = re.compile(rb"(?:read-only on|API on) (?:\[[^\]]*\]|[^\s:]+):(\d+)")


def listening_port(proc, errfile, what, wait=60):
    """The port a tm serve / tm frontend started with --listen HOST:0 bound, read from its stderr (an open
    file); fails naming `what` if it exits first or says nothing within `wait` s. No other process can take
    the port between its choice and the bind (as one could with a port found free beforehand)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        errfile.seek(0)
        text = errfile.read()
        m = LISTENING.search(text)
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise AssertionError("%s exited (%d) before listening: %s" % (what, proc.returncode,
                                                                          text.decode(errors="replace")))
        time.sleep(0.02)
    raise AssertionError("%s did not say where it listens within %d s" % (what, wait))


def corpus(*parts):
    return os.path.join(CORPUS, *parts)


def corpus_files(folder=None):
    pat = os.path.join(CORPUS, folder or "*", "*.pcap*")
    return sorted(glob.glob(pat))


def run(args, check=True, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstderr:\n%s" % (p.returncode, " ".join(args),
                                                                      p.stderr.decode(errors="replace")))
    return p


def tm(*args, check=True):
    return run([TM] + [str(a) for a in args], check=check)


def record(store, files, *extra, check=True):
    args = ["record", "--store", store, "--json"]
    for f in files:
        args += ["--read", f]
    p = tm(*(args + list(extra)), check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def tcpdump_packets(path, flt=None):
    """Per packet: the timestamp line and the hex dump (link header included), as tcpdump prints them."""
    args = ["tcpdump", "-tt", "-nn", "-S", "-q", "-xx", "-r", path]  # -S -q: no per-flow state in the text
    if flt:
        args.append(flt)
    p = run(args, check=False)
    if p.returncode != 0:
        raise AssertionError("tcpdump failed on %s %r: %s" % (path, flt, p.stderr.decode(errors="replace")))
    pkts, cur = [], None
    for line in p.stdout.decode(errors="replace").splitlines():
        if line.startswith("\t"):
            cur.append(line.strip())
        else:
            cur = [line]
            pkts.append(cur)
    return ["\n".join(x) for x in pkts]


def store_segments(store, cls="default"):
    """The store's pcap segments of a class, in sequence order."""
    return sorted(glob.glob(os.path.join(store, cls, "*.pcap")))


def read_pcap(path):
    """Yields (ts_ns, caplen, wirelen, data) from a classic pcap file; also returns link type via .linktype."""
    with open(path, "rb") as f:
        buf = f.read()
    magic = struct.unpack("<I", buf[:4])[0]
    if magic in (0xa1b2c3d4, 0xa1b23c4d):
        e = "<"
    else:
        e = ">"
        magic = struct.unpack(">I", buf[:4])[0]
    nsec = magic == 0xa1b23c4d
    pos, out = 24, []
    while pos + 16 <= len(buf):
        s, frac, cap, wire = struct.unpack(e + "IIII", buf[pos:pos + 16])
        if pos + 16 + cap > len(buf):
            break
        out.append((s * 10**9 + (frac if nsec else frac * 1000), cap, wire, buf[pos + 16:pos + 16 + cap]))
        pos += 16 + cap
    return out


def write_pcap(path, frames, linktype=1):
    """Writes (ts_ns, caplen, wirelen, data) records as a nanosecond pcap (e.g. half of a capture)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 262144, linktype))
        for ts, cap, wire, data in frames:
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, cap, wire))
            f.write(data)


def conn_of(frame):
    """(key, is_tcp_control_without_payload) of an Ethernet frame carrying IPv4/IPv6 TCP/UDP, else None.
    The key is direction-free, as tm's connection table."""
    off, et = 14, struct.unpack(">H", frame[12:14])[0]
    while et in (0x8100, 0x88a8) and len(frame) >= off + 4:
        et = struct.unpack(">H", frame[off + 2:off + 4])[0]
        off += 4
    if et == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0xf) * 4
        proto = frame[off + 9]
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        total = struct.unpack(">H", frame[off + 2:off + 4])[0]
        frag = struct.unpack(">H", frame[off + 6:off + 8])[0] & 0x1fff  # offset: only the first fragment has ports
        l4 = off + ihl
        plen = total - ihl
    elif et == 0x86dd and len(frame) >= off + 40:
        proto = frame[off + 6]
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        plen = struct.unpack(">H", frame[off + 4:off + 6])[0]
        frag = 0
        l4 = off + 40
    else:
        return None
    sp = dp = 0
    control = False
    if proto in (6, 17) and not frag and len(frame) >= l4 + 4:
        sp, dp = struct.unpack(">HH", frame[l4:l4 + 4])
        if proto == 6 and len(frame) >= l4 + 14:
            doff = (frame[l4 + 12] >> 4) * 4
            flags = frame[l4 + 13]
            control = bool(flags & 0x07) and plen - doff == 0
    a, b = (src, sp), (dst, dp)
    key = (proto,) + (min(a, b), max(a, b))
    return key, control


# A config that keeps every connection open for the length of a test (no inactivity expiry).
LONG_TIMEOUTS = """
[connections]
tcp_timeout = "1d"
tcp_closed_timeout = "1d"
udp_timeout = "1d"
other_timeout = "1d"
"""


def veth_namespace(test, tag, send, capture, tools=("ip", "tcpreplay", "tcpdump")):
    """For a live-capture test: skips it without root or `tools`; otherwise creates a network namespace
    (deleted at the test's cleanup) holding a veth pair `send` - `capture`, both up with lo, and no IPv6
    (router solicitations, DAD) nor IPv4 address (ARP, IGMP): the capture end sees only what is sent on
    `send`. Returns (namespace, ifindex of `capture`). Call it before creating anything else to clean."""
    if os.geteuid() != 0:
        test.skipTest("live capture needs root (network namespace, veth, packet socket)")
    for tool in tools:
        if not shutil.which(tool):
            test.skipTest("%s is not installed" % tool)
    ns = "%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex[:8])
    p = subprocess.run(["ip", "netns", "add", ns], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        test.skipTest("cannot create a network namespace (ip netns add): %s" % p.stderr.decode(errors="replace").strip())
    test.addCleanup(subprocess.run, ["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ns_run = ["ip", "netns", "exec", ns]
    # Best effort: without IPv6 in the kernel there is nothing to switch off.
    run(ns_run + ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
        check=False)
    run(ns_run + ["ip", "link", "add", send, "type", "veth", "peer", "name", capture])
    run(ns_run + ["sysctl", "-q", "-w"] + ["net.ipv6.conf.%s.disable_ipv6=1" % i for i in (send, capture)], check=False)
    for ifc in ("lo", send, capture):
        run(ns_run + ["ip", "link", "set", ifc, "up"])
    out = run(ns_run + ["ip", "-o", "link", "show", capture]).stdout.decode()
    return ns, int(out.split(":", 1)[0])


def capturing(pid, ifindex):
    """True once process `pid` has a packet socket bound to interface `ifindex`, running, with its ring
    mapped: from then on the kernel keeps every packet for it, however late its loop starts reading."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            mapped = set(re.findall(r"socket:\[(\d+)\]", f.read()))
        with open("/proc/%d/net/packet" % pid) as f:  # the namespace of the process
            rows = [line.split() for line in f.read().splitlines()[1:]]
    except OSError:
        return False
    # sk RefCnt Type Proto Iface R Rmem User Inode
    return any(len(r) >= 9 and r[8] in mapped and int(r[4]) == ifindex and r[5] == "1" for r in rows)


class NetnsTest:
    """For a test capturing in a namespace of its own: call self.netns(tag) first (veth_namespace: skips
    without root or tools), then spawn the programs inside it, wait until they capture, replay into it."""
    send, capture = "tmsend", "tmcap"  # the veth pair, both ends inside the namespace
    wait = 60  # seconds: the most any step may take on a loaded machine

    def netns(self, tag):
        self.ns, self.ifindex = veth_namespace(self, tag, self.send, self.capture)

    def ns_run(self, *args, check=True):
        return run(["ip", "netns", "exec", self.ns] + list(args), check=check)

    def spawn(self, name, args):
        """Starts `args` in the namespace with stdout and stderr in files; killed at cleanup."""
        out, err = open(self.path(name + ".out"), "w+b"), open(self.path(name + ".err"), "w+b")
        self.addCleanup(err.close)
        self.addCleanup(out.close)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns] + args, stdout=out, stderr=err)
        p.out, p.err = out, err

        def kill():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.addCleanup(kill)
        return p

    def wait_capturing(self, p, what):
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if p.poll() is not None:
                p.err.seek(0)
                self.fail("%s exited (%d) while starting:\n%s" % (what, p.returncode, p.err.read().decode()))
            if capturing(p.pid, self.ifindex):
                return
            time.sleep(0.05)
        self.fail("%s did not start capturing on %s within %d s" % (what, self.capture, self.wait))

    def wait_size(self, paths, nbytes, what):
        deadline = time.monotonic() + self.wait
        have = 0
        while time.monotonic() < deadline:
            have = sum(os.path.getsize(p) for p in paths() if os.path.exists(p))
            if have >= nbytes:
                return
            time.sleep(0.05)
        self.fail("%s: %d of %d bytes written %d s after the replay" % (what, have, nbytes, self.wait))

    def stop(self, p, what):
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(timeout=self.wait)
        except subprocess.TimeoutExpired:
            self.fail("%s still running %d s after SIGINT" % (what, self.wait))
        p.err.seek(0)
        self.assertEqual(rc, 0, "%s exit code:\n%s" % (what, p.err.read().decode(errors="replace")))
        p.out.seek(0)
        return p.out.read().decode()

    def replay(self, files):
        """tcpreplay of `files` on the sending end, checked to have sent every packet."""
        # A modest rate: at top speed the kernel's per-CPU backlog may drop packets between the veth ends.
        p = self.ns_run("tcpreplay", "-i", self.send, "--mbps", "50", *files)
        text = p.stdout.decode(errors="replace")
        want = sum(len(read_pcap(f)) for f in files)
        m = re.search(r"Successful packets:\s+(\d+)", text)
        self.assertTrue(m and int(m.group(1)) == want, "tcpreplay did not send all %d packets:\n%s" % (want, text))


class TmProcess:
    """For a test driving one tm process: self.proc (Popen), its stderr in the file self.err."""
    proc_name = "tm"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def alive(self, what):
        if self.proc.poll() is not None:
            self.fail("%s exited (%d) while %s:\n%s" % (self.proc_name, self.proc.returncode, what, self.stderr()))


class StoreTest(unittest.TestCase):
    """A test with a fresh temporary directory, removed afterwards."""

    def assertSamePackets(self, got, want, what=""):
        """Equal lists, reported by the first difference (a full diff of thousands of packets takes minutes)."""
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                self.fail("%s: packet %d differs:\n got: %s\nwant: %s" % (what, i, str(g)[:600], str(w)[:600]))
        if len(got) != len(want):
            self.fail("%s: %d packets, want %d; first extra: %s" % (
                what, len(got), len(want), str((got if len(got) > len(want) else want)[min(len(got), len(want))])[:600]))

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tm-e2e-")
        self.store = os.path.join(self.tmp, "store")
        self.procs = []  # what spawn_process started: killed at tearDown if still running

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn_process(self, argv, name):
        """Starts argv with its stderr in NAME.err (open as p.errfile), stdout discarded."""
        err = open(self.path(name + ".err"), "w+b")
        self.addCleanup(err.close)
        p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=err)
        p.errfile = err
        self.procs.append(p)
        return p

    def path(self, name):
        return os.path.join(self.tmp, name)

    def query_packets(self, store, flt, *extra):
        """tm query's answer on a store, as tcpdump_packets() prints it."""
        out = self.path("answer.pcap")
        tm("query", "--store", store, "-w", out, "-q", *extra, flt)
        return tcpdump_packets(out)
