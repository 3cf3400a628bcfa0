#include "query/packet_filter.h"

#include <endian.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

#include "packet/decoder.h"
#include "query/eval.h"
#include "store/index_keys.h"

namespace tmach::query {

namespace {

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint16_t rd16le(const uint8_t* p) { return static_cast<uint16_t>(p[1] << 8 | p[0]); }

// (Not RARP: tm's `arp` matches it, libpcap's does not.)
bool ip_or_arp_type(uint16_t type) { return type == 0x0800 || type == 0x86dd || type == 0x0806; }

}  // namespace

bool cut_frame_for_libpcap(uint32_t linktype, const uint8_t* data, uint32_t caplen,
                           const packet::PacketInfo& p) {
  if (!store::cut_before_its_keys(p) || p.vlan_count || p.mpls_count || p.ip_count > 1) return false;
  if (p.ip_count == 1) {
    const packet::IpLayer& l = p.ip[0];
    if (l.fragment || (l.version == 6 && l.header_proto != l.proto)) return false;
  }
  // The link layer (LINKTYPE_* values), up to the type of what it carries.
  switch (linktype) {
    case 1:  // Ethernet: the EtherType itself, not behind a tag, a shim or LLC/SNAP
      return caplen < 14 || ip_or_arp_type(rd16(data + 12));
    case 113:  // Linux cooked (SLL): the protocol at 14
      return caplen < 16 || ip_or_arp_type(rd16(data + 14));
    case 276:  // SLL2: the protocol first
      return caplen < 2 || ip_or_arp_type(rd16(data));
    case 0:      // BSD loopback: the address family in the capturing host's order, as libpcap
    case 108: {  // reads a file in its own (tm's: native); OpenBSD loopback: network order
      if (caplen < 4) return true;
      uint32_t af;
      std::memcpy(&af, data, 4);
      if (linktype == 108) af = be32toh(af);
      return af == 2 || af == 24 || af == 28 || af == 30;  // IPv4; IPv6 on the BSDs (packet::open_compiler)
    }
    case 9:     // PPP, and PPP in HDLC-like framing: libpcap reads the protocol at 2 (past the address
    case 50: {  // and control bytes) and what it carries at 4, as tm does when both bytes are there
      if (caplen < 2) return true;
      if (data[0] != 0xff || data[1] != 0x03) return false;  // (compressed: tm reads it otherwise)
      if (caplen < 4) return true;
      const uint16_t proto = rd16(data + 2);
      return proto == 0x0021 || proto == 0x0057;  // IPv4, IPv6
    }
    case 104:  // Cisco HDLC: the EtherType at 2
      return caplen < 4 || ip_or_arp_type(rd16(data + 2));
    case 105:    // 802.11, with or without radiotap: radiotap's length, the 802.11 header's from its
    case 127: {  // frame control (24 bytes, 26 with QoS, padded when radiotap says so), then LLC/SNAP
      uint32_t off = 0;
      if (linktype == 127) {
        if (caplen < 4) return true;
        off = rd16le(data + 2);
      }
      if (off + 2 > caplen) return true;
      // libpcap reads no fourth address (to and from the DS) and no HT Control (QoS with the
      // Order bit), which tm does: there the two read the type at different places.
      const uint8_t fc0 = data[off], fc1 = data[off + 1];
      if (((fc0 >> 2) & 3) == 2 && ((fc1 & 3) == 3 || ((fc0 & 0x80) && (fc1 & 0x80)))) return false;
      return p.ethertype == 0 || ip_or_arp_type(p.ethertype);
    }
    case 12:  // raw IP (LINKTYPE_RAW and its aliases)
    case 14:
    case 101:
    case 228:  // raw IPv4
    case 229:  // raw IPv6
      return true;
    default:
      return false;
  }
}

bool libpcap_alike(const Expr& e) {
  switch (e.op) {
    case Expr::Op::kTrue:
      return true;
    case Expr::Op::kPred:
      switch (e.pred.kind) {
        case Predicate::Kind::kHost:
        case Predicate::Kind::kNet:
        case Predicate::Kind::kPort:
        case Predicate::Kind::kPortRange:
        case Predicate::Kind::kProto:
        case Predicate::Kind::kFamily:
        case Predicate::Kind::kArp:
          return e.pred.layer == Predicate::Layer::kAny;
        default:
          return false;
      }
    default:
      for (const Expr& k : e.kids)
        if (!libpcap_alike(k)) return false;
      return true;
  }
}

PacketFilter::PacketFilter(std::string text, const ParseResult& parsed)
    : parsed_(parsed),
      text_size_(text.size()),
      // (Its text compiled by libpcap, too: tm's own aliases, such as `dhcp`, are not libpcap's.
      // Not beyond kLibpcapMaxFilter, whose compile could take minutes: tm's own verdict there.)
      libpcap_alike_((parsed.kind == ParseResult::Kind::kIndexed
                          ? libpcap_alike(parsed.expr)
                          : parsed.split() && libpcap_alike(parsed.planned)) &&
                     text.size() <= kLibpcapMaxFilter && packet::bpf_compile_error(text).empty()),
      // A split filter (ParseResult::split): [kPart] the part libpcap answers, then the whole text
      // only where frames cut short are judged by it (judged_by_libpcap). Otherwise the text.
      bpf_(!parsed.split()  ? std::vector<std::string>{std::move(text)}
           : libpcap_alike_ ? std::vector<std::string>{parsed.libpcap, std::move(text)}
                            : std::vector<std::string>{parsed.libpcap}),
      whole_(parsed.split() ? 1 : 0) {}

bool PacketFilter::judged_by_libpcap(uint32_t linktype, const uint8_t* data, uint32_t caplen,
                                     uint32_t wirelen, bool& hit) {
  if (!libpcap_alike_ || info_.status != packet::DecodeStatus::kTruncated ||  // (the usual frame: at once)
      !cut_frame_for_libpcap(linktype, data, caplen, info_))
    return false;
  const packet::BpfPrograms::Compiled& c = bpf_.for_link(linktype);
  if (!c.error(whole_).empty()) return false;  // (a link type it does not compile for: tm's verdict)
  hit = c.matches(whole_, data, caplen, wirelen);
  return true;
}

bool PacketFilter::matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                           packet::FragmentLayers& frags, uint64_t ts_ns,
                           packet::FragmentLayers::Outcome& outcome) {
  outcome = packet::FragmentLayers::Outcome::kNone;
  if (bpf() && !parsed_.split()) return by_libpcap(whole_, linktype, data, caplen, wirelen);
  packet::decode(linktype, data, caplen, info_);
  outcome = frags.apply(info_, ts_ns);
  return by_tm(linktype, data, caplen, wirelen);
}

