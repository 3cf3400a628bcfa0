// The classic pcap file format, in one place: the headers, a cursor over the records of a
// file or stream in memory (either byte order, micro- or nanosecond timestamps), and the
// writer of the nanosecond pcap that tm produces (the store's segments, query answers), over
// any sink.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

namespace tmach::util::pcap {

inline constexpr uint32_t kMagicUsec = 0xa1b2c3d4;
inline constexpr uint32_t kMagicNsec = 0xa1b23c4d;
inline constexpr uint32_t kSnaplen = 262144;
// The first time a record cannot hold (its seconds are 32 bits): 2106-02-07 06:28:16 UTC.
inline constexpr uint64_t kTimeLimitNs = (uint64_t{1} << 32) * 1000000000ull;
inline constexpr uint32_t kLinkEthernet = 1;

// As tm writes it: nanosecond magic, native (little-endian) order.
struct FileHeader {
  uint32_t magic = kMagicNsec;
  uint16_t version_major = 2;
  uint16_t version_minor = 4;
  int32_t thiszone = 0;
  uint32_t sigfigs = 0;
  uint32_t snaplen = kSnaplen;
  uint32_t linktype = kLinkEthernet;
};
static_assert(sizeof(FileHeader) == 24);

struct RecordHeader {
  uint32_t ts_sec;
  uint32_t ts_frac;  // nanoseconds as tm writes it (microseconds in a microsecond file)
  uint32_t caplen;
  uint32_t wirelen;
};
static_assert(sizeof(RecordHeader) == 16);

// The nanosecond record header of a packet.
inline RecordHeader record_header(uint64_t ts_ns, uint32_t caplen, uint32_t wirelen) {
  return RecordHeader{static_cast<uint32_t>(ts_ns / 1000000000ull),
                      static_cast<uint32_t>(ts_ns % 1000000000ull), caplen, wirelen};
}

// What a file header says.
struct Format {
  bool swap = false;  // the other byte order
  bool nsec = false;  // nanosecond timestamps
  uint32_t linktype = 0;
};

// The format of the 24 bytes at `p`, or nullopt when they are no classic pcap header. The
// link type's upper six bits (FCS information) are dropped.
std::optional<Format> parse_file_header(const uint8_t* p);

struct Record {
  uint64_t offset = 0;  // of the record header, from the start of the buffer
  uint64_t ts_ns = 0;
  uint32_t caplen = 0, wirelen = 0;
  const uint8_t* data = nullptr;  // caplen bytes
  // Its sub-second field is a second or more (a damaged or miswritten header): ts_ns carries
  // it into the seconds, where tcpdump prints it as it is and tshark drops it.
  bool frac_overflow = false;
};

// Walks the records of pcap bytes in memory (the 24-byte file header already read).
class RecordCursor {
 public:
  enum class Step {
    kRecord,     // `out` holds the next record
    kEnd,        // no bytes left
    kTruncated,  // an incomplete record (or record header) from pos() to the end
    kTooLarge,   // a record claims more than max_caplen bytes: a damaged file or no pcap
  };
  RecordCursor(const uint8_t* base, uint64_t size, Format f, uint64_t pos = sizeof(FileHeader),
               uint32_t max_caplen = 16u << 20)
      : base_(base), size_(size), pos_(pos), max_caplen_(max_caplen), f_(f) {}

  // The next record; the cursor stays put on anything but kRecord.
  Step next(Record& out) {
    if (pos_ == size_) return Step::kEnd;
    if (size_ - pos_ < sizeof(RecordHeader)) return Step::kTruncated;
    uint32_t h[4];
    std::memcpy(h, base_ + pos_, sizeof(h));
    if (f_.swap)
      for (auto& v : h) v = __builtin_bswap32(v);
    if (h[2] > max_caplen_) return Step::kTooLarge;
    if (size_ - pos_ - sizeof(RecordHeader) < h[2]) return Step::kTruncated;
    out.offset = pos_;
    out.ts_ns =
        static_cast<uint64_t>(h[0]) * 1000000000ull + (f_.nsec ? h[1] : static_cast<uint64_t>(h[1]) * 1000);
    out.frac_overflow = h[1] >= (f_.nsec ? 1000000000u : 1000000u);
    out.caplen = h[2];
    out.wirelen = h[3];
    out.data = base_ + pos_ + sizeof(RecordHeader);
    pos_ += sizeof(RecordHeader) + h[2];
    return Step::kRecord;
  }
  uint64_t pos() const { return pos_; }  // just past the last record returned
  const Format& format() const { return f_; }

 private:
  const uint8_t* base_;
  uint64_t size_, pos_;
  uint32_t max_caplen_;
  Format f_;
};

// Writes a nanosecond pcap into `sink` in chunks of `chunk` bytes (and what is left at
// flush()). The link type is the first packet's; packets of another link type cannot share
// the file and are counted instead. The sink throws when it cannot take the bytes.
class Writer {
 public:
  using Sink = std::function<void(const char* p, size_t n)>;
  explicit Writer(Sink sink, size_t chunk = 1 << 16) : sink_(std::move(sink)), chunk_(chunk) {}
  // False (and counted in other_link()) when the packet's link type is not the file's.
  bool write(uint64_t ts_ns, uint32_t linktype, uint32_t caplen, uint32_t wirelen, const uint8_t* data) {
    if (!header_) header(linktype);
    if (linktype != linktype_) {
      ++other_link_;
      return false;
    }
    // The file's snaplen: no reader takes a longer record (a store written before the
    // recorder cut such records holds them whole).
    if (caplen > kSnaplen) {
      wirelen = std::max(wirelen, caplen);
      caplen = kSnaplen;
    }
    const RecordHeader rh = record_header(ts_ns, caplen, wirelen);
    buf_.append(reinterpret_cast<const char*>(&rh), sizeof(rh));
    buf_.append(reinterpret_cast<const char*>(data), caplen);
    ++packets_;
    if (buf_.size() >= chunk_) flush();
    return true;
  }
  // Hands what is buffered to the sink.
  void flush() {
    if (buf_.empty()) return;
    sink_(buf_.data(), buf_.size());
    bytes_ += buf_.size();
    buf_.clear();
  }
  // Flushes; an empty answer is still a valid (Ethernet) pcap.
  void finish() {
    if (!header_) header(kLinkEthernet);
    flush();
  }
  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }  // handed to the sink
  uint64_t other_link() const { return other_link_; }
  uint32_t linktype() const { return linktype_; }

 private:
  void header(uint32_t linktype) {
    FileHeader fh;
    fh.linktype = linktype;
    buf_.append(reinterpret_cast<const char*>(&fh), sizeof(fh));
    linktype_ = linktype;
    header_ = true;
  }
  Sink sink_;
  size_t chunk_;
  std::string buf_;
  bool header_ = false;
  uint32_t linktype_ = kLinkEthernet;
  uint64_t packets_ = 0, bytes_ = 0, other_link_ = 0;
};

}  // namespace tmach::util::pcap
