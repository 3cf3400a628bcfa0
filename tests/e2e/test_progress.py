"""Progress on long work (issue 18 item 5): `tm record` from files shows a progress line on a terminal
(bytes read of the total, packets/s, rewritten in place with \\r on stderr) and nothing when stderr is
not a terminal; `tm serve` logs its start, a one-line status every status interval, and its stop."""
import os
import pty
import select
import signal
import subprocess
import time
import unittest

from tmtest import TM, StoreTest, corpus, read_pcap, run, veth_namespace, capturing, tcpdump_packets

BIG = corpus("mixed", "echo-connections.pcap")
# The writer takes 150 us per packet and the RAM ring is small, so the import lasts several seconds: the
# progress line (at most 4 a second, the first after 250 ms) has time to appear.
SLOW = ["--cutoff", "none", "--ram-budget", "1m", "--test-writer-delay-us", "150"]


def run_on_pty(args):
    """Runs args with stderr on a pseudo-terminal (stdout a pipe); returns (rc, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    term, out = b"", b""
    fds = [master, p.stdout.fileno()]
    while fds:
        r, _, _ = select.select(fds, [], [], 1.0)
        for fd in r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                chunk = b""
            if not chunk:
                fds.remove(fd)
            elif fd == master:
                term += chunk
            else:
                out += chunk
        if not r and p.poll() is not None:
            break
    out += p.stdout.read()
    p.stdout.close()
    os.close(master)
    return p.wait(), out, term


class RecordProgress(StoreTest):
    def setUp(self):
        super().setUp()
        self.size = os.path.getsize(BIG)
        self.packets = len(read_pcap(BIG))

    def test_progress_line_on_a_terminal(self):
        rc, out, term = run_on_pty([TM, "record", "--store", self.store, "--read", BIG] + SLOW)
        self.assertEqual(rc, 0, term.decode(errors="replace"))
        text = term.decode(errors="replace")
        lines = [l for l in text.split("\r") if l.startswith("tm record: ") and "packets/s" in l]
        self.assertTrue(lines, "no progress line on the terminal: %r" % text[:2000])
        total = "of 6.5 MiB"
        for l in lines:
            self.assertIn(total, l)
            self.assertRegex(l, r"tm record: [0-9.]+ (B|KiB|MiB) of 6\.5 MiB \(\d+%\) read, \d+ packets, \d+ packets/s")
        # The summary goes to stdout, whole; the terminal's progress line was cleared before it.
        self.assertIn(("recorded %d packets" % self.packets).encode(), out)
        self.assertIn("\r\x1b[K", text)

    def test_nothing_without_a_terminal(self):
        p = run([TM, "record", "--store", self.store, "--read", BIG] + SLOW)
        err = p.stderr.decode(errors="replace")
        self.assertNotIn("\r", err)
        self.assertNotIn("packets/s", err)
        self.assertIn(("recorded %d packets" % self.packets).encode(), p.stdout)


def send_udp(ns, n=5):
    """n UDP datagrams to 127.0.0.1:9 (discard) from inside namespace ns: packets on its lo."""
    code = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for i in range(%d):\n s.sendto(b'tm'*20,('127.0.0.1',9)); time.sleep(0.05)\n" % n)
    run(["ip", "netns", "exec", ns, "python3", "-c", code], check=False)


class LiveServe(StoreTest):
    """tm serve capturing lo inside a network namespace of its own (no tests here: others import it)."""

    def start(self, *extra):
        ns, _ = veth_namespace(self, "tmstat", "st0", "st1", tools=("ip",))
        self.ns = ns
        self.err = open(self.path("serve.err"), "w+b")
        self.addCleanup(self.err.close)
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, TM, "serve", "--store", self.store, "-i", "lo",
                                      "--listen", "127.0.0.1:0"] + list(extra),
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        self.addCleanup(lambda: self.proc.poll() is None and (self.proc.kill(), self.proc.wait()))

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def wait_for(self, text, what):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if text in self.stderr():
                return
            if self.proc.poll() is not None:
                self.fail("tm serve exited (%d) before %s:\n%s" % (self.proc.returncode, what, self.stderr()))
            time.sleep(0.05)
        self.fail("no %s within 60 s:\n%s" % (what, self.stderr()))


class ServeStatus(LiveServe):
    def test_start_status_and_stop_are_logged(self):
        self.start("--status-interval", "0.2")
        self.wait_for("tm serve: recording lo into", "start line")
        # Packets on lo (UDP to itself), until a status line counts them.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            send_udp(self.ns)
            st = [l for l in self.stderr().splitlines() if "status: " in l]
            if st and not st[-1].split("status: ", 1)[1].startswith("0 packets"):
                break
        else:
            self.fail("no status line with packets:\n" + self.stderr())
        self.assertRegex(st[-1], r"status: \d+ packets \(.*\), \d+ stored, \d+ cut off, dropped: \d+ in tm, "
                                 r"\d+ kernel, \d+ interface; disk .*, \d+ segments evicted; \d+ connections active")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=60), 0, self.stderr())
        err = self.stderr()
        self.assertIn("stopping: asked to (signal)", err)
        self.assertRegex(err, r"stopped; at the end: status: [1-9]\d* packets")

    def test_status_interval_zero_logs_none(self):
        conf = self.path("tm.toml")
        with open(conf, "w") as f:
            f.write('[server]\nstatus_interval = "0"\n')
        self.start("--config", conf)
        self.wait_for("tm serve: recording lo into", "start line")
        send_udp(self.ns)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=60), 0, self.stderr())
        err = self.stderr()
        self.assertIn("stopped; at the end: status:", err)
        self.assertEqual([l for l in err.splitlines() if "status: " in l and "stopped" not in l], [])


if __name__ == "__main__":
    unittest.main()
