#include "capture/pcapng.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace tmach::capture::pcapng {
namespace {

constexpr uint32_t kInterface = 1, kObsoletePacket = 2, kSimplePacket = 3, kNameResolution = 4,
                   kInterfaceStats = 5, kEnhancedPacket = 6, kJournal = 9, kDecryptionSecrets = 10,
                   kCustom = 0x00000BAD, kCustomNoCopy = 0x40000BAD;

bool known_type(uint32_t t) {
  switch (t) {
    case kSectionHeader:
    case kInterface:
    case kObsoletePacket:
    case kSimplePacket:
    case kNameResolution:
    case kInterfaceStats:
    case kEnhancedPacket:
    case kJournal:
    case kDecryptionSecrets:
    case kCustom:
    case kCustomNoCopy:
      return true;
    default:
      return false;
  }
}

uint32_t raw32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The byte order a section header's magic at p + 8 gives: 0 native, 1 swapped, -1 none.
int section_order(const uint8_t* p) {
  uint32_t m = raw32(p + 8);
  if (m == kByteOrderMagic) return 0;
  if (m == __builtin_bswap32(kByteOrderMagic)) return 1;
  return -1;
}

Step need(size_t n) {
  Step s;
  s.kind = Step::kNeed;
  s.need = n;
  return s;
}

Step skip(size_t n, std::string why, bool packet = false) {
  Step s;
  s.kind = Step::kSkip;
  s.consumed = n;
  s.why = std::move(why);
  s.packet = packet;
  return s;
}

}  // namespace

bool is_pcapng(const uint8_t* p) { return raw32(p) == kSectionHeader; }

uint64_t Interface::to_ns(uint64_t units) const {
  using u128 = unsigned __int128;
  u128 ns;
  if (tsresol_pow2) {
    ns = tsresol_exp >= 64 ? 0 : (static_cast<u128>(units) * 1000000000u) >> tsresol_exp;
  } else if (tsresol_exp <= 9) {
    u128 mul = 1;
    for (int i = tsresol_exp; i < 9; ++i) mul *= 10;
    ns = static_cast<u128>(units) * mul;
  } else {
    u128 div = 1;
    for (int i = 9; i < tsresol_exp && div <= UINT64_MAX; ++i) div *= 10;
    ns = units / div;
  }
  ns += static_cast<u128>(static_cast<__int128>(tsoffset_s) * 1000000000);
  return ns > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(ns);
}

uint32_t Parser::u32(const uint8_t* p) const {
  uint32_t v = raw32(p);
  return swap_ ? __builtin_bswap32(v) : v;
}
uint16_t Parser::u16(const uint8_t* p) const {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return swap_ ? __builtin_bswap16(v) : v;
}
uint64_t Parser::u64(const uint8_t* p) const {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return swap_ ? __builtin_bswap64(v) : v;
}

Step Parser::next(const uint8_t* p, size_t avail, bool eof) {
  if (avail == 0) return eof ? Step{} : need(12);
  if (avail < 12) {
    if (!eof) return need(12);
    return skip(avail, fmt::format("truncated block ({} bytes at the end)", avail));
  }
  uint32_t type = u32(p), len;
  if (raw32(p) == kSectionHeader) {  // its own byte order
    int order = section_order(p);
    if (order < 0) return resync(p, avail, eof, "section header block without its byte-order magic");
    len = raw32(p + 4);
    if (order) len = __builtin_bswap32(len);
    type = kSectionHeader;
  } else {
    len = u32(p + 4);
  }
  // (A block whose type says packet, unreadable: a packet lost, counted as such.)
  const bool packet = type == kEnhancedPacket || type == kSimplePacket || type == kObsoletePacket;
  if (len < 12 || len % 4 != 0 || len > kMaxBlock)
    return resync(p, avail, eof, fmt::format("block of type {:#x} with an impossible length {}", type, len),
                  packet);
  if (avail < len) {
    if (!eof) return need(len);
    return resync(p, avail, eof,
                  fmt::format("block of type {:#x} of {} bytes, only {} left in the file", type, len, avail),
                  packet);
  }
  uint32_t trailer = raw32(p + len - 4);
  if (type == kSectionHeader ? (trailer != raw32(p + 4)) : (u32(p + len - 4) != len))
    return resync(
        p, avail, eof,
        fmt::format("block of type {:#x} whose trailing length differs from its length {}", type, len),
        packet);
  if (!in_section_ && type != kSectionHeader)
    return resync(p, avail, eof, fmt::format("block of type {:#x} outside a section", type));
  return block(p, type, len);
}

