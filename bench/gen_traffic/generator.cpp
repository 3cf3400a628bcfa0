// gen_traffic: hosts, pools, connections and their scheduling, the run loop (gen_traffic.h).

#include "gen_traffic.h"

namespace gen {

void Generator::make_hosts() {
  std::unordered_set<std::string> seen;
  auto add = [&](Host h) {
    std::string key(reinterpret_cast<const char*>(h.addr), 16);
    if (!seen.insert(key).second) return false;
    const uint32_t idx = static_cast<uint32_t>(hosts_.size());
    h.mac[0] = 0x02;  // locally administered, derived from the index
    h.mac[1] = static_cast<uint8_t>(rng_.next());
    put32(h.mac + 2, idx * 2654435761u);
    const double r = rng_.uni();
    const int base = r < 0.7 ? 64 : r < 0.95 ? 128 : 255;
    h.ttl = static_cast<uint8_t>(base - static_cast<int>(rng_.below(9)));
    h.next_port = static_cast<uint16_t>(rng_.range(32768, 60999));
    h.ts_off = static_cast<uint32_t>(rng_.next());
    h.addr_sum = sum16(h.addr, h.v6 ? 16 : 4);
    by_family_[h.v6].push_back(idx);
    hosts_.push_back(h);
    return true;
  };
  while (static_cast<int>(by_family_[0].size()) < kNumV4Hosts) {
    Host h;
    if (rng_.chance(0.5)) {  // 10.0-31.x.y
      h.addr[0] = 10;
      h.addr[1] = static_cast<uint8_t>(rng_.below(32));
    } else {  // 192.168.0-63.y
      h.addr[0] = 192;
      h.addr[1] = 168;
      h.addr[2] = static_cast<uint8_t>(rng_.below(64));
    }
    if (h.addr[0] == 10) h.addr[2] = static_cast<uint8_t>(rng_.below(256));
    h.addr[3] = static_cast<uint8_t>(rng_.range(1, 254));
    add(h);
  }
  while (static_cast<int>(by_family_[1].size()) < kNumV6Hosts) {
    Host h;
    h.v6 = true;
    const uint8_t pre[] = {0x20, 0x01, 0x0d, 0xb8, 0x00};
    std::memcpy(h.addr, pre, sizeof pre);
    h.addr[5] = static_cast<uint8_t>(rng_.below(16));  // 2001:db8:000s:00xx::hhhh
    h.addr[7] = static_cast<uint8_t>(rng_.below(256));
    h.addr[14] = static_cast<uint8_t>(rng_.below(256));
    h.addr[15] = static_cast<uint8_t>(rng_.range(1, 255));
    add(h);
  }
  // Clients: Zipf(0.8) over all hosts of a family, in random order.
  for (int f = 0; f < 2; ++f) {
    auto& m = by_family_[f];
    for (size_t i = m.size(); i > 1; --i) std::swap(m[i - 1], m[rng_.below(i)]);
    double acc = 0;
    for (size_t i = 0; i < m.size(); ++i) {
      acc += 1.0 / std::pow(static_cast<double>(i + 1), 0.8);
      client_cdf_[f].push_back(acc);
    }
  }
}

void Generator::make_pools() {
  for (int p = 0; p < kNumPools; ++p) {
    for (int f = 0; f < 2; ++f) {
      const auto& fam = by_family_[f];
      int n = f ? std::max(1, kPoolSizes[p] / 5) : kPoolSizes[p] - kPoolSizes[p] / 5;
      auto& m = pools_[p].members[f];
      std::unordered_set<uint32_t> used;
      while (static_cast<int>(m.size()) < n) {
        const uint32_t h = fam[rng_.below(fam.size())];
        if (used.insert(h).second) m.push_back(h);
      }
      double acc = 0;
      for (size_t i = 0; i < m.size(); ++i) {
        acc += 1.0 / static_cast<double>(i + 1);  // Zipf(1)
        pools_[p].cdf[f].push_back(acc);
      }
    }
  }
}

uint32_t Generator::pick_zipf(const std::vector<uint32_t>& m, const std::vector<double>& cdf) {
  const double u = rng_.uni() * cdf.back();
  size_t i = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  return m[std::min(i, m.size() - 1)];
}

void Generator::new_conn(Conn& c) {
  c = Conn{};
  const int udp = rng_.chance(small_ ? kTcpShareSmall : kTcpShare) ? 0 : 1;
  const double u = rng_.uni() * svc_cdf_[udp][kNumServices - 1];
  size_t si = 0;
  while (si + 1 < kNumServices && !(svc_cdf_[udp][si] > u && (kServices[si].proto == 17) == udp)) ++si;
  const Service& sv = kServices[si];
  c.v6 = rng_.chance(kV6Share);
  const int f = c.v6;
  c.sh = pick_zipf(pools_[sv.pool].members[f], pools_[sv.pool].cdf[f]);
  do c.ch = pick_zipf(by_family_[f], client_cdf_[f]);
  while (c.ch == c.sh);
  Host& client = hosts_[c.ch];
  c.cport = client.next_port;
  client.next_port = client.next_port >= 60999 ? 32768 : client.next_port + 1;
  c.sport = static_cast<uint16_t>(sv.port_lo == sv.port_hi ? sv.port_lo : rng_.range(sv.port_lo, sv.port_hi));
  c.proto = sv.proto;
  c.kind = sv.kind;
  c.addr_sum = hosts_[c.ch].addr_sum + hosts_[c.sh].addr_sum;
  c.text = c.kind == kHttp || c.kind == kSyslog || c.sport == 25 || c.sport == 587;
  for (int d = 0; d < 2; ++d) {
    c.ipid[d] = static_cast<uint16_t>(rng_.next());
    c.flow[d] = static_cast<uint32_t>(rng_.next()) & 0xfffff;
    c.seq[d] = static_cast<uint32_t>(rng_.next());
    c.win[d] = static_cast<uint16_t>(rng_.range(250, 2048));
    c.first_seg[d] = true;
  }
  c.start_off = out_.discard ? UINT64_MAX : out_.total;

  // Small-mode payload limits that keep every frame within 64..128 bytes.
  const uint32_t small_tcp = c.v6 ? 42 : 62;  // 128 - 86 / 128 - 66
  const uint32_t small_udp_lo = c.v6 ? 2 : 22, small_udp_hi = c.v6 ? 66 : 86;
  const uint32_t full_udp = c.v6 ? 1452 : 1472;

  double size = 0;  // total payload, for the scheduler weight
  if (c.proto == 6) {
    c.mss = small_ ? static_cast<uint16_t>(small_tcp) : (c.v6 ? 1428 : 1448);
    const double r = rng_.uni();
    c.refused = r < 0.015;
    c.noanswer = r >= 0.015 && r < 0.025;
    c.rst_end = rng_.chance(0.04);
    c.closer = rng_.chance(0.6) ? 1 : 0;
    if (small_) {
      c.rounds_left = static_cast<uint32_t>(rng_.range(1, 4));
      c.tot[0] = c.tot[1] = 0;  // sizes are drawn per round
      size = 150;
    } else {
      const double s = std::min(kSizeCap, rng_.pareto(kParetoMin, shape_));
      const auto total = static_cast<uint64_t>(s);
      size = s;
      c.rounds_left = total < 20000
                          ? (rng_.chance(0.8) ? 1 : 2)
                          : static_cast<uint32_t>(
                                1 + std::min<uint64_t>(7, static_cast<uint64_t>(-std::log2(1 - rng_.uni()))));
      const double t = rng_.uni();
      uint64_t small_side = 0;
      for (uint32_t i = 0; i < c.rounds_left; ++i) small_side += rng_.range(120, 900);
      if (t < 0.83) {  // download: small requests, big responses
        c.tot[0] = std::min(total / 2, small_side + total / 50);
        c.tot[1] = total - c.tot[0];
      } else if (t < 0.95) {  // upload
        c.tot[1] = std::min(total / 2, small_side / 3 + 60);
        c.tot[0] = total - c.tot[1];
      } else {  // balanced (interactive)
        c.tot[0] = static_cast<uint64_t>(static_cast<double>(total) * (0.3 + 0.4 * rng_.uni()));
        c.tot[1] = total - c.tot[0];
      }
      if (rng_.chance(0.03) && c.tot[1] > 0) c.abort_at = 1 + rng_.below(c.tot[1]);
    }
    c.st = kSyn;
  } else {
    c.st = 0;
    switch (c.kind) {
      case kDns: {
        c.name = static_cast<uint16_t>(rng_.below(names_.size()));
        c.dns_id = static_cast<uint16_t>(rng_.next());
        const double r = rng_.uni();
        // extra: bit0 retransmit, bit1 NXDOMAIN, bit2 AAAA, bit3 no answer
        c.extra = static_cast<uint8_t>((r < 0.05 ? 1 : 0) | (r >= 0.05 && r < 0.1 ? 2 : 0) |
                                       (rng_.chance(0.3) ? 4 : 0) | (r >= 0.1 && r < 0.12 ? 8 : 0));
        if (small_ && c.v6) c.extra &= static_cast<uint8_t>(~4);  // AAAA answer would not fit
        size = 150;
        break;
      }
      case kNtp:
        size = 96;
        break;
      case kQuic: {
        const double s = std::min(kSizeCap, rng_.pareto(kParetoMin * 3, shape_));
        c.tot[1] = static_cast<uint64_t>(s);
        c.plmax[0] = static_cast<uint16_t>(rng_.range(30, 60));  // ACK-only packets
        c.plmax[1] = static_cast<uint16_t>(full_udp);
        size = s;
        break;
      }
      default: {  // RTP, syslog, VPN
        if (small_) {
          const uint64_t n = rng_.range(1, 6);
          for (int d = 0; d < 2; ++d)
            c.plmax[d] = static_cast<uint16_t>(rng_.range(small_udp_lo, small_udp_hi));
          if (c.kind == kSyslog) {
            c.tot[0] = n * c.plmax[0];
          } else {
            c.tot[0] = (n + 1) / 2 * c.plmax[0];
            c.tot[1] = n / 2 * c.plmax[1];
          }
          size = 150;
          break;
        }
        const double s = std::min(kSizeCap, rng_.pareto(kParetoMin, shape_));
        const auto total = static_cast<uint64_t>(s);
        size = s;
        if (c.kind == kSyslog) {
          c.tot[0] = total;
          c.plmax[0] = static_cast<uint16_t>(rng_.range(80, 400));
        } else if (c.kind == kRtp) {
          c.tot[0] = total / 2;
          c.tot[1] = total - c.tot[0];
          static constexpr uint16_t kRtpSizes[] = {172, 332, 1200};
          c.plmax[0] = c.plmax[1] = kRtpSizes[rng_.below(3)];
        } else {
          c.tot[1] = total * 7 / 10;
          c.tot[0] = total - c.tot[1];
          c.plmax[0] = static_cast<uint16_t>(rng_.range(100, full_udp));
          c.plmax[1] = static_cast<uint16_t>(full_udp);
        }
        break;
      }
    }
  }
  c.inv_w = 1.0 / (std::pow(std::clamp(size, 300.0, kWeightCapSize), kWeightExp) * (0.5 + rng_.uni()));
}

void Generator::start_round(Conn& c) {
  if (small_) {
    c.rem[0] = rng_.range(1, c.mss);
    c.rem[1] = rng_.chance(0.7) ? rng_.range(1, c.mss) : rng_.range(c.mss + 1, 2 * c.mss);
  } else {
    for (int d = 0; d < 2; ++d) {
      uint64_t r = c.tot[d];
      if (c.rounds_left > 1 && r > 0) {
        r = static_cast<uint64_t>(static_cast<double>(r) * (0.5 + rng_.uni()) / c.rounds_left);
        r = std::clamp<uint64_t>(r, 1, c.tot[d]);
      }
      c.rem[d] = r;
      c.tot[d] -= r;
    }
  }
  c.first_seg[0] = c.first_seg[1] = true;
  --c.rounds_left;
}

// ---------------------------------------------------------------------------------------------
// Frame building. begin_frame writes the pcap record header, Ethernet and IP headers and returns
// a pointer to the frame; l4 points at the transport header.
uint8_t* Generator::begin_frame(Conn& c, int d, uint8_t proto, size_t l4len, size_t& frame, size_t& wire,
                                uint8_t*& l4) {
  const Host& src = hosts_[d == 0 ? c.ch : c.sh];
  const Host& dst = hosts_[d == 0 ? c.sh : c.ch];
  const size_t l3 = c.v6 ? 40 : 20;
  frame = 14 + l3 + l4len;
  wire = std::max<size_t>(frame, 60);  // Ethernet minimum (without FCS): zero padding
  pkt_ = out_.reserve(16 + wire);
  uint8_t* e = pkt_ + 16;
  std::memcpy(e, dst.mac, 6);
  std::memcpy(e + 6, src.mac, 6);
  put16(e + 12, c.v6 ? 0x86dd : 0x0800);
  uint8_t* ip = e + 14;
  if (c.v6) {
    put32(ip, (6u << 28) | c.flow[d]);
    put16(ip + 4, static_cast<uint32_t>(l4len));
    ip[6] = proto;
    ip[7] = src.ttl;
    std::memcpy(ip + 8, src.addr, 16);
    std::memcpy(ip + 24, dst.addr, 16);
  } else {
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, static_cast<uint32_t>(20 + l4len));
    put16(ip + 4, c.ipid[d]++);
    put16(ip + 6, 0x4000);  // DF
    ip[8] = src.ttl;
    ip[9] = proto;
    put16(ip + 10, 0);
    std::memcpy(ip + 12, src.addr, 4);
    std::memcpy(ip + 16, dst.addr, 4);
    put16(ip + 10, fold(sum16(ip, 20)));
  }
  l4 = ip + l3;
  return e;
}

