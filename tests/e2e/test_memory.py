"""Memory: a recording's peak resident set stays within the bound docs/DESIGN.md ("Memory") gives for
its configuration, and tm reports its memory by part. The capture is generated small-frame traffic
(gen_traffic --small: 64..128-byte frames, the case where index building costs the most per byte),
recorded with small budgets so that the budgets, not the fixed costs, make up the bound. The peak is
the kernel's (ru_maxrss of the child), not tm's own report. Memory is no timing: the bound holds on a
loaded machine as on an idle one."""
import json
import os
import subprocess
import sys
import unittest

from tmtest import TM, StoreTest

GEN = os.path.join(os.path.dirname(TM), "gen_traffic")
MiB = 1 << 20

# docs/DESIGN.md, "Memory": the fixed part (program, libraries, thread stacks, allocator), the
# bytes per index key and per packet of a segment being written or sealed, the input window.
FIXED = 48 * MiB
PER_KEY, PER_PACKET = 24, 8
INPUT_WINDOW = 96 * MiB
SEGMENT_FIXED = 8 * MiB


def sanitized(binary):
    """Whether `binary` is an ASan or TSan build: their shadow memory and quarantine multiply the resident
    set, so the bound (of a release build) says nothing there."""
    with open(binary, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def huge_pages(n):
    return (n + 2 * MiB - 1) // (2 * MiB) * (2 * MiB)


def index_bound(segment_size):
    """One segment being written or sealed, at most: its write buffers and tables (SEGMENT_FIXED),
    segment_size / 8 keys and segment_size / 16 packets."""
    return SEGMENT_FIXED + segment_size // 8 * PER_KEY + segment_size // 16 * PER_PACKET


def flow_index_cap(file_size):
    """flow::flow_index_cap: a flow file is sealed once its index holds this much."""
    return max(8 * file_size, 4 * MiB)


def bound(segment_size, ram_budget, connections, input_bytes, flow_file_size, open_segments=1):
    slots = 1 << (int(connections / 0.7) + 1 - 1).bit_length()  # bit_ceil(max / 0.7 + 1)
    tables = huge_pages(slots * 8) + huge_pages(connections * 128)
    # every connection's record at the end, at once, and the flow file's index (checked every block, so
    # it may pass the cap by one growth of its tables, and its seal adds the postings)
    flow_records = connections * 128 + 3 * flow_index_cap(flow_file_size)
    return (FIXED + ram_budget + tables + flow_records + min(input_bytes, INPUT_WINDOW) +
            (open_segments + 2) * index_bound(segment_size))


class Memory(StoreTest):
    def record_measured(self, pcap, config):
        cfg = self.path("tm.toml")
        with open(cfg, "w") as f:
            f.write(config)
        out = self.path("summary.json")
        with open(out, "w") as o:
            p = subprocess.Popen([TM, "record", "--config", cfg, "--read", pcap, "--json"], stdout=o,
                                 stderr=subprocess.PIPE)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, err)
        with open(out) as f:
            return json.load(f), usage.ru_maxrss * 1024

    def test_small_frames_stay_within_the_bound_of_the_budgets(self):
        if sanitized(TM):
            self.skipTest("a sanitizer build: its shadow memory is outside the bound (the release build checks it)")
        self.assertTrue(os.access(GEN, os.X_OK), "gen_traffic not built next to tm: " + GEN)
        pcap = self.path("small.pcap")
        subprocess.run([GEN, "--out", pcap, "--bytes", "48m", "--small"], check=True, stdout=subprocess.DEVNULL)
        seg, ram, conns, flow_file = 8 * MiB, 8 * MiB, 20000, 1 * MiB
        s, peak = self.record_measured(pcap, """
[store]
path = "%s"
segment_size = "8m"
[connections]
max = %d
[flows]
file_size = "1m"
[[class]]
name = "default"
cutoff = "none"
ram_budget = "8m"
""" % (self.store, conns))
        m = s["memory"]
        c = s["classes"]["default"]
        self.assertEqual(c["stored_packets"], s["packets"])
        self.assertGreaterEqual(c["segments"], 5, "48 MB into 8 MiB segments")
        # The parts tm reports, each within its own bound.
        self.assertEqual(m["ram_budget"], ram)
        self.assertLessEqual(m["ram_buffers"], m["ram_budget"])
        self.assertLessEqual(m["connection_tables"], m["connection_tables_max"])
        self.assertGreater(m["index_building_peak"], 0)
        self.assertLessEqual(m["index_building_peak"], 3 * index_bound(seg))
        self.assertGreater(m["flow_index_peak"], 0)
        self.assertLess(m["flow_index_peak"], 3 * flow_index_cap(flow_file))
        self.assertEqual(m["kernel_rings"], 0)
        # The kernel's figure against the documented bound, and against tm's own report of it.
        b = bound(seg, ram, conns, os.path.getsize(pcap), flow_file)
        sys.stderr.write("peak RSS %.1f MiB, bound %.1f MiB, index building at its peak %.1f MiB\n" %
                         (peak / MiB, b / MiB, m["index_building_peak"] / MiB))
        self.assertLessEqual(peak, b, "peak RSS %.1f MiB beyond the bound %.1f MiB" % (peak / MiB, b / MiB))
        self.assertLessEqual(abs(m["peak_rss"] - peak), 8 * MiB, "tm's peak_rss is the kernel's")


if __name__ == "__main__":
    unittest.main()
