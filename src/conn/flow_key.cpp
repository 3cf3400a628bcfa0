#include "conn/flow_key.h"

#include <bit>
#include <cstddef>

#include "packet/hash_mix.h"

namespace tmach::conn {

using packet::mix;
using packet::mix_addr;
namespace {

// Ids that are the same in both directions of a tunnel (see flow_key.h).
bool symmetric_id(uint8_t kind) {
  return kind == packet::kTunnelVxlan || kind == packet::kTunnelGeneve || kind == packet::kTunnelGre;
}

// The outer layers' path, unfinished (see flow_key.h); `n` layers, the last one inner.
uint64_t path_mix(const packet::PacketInfo& p, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i + 1 < n; ++i) {
    const packet::IpLayer& l = p.ip[i];
    const bool src_first = l.src < l.dst;
    h = mix_addr(h, src_first ? l.src : l.dst);
    h = mix_addr(h, src_first ? l.dst : l.src);
    const packet::IpLayer& next = p.ip[i + 1];
    h = mix(h, uint64_t{next.tunnel} << 32 | (symmetric_id(next.tunnel) ? next.tunnel_id : 0u));
  }
  return h;
}

uint32_t finish(uint64_t h) {
  uint32_t t = static_cast<uint32_t>(h ^ (h >> 32));
  return t ? t : 1;  // 0 means "not tunnelled"
}

int layer_count(const packet::PacketInfo& p) {
  return p.ip_count < packet::PacketInfo::kMaxIpLayers ? p.ip_count : packet::PacketInfo::kMaxIpLayers;
}

// tunnel_hash() with the SA named `sa` (the SPI itself, or its pair's name) when `with_sa`.
uint32_t tunnel_hash_sa(const packet::PacketInfo& p, bool with_sa, uint32_t sa) {
  const int n = layer_count(p);
  if (n == 0 || (n == 1 && !with_sa)) return 0;
  uint64_t h = path_mix(p, n);
  if (with_sa) h = mix(h, 0x5350490000000000ull | sa);
  return finish(h);
}

static_assert(std::endian::native == std::endian::little, "key_of() builds FlowKey's words in registers");
static_assert(offsetof(FlowKey, port_a) == 32 && offsetof(FlowKey, port_b) == 34 &&
              offsetof(FlowKey, proto) == 36 && offsetof(FlowKey, tunnel) == 40);

// The key is built as the six words that hash_key() reads, in registers, and stored a word
// at a time from them. (Copied out of an array, the words went through the stack: GCC paired
// them into 16-byte copies, loads that the two 8-byte stores before them cannot forward, a
// stall of the capture thread on every packet; perf put a quarter of key_of's samples there.)
[[gnu::always_inline]] inline void key_of(const packet::IpLayer& l, uint32_t tunnel, uint16_t sp, uint16_t dp,
                                          KeyedPacket& kp) {
  const uint64_t s0 = l.src.word(0), s1 = l.src.word(1), d0 = l.dst.word(0), d1 = l.dst.word(1);
  // Order the endpoints so both directions give the same key: source first when its address
  // is below the destination's (bytewise, i.e. as big-endian numbers), or equal with the
  // lower port. Without branches: which side comes first is a coin flip per packet.
  using u128 = unsigned __int128;
  const u128 s = u128{__builtin_bswap64(s0)} << 64 | __builtin_bswap64(s1);
  const u128 d = u128{__builtin_bswap64(d0)} << 64 | __builtin_bswap64(d1);
  const bool src_first = (s < d) | ((s == d) & (sp <= dp));
  const uint64_t m = uint64_t{0} - src_first;  // all ones when the source comes first
  const uint64_t a0 = d0 ^ ((s0 ^ d0) & m), a1 = d1 ^ ((s1 ^ d1) & m);
  const uint64_t b0 = s0 ^ ((s0 ^ d0) & m), b1 = s1 ^ ((s1 ^ d1) & m);
  const uint64_t pa = dp ^ ((uint64_t{sp} ^ dp) & m), pb = sp ^ ((uint64_t{sp} ^ dp) & m);
  const uint64_t w4 = (pa & 0xffff) | (pb & 0xffff) << 16 | uint64_t{l.proto} << 32;  // pad 37..39 = 0
  auto* out = reinterpret_cast<uint8_t*>(&kp.key);
  auto put = [](uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); };
  put(out, a0);
  put(out + 8, a1);
  put(out + 16, b0);
  put(out + 24, b1);
  put(out + 32, w4);
  kp.key.tunnel = tunnel;
  kp.src_is_a = src_first;
  kp.orphan_fragment = false;
  kp.sa_partner = 0;
  const uint64_t w[6] = {a0, a1, b0, b1, w4, tunnel};
  kp.hash = hash_words(w);
}

KeyedPacket key_of(const packet::IpLayer& l, uint32_t tunnel, uint16_t sp, uint16_t dp) {
  KeyedPacket kp;
  key_of(l, tunnel, sp, dp, kp);
  return kp;
}

}  // namespace

uint32_t tunnel_hash(const packet::PacketInfo& p) {
  const int n = layer_count(p);
  if (n == 0) return 0;
  const packet::IpLayer& in = p.ip[n - 1];
  return tunnel_hash_sa(p, has_sa(in), in.spi);
}

uint32_t path_hash(const packet::PacketInfo& p) {
  const int n = layer_count(p);
  return n > 1 ? finish(path_mix(p, n)) : 0;
}

std::optional<KeyedPacket> make_sa_key(const packet::PacketInfo& p, uint32_t sa) {
  const packet::IpLayer* l = p.inner();
  if (!l) return std::nullopt;
  return key_of(*l, tunnel_hash_sa(p, true, sa), 0, 0);
}

// tunnel_hash(p) for p's inner layer `l`: one plain layer without an SA (most packets) is 0
// without the call.
static uint32_t tunnel_of(const packet::PacketInfo& p, const packet::IpLayer& l) {
  return p.ip_count == 1 && !has_sa(l) ? 0 : tunnel_hash(p);
}

std::optional<KeyedPacket> make_key(const packet::PacketInfo& p, uint16_t sp, uint16_t dp) {
  const packet::IpLayer* l = p.inner();
  if (!l) return std::nullopt;
  return key_of(*l, tunnel_of(p, *l), sp, dp);
}

bool make_key(const packet::PacketInfo& p, KeyedPacket& out) {
  const packet::IpLayer* l = p.inner();
  if (!l) return false;
  // The body of make_key(p, sp, dp) rather than a call to it, and key_of() inlined (one call
  // site): two calls less per packet.
  const bool ports = l->has_ports;
  key_of(*l, tunnel_of(p, *l), ports ? l->sport : uint16_t{0}, ports ? l->dport : uint16_t{0}, out);
  return true;
}

std::optional<KeyedPacket> make_key(const packet::PacketInfo& p) {
  KeyedPacket kp;
  if (!make_key(p, kp)) return std::nullopt;
  return kp;
}

}  // namespace tmach::conn
