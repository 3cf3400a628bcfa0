// Reading a pcap answer in the page: records as they stream in, and tcpdump's one-line view of
// a packet (time, addresses, ports, protocol, length) for the previews.

// Feed it the bytes as they come; it calls onPacket({ts_ns, caplen, wirelen, linktype, data})
// for each whole record. Nanosecond and microsecond pcap, either byte order; and pcapng (the
// answer of a store of several link types): its interfaces' link types and time resolutions,
// its enhanced packet blocks.
export class PcapReader {
  constructor(onPacket) { this.onPacket = onPacket; this.buf = new Uint8Array(0); this.hdr = null; this.count = 0; }
  push(chunk) {
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf); b.set(chunk, this.buf.length);
    let off = 0;
    const dv = new DataView(b.buffer);
    if (!this.hdr) {
      if (b.length < 24) { this.buf = b; return; }
      if (dv.getUint32(0, true) === 0x0a0d0d0a) this.hdr = { ng: true, le: true, ifaces: [] };
    }
    if (this.hdr && this.hdr.ng) { this.buf = b.slice(this.pushNg(b, dv)); return; }
    if (!this.hdr) {
      const m = dv.getUint32(0, true);
      const le = m === 0xa1b2c3d4 || m === 0xa1b23c4d;
      const magic = le ? m : dv.getUint32(0, false);
      if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error("not a pcap stream");
      this.hdr = { le, nano: magic === 0xa1b23c4d, linktype: dv.getUint32(20, le) & 0xffff };
      off = 24;
    }
    const { le, nano, linktype } = this.hdr;
    while (b.length - off >= 16) {
      const incl = dv.getUint32(off + 8, le);
      if (b.length - off - 16 < incl) break;
      const sec = BigInt(dv.getUint32(off, le)), frac = BigInt(dv.getUint32(off + 4, le));
      const ts_ns = sec * 1000000000n + (nano ? frac : frac * 1000n);
      this.count++;
      this.onPacket({ ts_ns, caplen: incl, wirelen: dv.getUint32(off + 12, le), linktype, data: b.subarray(off + 16, off + 16 + incl) });
      off += 16 + incl;
    }
    this.buf = b.slice(off);
  }
  // pcapng blocks from the start of `b`; returns where the first incomplete one begins.
  pushNg(b, dv) {
    let off = 0;
    while (b.length - off >= 12) {
      const type = dv.getUint32(off, this.hdr.le);
      if (type === 0x0a0d0d0a) this.hdr.le = dv.getUint32(off + 8, true) === 0x1a2b3c4d;  // a section: its byte order
      const le = this.hdr.le, len = dv.getUint32(off + 4, le);
      if (len < 12 || len % 4) throw new Error("not a pcapng stream (a block of length " + len + ")");
      if (b.length - off < len) break;
      if (type === 0x0a0d0d0a) {
        this.hdr.ifaces = [];
      } else if (type === 1) {  // interface: link type, time resolution (if_tsresol, option 9; default microseconds)
        let unit = 1000n;
        for (let o = off + 16; o + 4 <= off + len - 4;) {
          const code = dv.getUint16(o, le), olen = dv.getUint16(o + 2, le);
          if (code === 0) break;
          if (code === 9 && olen >= 1) {
            const r = b[o + 4];
            unit = r & 0x80 ? 0n : (r <= 9 ? 10n ** BigInt(9 - r) : 0n);  // (binary or finer than ns: not shown)
          }
          o += 4 + ((olen + 3) & ~3);
        }
        this.hdr.ifaces.push({ linktype: dv.getUint16(off + 8, le), unit });
      } else if (type === 6) {  // enhanced packet
        const ifc = this.hdr.ifaces[dv.getUint32(off + 8, le)] || { linktype: 0, unit: 1000n };
        const ts = (BigInt(dv.getUint32(off + 12, le)) << 32n) | BigInt(dv.getUint32(off + 16, le));
        const incl = dv.getUint32(off + 20, le);
        this.count++;
        this.onPacket({ ts_ns: ts * ifc.unit, caplen: incl, wirelen: dv.getUint32(off + 24, le), linktype: ifc.linktype,
          data: b.subarray(off + 28, off + 28 + Math.min(incl, len - 32)) });
      }
      off += len;
    }
    return off;
  }
}