bool PacketFilter::matches(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
  if (bpf() && !parsed_.split()) return by_libpcap(whole_, linktype, data, caplen, wirelen);
  packet::decode(linktype, data, caplen, info_);
  return by_tm(linktype, data, caplen, wirelen);
}

bool PacketFilter::by_tm(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
  bool hit;
  // A link type tm does not decode (PFLOG, Token Ring, ...): tm knows nothing of the frame, and
  // libpcap answers the whole filter, as tcpdump would (`host A` matched none of them). A filter
  // of tm's own terms libpcap cannot compile matches none, said by problems().
  if (info_.status == packet::DecodeStatus::kUnsupportedLink) [[unlikely]] {
    const bool too_long = text_size_ > kLibpcapMaxFilter;
    if (!too_long && whole_ < bpf_.size()) return by_libpcap(whole_, linktype, data, caplen, wirelen);
    uncompiled_.try_emplace(linktype,
                            too_long ? fmt::format("libpcap is given at most {} bytes of filter; it has {}",
                                                   kLibpcapMaxFilter, text_size_)
                                     : "its terms of tm's own are not libpcap's");
    return false;
  }
  if (judged_by_libpcap(linktype, data, caplen, wirelen, hit)) return hit;
  if (!bpf()) return query::matches(parsed_.expr, info_);
  // A split filter: tm's terms, then libpcap's.
  return query::matches(parsed_.planned, info_) && by_libpcap(kPart, linktype, data, caplen, wirelen);
}

bool PacketFilter::by_libpcap(size_t i, uint32_t linktype, const uint8_t* data, uint32_t caplen,
                              uint32_t wirelen) {
  const packet::BpfPrograms::Compiled& c = bpf_.for_link(linktype);
  if (!c.error(i).empty()) [[unlikely]]
    uncompiled_.try_emplace(linktype,
                            "libpcap: " + c.error(i));  // (no node built once the link type is noted)
  return c.matches(i, data, caplen, wirelen);
}

std::vector<std::string> PacketFilter::problems() const {
  std::vector<std::string> out;
  for (const auto& [linktype, err] : uncompiled_)
    out.push_back(fmt::format(
        "the filter cannot be applied to packets of link type {}{} ({}): none of them was matched", linktype,
        packet::decodes_link(linktype) ? "" : ", which tm does not decode", err));
  return out;
}

std::string libpcap_filter_error(const std::string& text, const std::set<uint32_t>& links, bool size_cap) {
  if (size_cap && text.size() > kLibpcapMaxFilter)
    return fmt::format(
        "filter: {} bytes, and a part tm does not index (so libpcap compiles it whole): libpcap is given at "
        "most {} (its compile time grows faster than the filter's length); write the rest with tm's own "
        "terms (host, net, port, proto, vlan, ...), which have no such limit",
        text.size(), kLibpcapMaxFilter);
  if (links.empty() || links == std::set<uint32_t>{1}) {
    std::string err = bpf_compile_error(text);
    return err.empty() ? err : fmt::format("filter: {} (libpcap, compiling '{}')", err, text);
  }
  std::string first;  // (the first link type's error)
  for (uint32_t l : links) {
    std::string err = bpf_compile_error(text, l);
    if (err.empty()) return err;
    if (first.empty()) first = err;
  }
  return fmt::format("filter: {} (libpcap, compiling '{}' for link type {}{})", first, text, *links.begin(),
                     links.size() > 1
                         ? fmt::format(", nor for {}", fmt::join(std::next(links.begin()), links.end(), ", "))
                         : std::string());
}

}  // namespace tmach::query