uint32_t Generator::end_frame(size_t frame, size_t wire) {
  if (wire > frame) std::memset(pkt_ + 16 + frame, 0, wire - frame);
  const auto rel = static_cast<uint64_t>(t_ns_ - t0_ns_);
  const uint64_t ts = start_ns_ + (out_.discard ? 0 : rel);
  const auto hdr =
      tmach::util::pcap::record_header(ts, static_cast<uint32_t>(wire), static_cast<uint32_t>(wire));
  std::memcpy(pkt_, &hdr, sizeof(hdr));
  out_.commit(16 + wire);
  t_ns_ += static_cast<double>(wire) * ns_per_byte_;
  if (!out_.discard) {
    ++packets_;
    wire_bytes_ += wire;
  }
  return static_cast<uint32_t>(wire);
}

// Warm-up: account for a frame without building it.
uint32_t Generator::skip_frame(Conn& c, size_t l4len) {
  const size_t wire = std::max<size_t>(14 + (c.v6 ? 40 : 20) + l4len, 60);
  out_.discarded += 16 + wire;
  t_ns_ += static_cast<double>(wire) * ns_per_byte_;
  return static_cast<uint32_t>(wire);
}

// One SYN of the flood: a new connection from a source that never repeats (--flood).
void Generator::emit_flood_syn() {
  const uint64_t i = flood_sent_++;
  const Host& victim = hosts_[by_family_[0][0]];
  const size_t frame = 14 + 20 + 20, wire = 60;
  pkt_ = out_.reserve(16 + wire);
  uint8_t* e = pkt_ + 16;
  std::memcpy(e, victim.mac, 6);
  const uint8_t src_mac[6] = {0x02, 0xf1, 0x00, 0xd0, 0x00, 0x01};
  std::memcpy(e + 6, src_mac, 6);
  put16(e + 12, 0x0800);
  uint8_t* ip = e + 14;
  const uint32_t src = 0xc6120000u | static_cast<uint32_t>(i % 131072);  // 198.18.0.0/15
  const auto sport = static_cast<uint16_t>(1024 + (i / 131072) % 64512);
  ip[0] = 0x45;
  ip[1] = 0;
  put16(ip + 2, 40);
  put16(ip + 4, static_cast<uint32_t>(i));
  put16(ip + 6, 0);
  ip[8] = 250;
  ip[9] = 6;
  put16(ip + 10, 0);
  put32(ip + 12, src);
  std::memcpy(ip + 16, victim.addr, 4);
  put16(ip + 10, fold(sum16(ip, 20)));
  uint8_t* t = ip + 20;
  put16(t, sport);
  put16(t + 2, 80);
  put32(t + 4, static_cast<uint32_t>(i * 2654435761u));
  put32(t + 8, 0);
  t[12] = 5 << 4;
  t[13] = kSynF;
  put16(t + 14, 1024);
  put32(t + 16, 0);
  put16(t + 16, fold(sum16(ip + 12, 8) + 6 + 20 + sum16(t, 20)));
  if (wire > frame) std::memset(e + frame, 0, wire - frame);
  end_frame(frame, wire);
}

// Copies the payload (special bytes first, the rest from the payload block) and returns its sum.
}  // namespace gen