// True when a block that looks whole and sound starts at p; false with *more set when more
// bytes are needed to tell.
bool Parser::plausible(const uint8_t* p, size_t avail, bool eof, size_t* more) const {
  *more = 0;
  if (avail < 12) {
    if (!eof) *more = 12;
    return false;
  }
  bool shb = raw32(p) == kSectionHeader;
  uint32_t type = shb ? kSectionHeader : u32(p);
  if (!known_type(type)) return false;
  uint32_t len;
  if (shb) {
    int order = section_order(p);
    if (order < 0) return false;
    len = order ? __builtin_bswap32(raw32(p + 4)) : raw32(p + 4);
  } else {
    len = u32(p + 4);
  }
  if (len < 12 || len % 4 != 0 || len > kMaxBlock) return false;
  if (avail < len) {
    if (!eof) *more = len;
    return false;
  }
  return raw32(p + len - 4) == raw32(p + 4);
}

Step Parser::resync(const uint8_t* p, size_t avail, bool eof, std::string why, bool packet) {
  for (size_t q = 4; q < avail; q += 4) {
    size_t more;
    if (plausible(p + q, avail - q, eof, &more)) {
      if (!in_section_ && raw32(p + q) != kSectionHeader) continue;  // nothing to read it with
      return skip(q, std::move(why), packet);
    }
    if (more) return need(q + more);
  }
  if (!eof) return need(avail + 4096);
  return skip(avail, why + "; no readable block follows", packet);
}

void Parser::interface_block(const uint8_t* p, uint32_t len) {
  Interface i;
  i.linktype = u16(p + 8);
  i.snaplen = u32(p + 12);
  size_t o = 16, end = len - 4;
  while (o + 4 <= end) {  // options: code, length, value padded to 4 bytes
    uint16_t code = u16(p + o), olen = u16(p + o + 2);
    if (code == 0 || o + 4 + olen > end) break;
    if (code == 9 && olen >= 1) {  // if_tsresol
      i.tsresol_pow2 = (p[o + 4] & 0x80) != 0;
      i.tsresol_exp = p[o + 4] & 0x7f;
    } else if (code == 14 && olen >= 8) {  // if_tsoffset
      i.tsoffset_s = static_cast<int64_t>(u64(p + o + 4));
    }
    o += 4 + ((olen + 3u) & ~3u);
  }
  ifaces_.push_back(i);
}

Step Parser::block(const uint8_t* p, uint32_t type, uint32_t len) {
  Step s;
  s.kind = Step::kBlock;
  s.consumed = len;
  switch (type) {
    case kSectionHeader: {
      if (len < 28) return skip(len, fmt::format("section header block of {} bytes (at least 28)", len));
      swap_ = section_order(p) == 1;
      ifaces_.clear();
      uint16_t major = u16(p + 12);
      in_section_ = major == 1;
      if (!in_section_)
        return skip(len,
                    fmt::format("section of pcapng version {}.{}, which tm cannot read", major, u16(p + 14)));
      return s;
    }
    case kInterface:
      if (len < 20) return skip(len, fmt::format("interface block of {} bytes (at least 20)", len));
      interface_block(p, len);
      return s;
    case kEnhancedPacket:
    case kObsoletePacket:
    case kSimplePacket:
      return packet(p, type, len);
    default:
      return s;  // name resolution, statistics, secrets, custom and unknown blocks hold no packet
  }
}

Step Parser::packet(const uint8_t* p, uint32_t type, uint32_t len) {
  uint32_t ifid, caplen, wirelen;
  uint64_t units = 0;
  size_t data_at;
  if (type == kSimplePacket) {
    if (len < 16) return skip(len, fmt::format("simple packet block of {} bytes (at least 16)", len), true);
    ifid = 0;
    wirelen = u32(p + 8);
    data_at = 12;
    caplen = std::min<uint32_t>(wirelen, len - 16);
    if (!ifaces_.empty() && ifaces_[0].snaplen) caplen = std::min(caplen, ifaces_[0].snaplen);
  } else {
    if (len < 32) return skip(len, fmt::format("packet block of {} bytes (at least 32)", len), true);
    ifid = type == kObsoletePacket ? u16(p + 8) : u32(p + 8);
    units = (static_cast<uint64_t>(u32(p + 12)) << 32) | u32(p + 16);
    caplen = u32(p + 20);
    wirelen = u32(p + 24);
    data_at = 28;
    if (caplen > len - 32)
      return skip(
          len, fmt::format("packet block whose captured length {} exceeds the block ({} bytes)", caplen, len),
          true);
  }
  if (ifid >= ifaces_.size())
    return skip(len,
                fmt::format("packet of interface {}, which no interface block of its section defines ({} do)",
                            ifid, ifaces_.size()),
                true);
  const Interface& i = ifaces_[ifid];
  Step s;
  s.kind = Step::kPacket;
  s.consumed = len;
  s.ts_ns = type == kSimplePacket ? 0 : i.to_ns(units);
  s.untimed = type == kSimplePacket;
  s.caplen = caplen;
  s.wirelen = std::max(wirelen, caplen);
  s.linktype = i.linktype;
  s.data = p + data_at;
  return s;
}

}  // namespace tmach::capture::pcapng
