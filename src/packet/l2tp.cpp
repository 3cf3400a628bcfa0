// L2TPv2 (RFC 2661, UDP 1701) data messages: flags/version(2: T L . . S . O P . . . . ver)
// [length(2)] tunnel id(2) session id(2) [Ns(2) Nr(2)] [offset size(2) offset pad], then
// PPP. Control messages (T set) carry no user data.
#include "packet/decode_internal.h"

namespace tmach::packet::detail {

DecodeStatus parse_l2tp(const uint8_t* d, uint32_t lim, uint32_t off, PacketInfo& out, Encap& e) {
  if (off + 2 > lim) return truncated(out, "l2tp_truncated");
  const uint16_t flags = rd16(d + off);
  if ((flags & 0x000f) != 2 || (flags & 0x8000)) return DecodeStatus::kOk;  // v3, or control
  uint32_t p = off + 2;
  if (flags & 0x4000) p += 2;  // length
  if (p + 4 > lim) return truncated(out, "l2tp_truncated");
  e.id = rd32(d + p);  // tunnel id << 16 | session id
  p += 4;
  if (flags & 0x0800) p += 4;  // Ns, Nr
  if (flags & 0x0200) {        // offset size, then that many bytes of padding
    if (p + 2 > lim) return truncated(out, "l2tp_truncated");
    p += 2 + rd16(d + p);
  }
  if (p > lim) return truncated(out, "l2tp_truncated");
  e.what = Encap::kPpp;
  e.off = p;
  return DecodeStatus::kOk;
}

}  // namespace tmach::packet::detail
