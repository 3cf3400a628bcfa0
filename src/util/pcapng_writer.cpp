#include "util/pcapng_writer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace tmach::util::pcapng {

Writer::Writer(Sink sink, size_t chunk, std::vector<uint32_t> declared)
    : sink_(std::move(sink)), chunk_(chunk), declared_(std::move(declared)) {}

void Writer::start() {
  started_ = true;
  // Section header block: type, length, byte-order magic, version 1.0, section length
  // unknown (-1), options: shb_userappl (4) "tm", end of options.
  const std::string appl = "tm";
  const uint32_t opt_len = 4 + ((static_cast<uint32_t>(appl.size()) + 3) & ~3u) + 4;
  const uint32_t len = 4 + 4 + 4 + 2 + 2 + 8 + opt_len + 4;
  u32(kBlockSection);
  u32(len);
  u32(kByteOrderMagic);
  u16(1);
  u16(0);
  u32(0xffffffffu);
  u32(0xffffffffu);
  u16(4);
  u16(static_cast<uint16_t>(appl.size()));
  buf_.append(appl);
  buf_.append((4 - appl.size() % 4) % 4, '\0');
  u32(0);  // opt_endofopt
  u32(len);
  for (uint32_t lt : declared_) interface(lt);
}

// The interface of `linktype`, its block written when it is new.
uint32_t Writer::interface(uint32_t linktype) {
  auto it = std::find(ifaces_.begin(), ifaces_.end(), linktype);
  if (it != ifaces_.end()) return static_cast<uint32_t>(it - ifaces_.begin());
  // Interface description block: link type, reserved, snap length, options: if_tsresol (9)
  // = 9 (nanoseconds), end of options. 32 bytes.
  constexpr uint32_t len = 4 + 4 + 2 + 2 + 4 + 8 + 4 + 4;
  u32(kBlockInterface);
  u32(len);
  u16(static_cast<uint16_t>(linktype));
  u16(0);
  u32(pcap::kSnaplen);
  u16(9);
  u16(1);
  buf_.append("\x09\0\0\0", 4);
  u32(0);
  u32(len);
  ifaces_.push_back(linktype);
  return static_cast<uint32_t>(ifaces_.size() - 1);
}

bool Writer::write(uint64_t ts_ns, uint32_t linktype, uint32_t caplen, uint32_t wirelen,
                   const uint8_t* data) {
  if (!started_) start();
  if (linktype != last_link_) {
    last_if_ = interface(linktype);
    last_link_ = linktype;
  }
  if (caplen > pcap::kSnaplen) {  // the interface's snaplen (as pcap::Writer)
    wirelen = std::max(wirelen, caplen);
    caplen = pcap::kSnaplen;
  }
  const uint32_t pad = (4 - caplen % 4) % 4;
  const uint32_t len = 4 + 4 + 4 + 4 + 4 + 4 + 4 + caplen + pad + 4;
  u32(kBlockEnhanced);
  u32(len);
  u32(last_if_);
  u32(static_cast<uint32_t>(ts_ns >> 32));
  u32(static_cast<uint32_t>(ts_ns));
  u32(caplen);
  u32(wirelen);
  buf_.append(reinterpret_cast<const char*>(data), caplen);
  buf_.append(pad, '\0');
  u32(len);
  ++packets_;
  if (buf_.size() >= chunk_) flush();
  return true;
}

void Writer::flush() {
  if (buf_.empty()) return;
  sink_(buf_.data(), buf_.size());
  bytes_ += buf_.size();
  buf_.clear();
}

void Writer::finish() {
  if (!started_) start();
  if (ifaces_.empty()) interface(pcap::kLinkEthernet);
  flush();
}

}  // namespace tmach::util::pcapng

namespace tmach::util::pcap {

const char* output_name(Output o) { return o == Output::kPcapng ? "pcapng" : "pcap"; }

const char* output_content_type(Output o) {
  return o == Output::kPcapng ? "application/x-pcapng" : "application/vnd.tcpdump.pcap";
}

std::optional<Output> parse_output(std::string_view s) {
  if (s == "pcap") return Output::kPcap;
  if (s == "pcapng") return Output::kPcapng;
  return std::nullopt;
}

AnswerWriter::AnswerWriter(Output o, Writer::Sink sink, size_t chunk, std::vector<uint32_t> declared) {
  if (o == Output::kPcapng)
    ng_.emplace(std::move(sink), chunk, std::move(declared));
  else
    pc_.emplace(std::move(sink), chunk);
}

std::string AnswerWriter::describe() const {
  if (!ng_) return fmt::format("pcap (link type {})", pc_->linktype());
  const auto& l = ng_->linktypes();
  return fmt::format("pcapng (link type{} {})", l.size() == 1 ? "" : "s", fmt::join(l, ", "));
}

}  // namespace tmach::util::pcap
