#include "store/index_keys.h"

#include <cstring>

#include "store/index.h"

namespace tmach::store {
namespace {

void add_addr(IndexKeys& k, const packet::IpAddr& a) {
  // By the 16-byte form, not by the layer's version: an IPv6 header may carry a v4-mapped
  // address, and it must land on the same key as the IPv4 address.
  if (a.is_v4()) {
    std::memcpy(&k.v4[k.n_v4++], a.b.data() + 12, 4);
  } else {
    k.v6[k.n_v6++] = a.b;
  }
}

// The scalar keys of one IP layer, in order, each given to put(uint32_t): the one place that
// decides them, for add_layer_keys() and pack_index_keys()'s fast path.
template <class Put>
void put_layer_scalars(const packet::IpLayer& l, Put&& put) {
  put(kScalarProtoBase + l.proto);
  put(kScalarNetFlag | (l.version == 4 ? kNetV4 : kNetV6));
  if (l.tunnel) put(kScalarNetFlag | (kNetTunnel + l.tunnel));
  if (l.has_ports && packet::port_protocol(l.proto)) {
    put(uint32_t{l.sport});
    put(uint32_t{l.dport});
  }
}

}  // namespace

void add_layer_keys(const packet::IpLayer& l, IndexKeys& k) {
  add_addr(k, l.src);
  add_addr(k, l.dst);
  uint32_t* s = k.scalars + k.n_scalars;
  put_layer_scalars(l, [&s](uint32_t v) { *s++ = v; });
  k.n_scalars = static_cast<uint8_t>(s - k.scalars);
}

bool cut_before_its_keys(const packet::PacketInfo& p) {
  if (p.status != packet::DecodeStatus::kTruncated) return false;
  if (p.ip_count == 0) return !p.arp || !p.arp_addrs;
  const packet::IpLayer& l =
      p.ip[(p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers) -
           1];
  // (An IPv6 chain cut inside an extension header leaves that header's number as the protocol:
  // libpcap reads the next header of a first fragment header, byte 40, for `tcp`.)
  return l.frag_offset == 0 && ((!l.has_ports && packet::port_protocol(l.proto)) ||
                                (l.version == 6 && packet::is_ipv6_extension_header(l.proto)));
}

void index_keys(const packet::PacketInfo& p, IndexKeys& k) {
  k.n_v4 = k.n_v6 = k.n_scalars = 0;
  const int nl =
      p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
  for (int i = 0; i < nl; ++i) add_layer_keys(p.ip[i], k);
  uint32_t* s = k.scalars + k.n_scalars;
  if (p.arp) {  // as the evaluator: `arp` is every ARP/RARP frame, `host` its addresses if read
    if (p.arp_addrs) {
      add_addr(k, p.arp_spa);
      add_addr(k, p.arp_tpa);
    }
    *s++ = kScalarNetFlag | kNetArp;
  }
  if (p.ip_count == 0 && !p.arp) *s++ = kScalarNetFlag | p.ethertype;  // 0 when nothing was decoded
  const int nv = p.vlan_count < packet::PacketInfo::kMaxVlans ? p.vlan_count : packet::PacketInfo::kMaxVlans;
  for (int i = 0; i < nv; ++i) *s++ = kScalarVlanBase + (p.vlans[i] & 0xfffu);
  if (p.vlan_count) *s++ = kScalarVlanBase + 4096;
  if (cut_before_its_keys(p)) *s++ = kScalarNetFlag | kNetCut;
  if (packet::fragmented_layer(p) >= 0) *s++ = kScalarNetFlag | kNetFragment;
  k.n_scalars = static_cast<uint8_t>(s - k.scalars);
}

size_t pack_index_keys(const packet::PacketInfo& p, uint8_t* out) {
  // Most packets: one IP layer of two IPv4 addresses, nothing else — what index_keys() makes
  // of them (its two addresses, then put_layer_scalars()), written in the packed form directly.
  if (p.ip_count == 1 && !p.arp && p.vlan_count == 0 && !p.ip[0].fragment &&
      (p.status != packet::DecodeStatus::kTruncated || !cut_before_its_keys(p)) && p.ip[0].src.is_v4() &&
      p.ip[0].dst.is_v4()) {
    std::memcpy(out + 4, p.ip[0].src.b.data() + 12, 4);
    std::memcpy(out + 8, p.ip[0].dst.b.data() + 12, 4);
    uint8_t* s = out + 12;
    put_layer_scalars(p.ip[0], [&s](uint32_t v) {
      std::memcpy(s, &v, 4);
      s += 4;
    });
    out[0] = 2;
    out[1] = 0;
    out[2] = static_cast<uint8_t>((s - (out + 12)) / 4);
    out[3] = 0;
    return static_cast<size_t>(s - out);
  }
  // The rest (IPv6, tunnels, VLANs, ARP, other frames): through index_keys().
  IndexKeys k;
  index_keys(p, k);
  k.pack(out);
  return k.packed_bytes();
}

// pack()/unpack() run once per stored packet on each side of the ring, with a handful of
// keys: element-wise copies of fixed size, which compile to plain moves (a memcpy of variable
// length became `rep movs`, whose start-up cost was most of their time).
void IndexKeys::pack(uint8_t* out) const {
  out[0] = n_v4;
  out[1] = n_v6;
  out[2] = n_scalars;
  out[3] = 0;
  uint8_t* o = out + 4;
  for (int i = 0; i < n_v4; ++i, o += 4) std::memcpy(o, &v4[i], 4);
  for (int i = 0; i < n_v6; ++i, o += 16) std::memcpy(o, v6[i].data(), 16);
  for (int i = 0; i < n_scalars; ++i, o += 4) std::memcpy(o, &scalars[i], 4);
}

void IndexKeys::pack_with_slack(uint8_t* out) const {
  constexpr int kV4Block = 2, kScalarBlock = 8;
  out[0] = n_v4;
  out[1] = n_v6;
  out[2] = n_scalars;
  out[3] = 0;
  uint8_t* o = out + 4;
  // (the blocks may copy entries past the counts: bytes the form does not cover)
  std::memcpy(o, v4, 4 * kV4Block);
  for (int i = kV4Block; i < n_v4; ++i) std::memcpy(o + 4 * i, &v4[i], 4);
  o += 4 * size_t{n_v4};
  for (int i = 0; i < n_v6; ++i, o += 16) std::memcpy(o, v6[i].data(), 16);
  std::memcpy(o, scalars, 4 * kScalarBlock);
  for (int i = kScalarBlock; i < n_scalars; ++i) std::memcpy(o + 4 * i, &scalars[i], 4);
  // The furthest byte written: 4 + max(8, 4 * n_v4) + 16 * n_v6 + max(32, 4 * n_scalars).
  static_assert(4 + 4 * kV4Block + 16 * kMaxAddrs + 4 * kScalarBlock <= kMaxPackedBytes);
  static_assert(kV4Block <= kMaxAddrs && kScalarBlock <= kMaxScalars);
}

bool IndexKeys::unpack(const uint8_t* in, size_t avail) {
  n_v4 = n_v6 = n_scalars = 0;
  KeysView v;
  if (!v.read(in, avail)) return false;
  for (int i = 0; i < v.n_v4; ++i) std::memcpy(&v4[i], v.v4 + 4 * i, 4);
  for (int i = 0; i < v.n_v6; ++i) std::memcpy(v6[i].data(), v.v6 + 16 * i, 16);
  for (int i = 0; i < v.n_scalars; ++i) std::memcpy(&scalars[i], v.scalars + 4 * i, 4);
  n_v4 = v.n_v4;
  n_v6 = v.n_v6;
  n_scalars = v.n_scalars;
  return true;
}

}  // namespace tmach::store
