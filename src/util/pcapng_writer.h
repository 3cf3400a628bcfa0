// Query answers as pcapng, for answers that hold more than one link type (a classic pcap has
// one link type per file): a section header block, one interface description block per link
// type (written when its first packet comes, so an answer of one link type has one interface),
// and an enhanced packet block per packet with nanosecond timestamps (if_tsresol = 9).
// AnswerWriter writes either format behind one interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/pcap.h"

namespace tmach::util::pcapng {

inline constexpr uint32_t kBlockSection = 0x0A0D0D0A;
inline constexpr uint32_t kBlockInterface = 1;
inline constexpr uint32_t kBlockEnhanced = 6;
inline constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;

// Writes a pcapng (native byte order) into `sink` in chunks of `chunk` bytes (and what is left
// at flush()). Every link type is taken: a packet of a link type not seen before first gets
// its interface block. The sink throws when it cannot take the bytes.
class Writer {
 public:
  using Sink = pcap::Writer::Sink;
  // `declared`: link types whose interfaces are written with the section header, in this
  // order (a tm frontend's merge); others are added as their first packet comes.
  explicit Writer(Sink sink, size_t chunk = 1 << 16, std::vector<uint32_t> declared = {});
  bool write(uint64_t ts_ns, uint32_t linktype, uint32_t caplen, uint32_t wirelen, const uint8_t* data);
  void flush();
  // Flushes; an empty answer still has one (Ethernet) interface, which libpcap requires.
  void finish();
  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }
  const std::vector<uint32_t>& linktypes() const { return ifaces_; }  // interface i's link type

 private:
  void start();
  uint32_t interface(uint32_t linktype);
  void u32(uint32_t v) { buf_.append(reinterpret_cast<const char*>(&v), 4); }
  void u16(uint16_t v) { buf_.append(reinterpret_cast<const char*>(&v), 2); }

  Sink sink_;
  size_t chunk_;
  std::string buf_;
  bool started_ = false;
  std::vector<uint32_t> ifaces_, declared_;
  uint32_t last_link_ = UINT32_MAX, last_if_ = 0;
  uint64_t packets_ = 0, bytes_ = 0;
};

}  // namespace tmach::util::pcapng

namespace tmach::util::pcap {

// The format of a query answer.
enum class Output {
  kPcap,    // classic nanosecond pcap: one link type, packets of others are left out (counted)
  kPcapng,  // pcapng: any number of link types
};
// "pcap", "pcapng"
const char* output_name(Output o);
// The MIME type an HTTP answer in this format carries.
const char* output_content_type(Output o);
// "pcap" or "pcapng"; nullopt for anything else.
std::optional<Output> parse_output(std::string_view s);

// Either writer, chosen when it is made.
class AnswerWriter {
 public:
  AnswerWriter(Output o, Writer::Sink sink, size_t chunk = 1 << 16, std::vector<uint32_t> declared = {});
  // False (counted in other_link()) when a pcap answer cannot take the packet's link type.
  bool write(uint64_t ts_ns, uint32_t linktype, uint32_t caplen, uint32_t wirelen, const uint8_t* data) {
    return ng_ ? ng_->write(ts_ns, linktype, caplen, wirelen, data)
               : pc_->write(ts_ns, linktype, caplen, wirelen, data);
  }
  void flush() { ng_ ? ng_->flush() : pc_->flush(); }
  void finish() { ng_ ? ng_->finish() : pc_->finish(); }
  uint64_t packets() const { return ng_ ? ng_->packets() : pc_->packets(); }
  uint64_t other_link() const { return ng_ ? 0 : pc_->other_link(); }
  uint32_t linktype() const { return ng_ ? 0 : pc_->linktype(); }  // a pcap answer's link type
  Output output() const { return ng_ ? Output::kPcapng : Output::kPcap; }
  // What was written, for a summary: "pcap (link type 1)", "pcapng (link types 1, 113)".
  std::string describe() const;

 private:
  std::optional<Writer> pc_;
  std::optional<pcapng::Writer> ng_;
};

}  // namespace tmach::util::pcap
