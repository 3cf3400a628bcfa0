#!/usr/bin/env python3
"""Seed corpus for decoder_fuzz: one file per distinct frame of the capture corpus.

Usage: extract_seeds.py CORPUS_DIR OUT_DIR [MAX_PER_FILE]
Each seed is byte 0 = index of the frame's link type in fuzz/link_types.h, then the frame
(link types the decoder does not know get the index of the unknown one). Reads classic pcap
and pcapng without third-party modules.
"""
import hashlib
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def link_types():
    text = open(os.path.join(HERE, "link_types.h")).read()
    body = re.search(r"kLinkTypes\[\] = \{([^}]*)\}", text).group(1)
    return [int(x) for x in re.findall(r"\d+", body)]


def pcap_frames(blob):
    magic = blob[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    linktype = struct.unpack(e + "I", blob[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(blob):
        incl = struct.unpack(e + "I", blob[off + 8 : off + 12])[0]
        off += 16
        if incl > len(blob) - off:
            return
        yield linktype, blob[off : off + incl]
        off += incl


def pcapng_frames(blob):
    off, e, ifaces = 0, "<", []
    while off + 12 <= len(blob):
        btype = struct.unpack(e + "I", blob[off : off + 4])[0]
        if btype == 0x0A0D0D0A:  # section header: byte order from its magic
            e = "<" if blob[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack(e + "I", blob[off + 4 : off + 8])[0]
        if blen < 12 or off + blen > len(blob):
            return
        body = blob[off + 8 : off + blen - 4]
        if btype == 1 and len(body) >= 2:  # interface description
            ifaces.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            iface, _, _, cap = struct.unpack(e + "IIII", body[:16])
            if iface < len(ifaces):
                yield ifaces[iface], body[20 : 20 + cap]
        elif btype == 3 and len(body) >= 4 and ifaces:  # simple packet
            yield ifaces[0], body[4:]
        off += blen


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
            blob = open(os.path.join(root, name), "rb").read()
            frames = pcapng_frames(blob) if blob[:4] == b"\x0a\x0d\x0d\x0a" else pcap_frames(blob)
            for n, (lt, frame) in enumerate(frames):
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
