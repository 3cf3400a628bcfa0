// VXLAN (RFC 7348, UDP 4789) and VXLAN-GPE (UDP 4790) with NSH (RFC 8300) inside.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {
namespace {

// The "next protocol" values of VXLAN-GPE and NSH.
bool next_protocol(uint8_t np, uint32_t off, Encap& e) {
  e.off = off;
  switch (np) {
    case 1:
      e.what = Encap::kIp;
      e.version = 4;
      return true;
    case 2:
      e.what = Encap::kIp;
      e.version = 6;
      return true;
    case 3:
      e.what = Encap::kEthernet;
      return true;
    case 5:
      e.what = Encap::kMpls;
      e.type = kEthMplsUc;
      return true;
    default:
      return false;
  }
}

}  // namespace

// flags(1: I = 0x08 when the VNI is valid) reserved(3) VNI(3) reserved(1), then Ethernet.
DecodeStatus parse_vxlan(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 8 > lim) return truncated(out, "vxlan_truncated");
  if (!(d[off] & 0x08)) return DecodeStatus::kOk;  // not VXLAN after all
  e.id = rd32(d + off + 4) >> 8;
  e.what = Encap::kEthernet;
  e.off = off + 8;
  return DecodeStatus::kOk;
}

// flags(1: I 0x08, P 0x04 next protocol present) reserved(2) next protocol(1) VNI(3) reserved(1).
DecodeStatus parse_vxlan_gpe(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 8 > lim) return truncated(out, "vxlan_gpe_truncated");
  e.id = rd32(d + off + 4) >> 8;
  uint8_t np = d[off] & 0x04 ? d[off + 3] : 3;
  off += 8;
  if (np == 4) {  // NSH: flags/TTL/length (6 bits, 4-byte words), MD type, next protocol, path
    if (off + 8 > lim) return truncated(out, "nsh_truncated");
    uint32_t len = (d[off + 1] & 0x3f) * 4u;
    if (len < 8) return malformed(out, "nsh_bad_length");
    if (off + len > lim) return truncated(out, "nsh_truncated");
    np = d[off + 3];
    off += len;
  }
  if (!next_protocol(np, off, e)) e.what = Encap::kNone;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
