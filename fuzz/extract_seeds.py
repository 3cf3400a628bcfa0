#!/usr/bin/env python3
"""Seed corpus for decoder_fuzz: one file per distinct frame of the capture corpus.

Usage: extract_seeds.py CORPUS_DIR OUT_DIR [MAX_PER_FILE]
Each seed is byte 0 = index of the frame's link type in fuzz/link_types.h, then the frame
(link types the decoder does not know get the index of the unknown one). Reads classic pcap
and pcapng with dpkt (Debian's python3-dpkt, which scripts/setup.sh installs).
"""
import hashlib
import os
import re
import struct
import sys

import dpkt

HERE = os.path.dirname(os.path.abspath(__file__))


def link_types():
    text = open(os.path.join(HERE, "link_types.h")).read()
    body = re.search(r"kLinkTypes\[\] = \{([^}]*)\}", text).group(1)
    return [int(x) for x in re.findall(r"\d+", body)]


def frames_of(path):
    """(link type, frame) of the records of a classic pcap or pcapng file, as Debian's dpkt reads
    them, up to the first damaged or cut one (nothing from a file that is neither)."""
    with open(path, "rb") as f:
        try:
            ng = f.read(4) == b"\x0a\x0d\x0d\x0a"
            f.seek(0)
            reader = dpkt.pcapng.Reader(f) if ng else dpkt.pcap.Reader(f)
            linktype = reader.datalink() & 0x0FFFFFFF
            for _, frame in reader:
                yield linktype, frame
        except (dpkt.Error, ValueError, struct.error):
            return


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    max_per_file = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    types = link_types()
    unknown = types.index(147)
    os.makedirs(out, exist_ok=True)
    written = 0
    for root, _, files in sorted(os.walk(corpus)):
        for name in sorted(files):
            if not name.endswith((".pcap", ".pcapng")):
                continue
            for n, (lt, frame) in enumerate(frames_of(os.path.join(root, name))):
                if n >= max_per_file:
                    break
                seed = bytes([types.index(lt) if lt in types else unknown]) + frame
                digest = hashlib.sha1(seed).hexdigest()
                path = os.path.join(out, digest)
                if not os.path.exists(path):
                    with open(path, "wb") as f:
                        f.write(seed)
                    written += 1
    print(f"{written} new seeds in {out}")


if __name__ == "__main__":
    main()
