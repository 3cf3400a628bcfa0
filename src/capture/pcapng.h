// The pcapng format (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html), read by
// tm itself rather than by libpcap: libpcap stops at the first damaged block (a bad block
// before the first packet gave 0 of 10 packets) and refuses files Wireshark reads (interfaces
// of different snapshot lengths). This parser walks blocks over bytes in memory, keeps each
// interface's link type and timestamp resolution, and on damage finds the next plausible block
// (known type, sane length, trailing length equal) so that what follows is still read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tmach::capture::pcapng {

inline constexpr uint32_t kSectionHeader = 0x0A0D0D0A;
inline constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
inline constexpr uint32_t kMaxBlock = 16u << 20;  // as libpcap: larger blocks mean damage

// True when the first 4 bytes at `p` are a section header block's type.
bool is_pcapng(const uint8_t* p);

struct Interface {
  uint32_t linktype = 0;
  uint32_t snaplen = 0;
  bool tsresol_pow2 = false;  // if_tsresol: units of 2^-exp seconds, else 10^-exp
  uint8_t tsresol_exp = 6;    // microseconds by default
  int64_t tsoffset_s = 0;     // if_tsoffset
  uint64_t to_ns(uint64_t units) const;
};

// What one call of Parser::next() found at the current position.
struct Step {
  enum Kind {
    kNeed,    // `need` bytes from the position are required (only when not at the end of input)
    kPacket,  // a packet (`ts_ns`, `caplen`, `wirelen`, `linktype`, `data`); `consumed` bytes
    kBlock,   // a block that holds no packet (section, interface, statistics...), `consumed` bytes
    kSkip,    // an unreadable part: `consumed` bytes skipped, `why` says what (and `packet`: a
              // packet block that could not be read, e.g. of an interface no block defines)
    kEnd,     // nothing left
  } kind = kEnd;
  size_t need = 0;
  size_t consumed = 0;
  bool packet = false;
  bool untimed = false;  // kPacket of a simple packet block, which has no time (ts_ns 0, as libpcap)
  std::string why;
  uint64_t ts_ns = 0;
  uint32_t caplen = 0, wirelen = 0, linktype = 0;
  const uint8_t* data = nullptr;
};

class Parser {
 public:
  // Looks at the bytes [p, p + avail), which start at the current position; `eof`: no more
  // bytes will come after them. The caller advances by `consumed` (kPacket, kBlock, kSkip) and
  // calls again; on kNeed it supplies at least `need` bytes (or says eof) and calls again.
  Step next(const uint8_t* p, size_t avail, bool eof);
  const std::vector<Interface>& interfaces() const { return ifaces_; }

 private:
  uint32_t u32(const uint8_t* p) const;
  uint16_t u16(const uint8_t* p) const;
  uint64_t u64(const uint8_t* p) const;
  // The block at p (whole, `len` bytes, trailing length checked).
  Step block(const uint8_t* p, uint32_t type, uint32_t len);
  Step packet(const uint8_t* p, uint32_t type, uint32_t len);
  void interface_block(const uint8_t* p, uint32_t len);
  // Damage at the position: the distance to the next plausible block, or kNeed.
  // `packet`: the unreadable block at p claims to be a packet block (counted as a packet lost).
  Step resync(const uint8_t* p, size_t avail, bool eof, std::string why, bool packet = false);
  bool plausible(const uint8_t* p, size_t avail, bool eof, size_t* need) const;

  bool swap_ = false;
  bool in_section_ = false;
  std::vector<Interface> ifaces_;
};

}  // namespace tmach::capture::pcapng
