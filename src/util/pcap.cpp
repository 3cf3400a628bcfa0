#include "util/pcap.h"

namespace tmach::util::pcap {

std::optional<Format> parse_file_header(const uint8_t* p) {
  uint32_t magic;
  std::memcpy(&magic, p, 4);
  Format f;
  if (magic == kMagicUsec) {
  } else if (magic == kMagicNsec) {
    f.nsec = true;
  } else if (magic == __builtin_bswap32(kMagicUsec)) {
    f.swap = true;
  } else if (magic == __builtin_bswap32(kMagicNsec)) {
    f.swap = f.nsec = true;
  } else {
    return std::nullopt;
  }
  std::memcpy(&f.linktype, p + 20, 4);
  if (f.swap) f.linktype = __builtin_bswap32(f.linktype);
  // Bits 26-31 say whether frames end in an FCS, and its length (libpcap's LT_LINKTYPE).
  f.linktype &= 0x03ffffff;
  return f;
}

}  // namespace tmach::util::pcap