// Reads a fetch() Response's pcap body until it ends or `max` packets were seen (then cancels).
export async function readPackets(res, max, onPacket) {
  const reader = res.body.getReader();
  let n = 0, stop = false;
  const pr = new PcapReader((p) => { if (n < max) { n++; onPacket(p); } if (n >= max) stop = true; });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pr.push(value);
    if (stop) { reader.cancel().catch(() => {}); break; }
  }
  return n;
}

function ip4(d, o) { return `${d[o]}.${d[o + 1]}.${d[o + 2]}.${d[o + 3]}`; }
function ip6(d, o) {
  const g = [];
  for (let i = 0; i < 16; i += 2) g.push(((d[o + i] << 8) | d[o + i + 1]).toString(16));
  // the longest run of zero groups as "::"
  let best = -1, len = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > len && j - i > 1) { best = i; len = j - i; }
  }
  if (best < 0) return g.join(":");
  return g.slice(0, best).join(":") + "::" + g.slice(best + len).join(":");
}
const PROTO = { 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMP6", 132: "SCTP", 47: "GRE", 50: "ESP" };

function l3(d, o, et) {
  const u16 = (i) => (d[i] << 8) | d[i + 1];
  while (et === 0x8100 || et === 0x88a8) { if (d.length < o + 4) return null; et = u16(o + 2); o += 4; }
  let src, dst, proto, l4;
  if (et === 0x0800 && d.length >= o + 20) {
    const ihl = (d[o] & 15) * 4;
    src = ip4(d, o + 12); dst = ip4(d, o + 16); proto = d[o + 9]; l4 = o + ihl;
    const frag = u16(o + 6) & 0x1fff;
    if (frag) return `IP ${src} > ${dst}: ${PROTO[proto] || "proto " + proto} fragment`;
  } else if (et === 0x86dd && d.length >= o + 40) {
    src = ip6(d, o + 8); dst = ip6(d, o + 24); proto = d[o + 6]; l4 = o + 40;
  } else if (et === 0x0806) {
    return "ARP";
  } else {
    return `ethertype 0x${et.toString(16).padStart(4, "0")}`;
  }
  const v = et === 0x0800 ? "IP" : "IP6";
  if ((proto === 6 || proto === 17 || proto === 132) && d.length >= l4 + 4) {
    let s = `${v} ${src}.${u16(l4)} > ${dst}.${u16(l4 + 2)}: ${PROTO[proto]}`;
    if (proto === 6 && d.length >= l4 + 14) {
      const f = d[l4 + 13], names = [[2, "S"], [1, "F"], [4, "R"], [8, "P"], [16, "."]];
      s += " [" + names.filter(([b]) => f & b).map(([, n]) => n).join("") + "]";
    }
    return s;
  }
  return `${v} ${src} > ${dst}: ${PROTO[proto] || "proto " + proto}`;
}

// tcpdump -nn's line, roughly: "2026-11-25 13:00:01.123456 IP 10.0.0.5.443 > 10.0.0.9.51000: TCP [S], length 74".
export function oneLine(p) {
  const ms = Number(p.ts_ns / 1000000n);
  const us = String(p.ts_ns % 1000000000n / 1000n).padStart(6, "0");
  const t = new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "." + us;
  const d = p.data;
  let what;
  try {
    if (p.linktype === 1 && d.length >= 14) what = l3(d, 14, (d[12] << 8) | d[13]);
    else if (p.linktype === 101 || p.linktype === 12) what = l3(d, 0, (d[0] >> 4) === 6 ? 0x86dd : 0x0800);
    else if (p.linktype === 113 && d.length >= 16) what = l3(d, 16, (d[14] << 8) | d[15]);
    else if (p.linktype === 276 && d.length >= 20) what = l3(d, 20, (d[0] << 8) | d[1]);
    else what = `link type ${p.linktype}`;
  } catch (_) { what = null; }
  return `${t} ${what || "(truncated)"}, length ${p.wirelen}`;
}
