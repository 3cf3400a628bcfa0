// gen_traffic: the frames of each kind of traffic (TCP, UDP, DNS, HTTP, the SYN flood).

#include "gen_traffic.h"

namespace gen {

static uint64_t fill_payload(uint8_t* p, uint32_t plen, const uint8_t* special, size_t special_len,
                             const PayloadBlock& blk, Rng& rng, bool text) {
  uint64_t s = 0;
  size_t k = std::min<size_t>(special ? special_len : 0, plen);
  if (k) {
    std::memcpy(p, special, k);
    s = sum16(p, k);
    if ((k & 1) && k < plen) {  // keep the block part word-aligned
      p[k] = ' ';
      s += uint32_t{' '};
      ++k;
    }
  }
  if (k < plen) {
    const size_t off = blk.offset(rng, text);
    std::memcpy(p + k, blk.data.data() + off, plen - k);
    s += blk.sum(off, plen - k);
  }
  return s;
}

uint32_t Generator::emit_tcp(Conn& c, int d, uint8_t flags, uint32_t plen, const uint8_t* special,
                             size_t special_len) {
  const bool syn = flags & kSynF;
  const size_t thl = syn ? 40 : 32;
  if (out_.discard) {
    c.seq[d] += plen + ((flags & (kSynF | kFinF)) ? 1 : 0);
    c.sent[d] += plen;
    return skip_frame(c, thl + plen);
  }
  size_t frame, wire;
  uint8_t* t;
  begin_frame(c, d, 6, thl + plen, frame, wire, t);
  const Host& src = hosts_[d == 0 ? c.ch : c.sh];
  const Host& dst = hosts_[d == 0 ? c.sh : c.ch];
  put16(t, d == 0 ? c.cport : c.sport);
  put16(t + 2, d == 0 ? c.sport : c.cport);
  put32(t + 4, c.seq[d]);
  const bool ack = flags & kAckF;
  put32(t + 8, ack ? c.seq[1 - d] : 0);
  t[12] = static_cast<uint8_t>((thl / 4) << 4);
  t[13] = flags;
  put16(t + 14, syn ? (c.v6 ? 64800 : 64240) : c.win[d]);
  put32(t + 16, 0);  // checksum, urgent pointer
  const auto ms = static_cast<uint32_t>(t_ns_ / 1e6);
  const uint32_t tsval = src.ts_off + ms;
  const uint32_t tsecr = (syn && !ack) ? 0 : dst.ts_off + ms - 1;
  uint8_t* o = t + 20;
  if (syn) {  // MSS, SACK permitted, timestamps, NOP, window scale (Linux order)
    o[0] = 2;
    o[1] = 4;
    put16(o + 2, c.mss);
    o[4] = 4;
    o[5] = 2;
    o[6] = 8;
    o[7] = 10;
    put32(o + 8, tsval);
    put32(o + 12, tsecr);
    o[16] = 1;
    o[17] = 3;
    o[18] = 3;
    o[19] = 7;
  } else {  // NOP, NOP, timestamps
    o[0] = 1;
    o[1] = 1;
    o[2] = 8;
    o[3] = 10;
    put32(o + 4, tsval);
    put32(o + 8, tsecr);
  }
  uint64_t s = c.addr_sum + 6 + thl + plen;
  if (plen) s += fill_payload(t + thl, plen, special, special_len, block_, rng_, c.text);
  s += sum16(t, thl);
  put16(t + 16, fold(s));
  c.seq[d] += plen + ((flags & (kSynF | kFinF)) ? 1 : 0);
  c.sent[d] += plen;
  return end_frame(frame, wire);
}

uint32_t Generator::emit_udp(Conn& c, int d, uint32_t plen, const uint8_t* special, size_t special_len) {
  if (out_.discard) {
    c.sent[d] += plen;
    return skip_frame(c, 8 + plen);
  }
  size_t frame, wire;
  uint8_t* u;
  begin_frame(c, d, 17, 8 + plen, frame, wire, u);
  put16(u, d == 0 ? c.cport : c.sport);
  put16(u + 2, d == 0 ? c.sport : c.cport);
  put16(u + 4, 8 + plen);
  put16(u + 6, 0);
  uint64_t s = c.addr_sum + 17 + 2 * (8 + plen) + (d == 0 ? c.cport + c.sport : c.sport + c.cport);
  if (plen) s += fill_payload(u + 8, plen, special, special_len, block_, rng_, c.text);
  uint16_t cs = fold(s);
  if (cs == 0) cs = 0xffff;
  put16(u + 6, cs);
  c.sent[d] += plen;
  return end_frame(frame, wire);
}

size_t Generator::dns_message(Conn& c, bool response, uint8_t* p) {
  put16(p, c.dns_id);
  const bool nx = c.extra & 2, aaaa = c.extra & 4;
  put16(p + 2, response ? (nx ? 0x8183 : 0x8180) : 0x0100);
  put16(p + 4, 1);
  put16(p + 6, response && !nx ? 1 : 0);
  put32(p + 8, 0);
  size_t o = 12 + encode_qname(names_[c.name], p + 12);
  put16(p + o, aaaa ? 28 : 1);
  put16(p + o + 2, 1);
  o += 4;
  if (response && !nx) {
    put16(p + o, 0xc00c);
    put16(p + o + 2, aaaa ? 28 : 1);
    put16(p + o + 4, 1);
    put32(p + o + 6, 300);
    put16(p + o + 10, aaaa ? 16 : 4);
    o += 12;
    const uint32_t h = c.name * 2654435761u;
    if (aaaa) {
      const uint8_t pre[] = {0x20, 0x01, 0x0d, 0xb8, 0x0f, 0xff, 0, 0, 0, 0, 0, 0};
      std::memcpy(p + o, pre, sizeof pre);
      put32(p + o + 12, h);
      o += 16;
    } else {
      put32(p + o, 0xc6336400u | (h >> 24));  // 198.51.100.x
      o += 4;
    }
  }
  return o;
}

// The start of an HTTP message of msg bytes: a GET request padded with a cookie to exactly msg
// bytes, a POST with a body, or a response with a body. Returns 0 if msg is too small.
size_t Generator::http_header(const Conn& c, int d, uint64_t msg, char* out) {
  const unsigned path = c.seq[d] & 0xffff;
  int n = 0;
  if (d == 0 && msg <= 1400) {
    n = std::snprintf(out, 200,
                      "GET /item/%u HTTP/1.1\r\nHost: www.example.com\r\n"
                      "User-Agent: tm-bench\r\nCookie: s=",
                      path);
    if (static_cast<uint64_t>(n) + 4 > msg) return 0;
    for (; static_cast<uint64_t>(n) + 4 < msg; ++n) out[n] = static_cast<char>('a' + n % 26);
    std::memcpy(out + n, "\r\n\r\n", 4);
    return static_cast<size_t>(n) + 4;
  }
  // Content-Length = msg - header length; the header length depends on its digits.
  for (int digits = 1; digits <= 20; ++digits) {
    uint64_t body = 0;
    for (int pass = 0; pass < 2; ++pass) {
      n = d == 0 ? std::snprintf(out, 200,
                                 "POST /upload/%u HTTP/1.1\r\nHost: www.example.com\r\n"
                                 "Content-Length: %llu\r\n\r\n",
                                 path, static_cast<unsigned long long>(body))
                 : std::snprintf(out, 200,
                                 "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                 "Content-Length: %llu\r\n\r\n",
                                 static_cast<unsigned long long>(body));
      if (static_cast<uint64_t>(n) > msg) return 0;
      body = msg - static_cast<uint64_t>(n);
    }
    if (static_cast<uint64_t>(n) + body == msg) return static_cast<size_t>(n);
  }
  return 0;
}

bool Generator::step(Conn& c, uint32_t& len) { return c.proto == 6 ? step_tcp(c, len) : step_udp(c, len); }

bool Generator::step_tcp(Conn& c, uint32_t& len) {
  switch (c.st) {
    case kSyn:
      len = emit_tcp(c, 0, kSynF, 0);
      if (c.noanswer) {
        finish(c, false);
        return false;
      }
      c.st = c.refused ? kRefused : kSynAck;
      return true;
    case kSynAck:
      len = emit_tcp(c, 1, kSynF | kAckF, 0);
      c.st = kAck3;
      return true;
    case kAck3:
      len = emit_tcp(c, 0, kAckF, 0);
      c.st = kData;
      start_round(c);
      return true;
    case kRefused:
      c.seq[1] = 0;
      len = emit_tcp(c, 1, kRstF | kAckF, 0);
      finish(c, false);
      return false;
    case kData: {
      if (c.ack_pending) {
        c.ack_pending = false;
        len = emit_tcp(c, c.ack_dir, kAckF, 0);
        return true;
      }
      if (c.abort_at && c.sent[1] >= c.abort_at) {
        len = emit_tcp(c, 0, kRstF | kAckF, 0);
        finish(c, false);
        return false;
      }
      while (c.rem[0] == 0 && c.rem[1] == 0) {
        if (c.rounds_left == 0) {
          c.st = c.rst_end ? kRstEnd : kFin1;
          return step_tcp(c, len);
        }
        start_round(c);
      }
      const int d = c.rem[0] > 0 ? 0 : 1;
      const auto plen = static_cast<uint32_t>(std::min<uint64_t>(c.rem[d], c.mss));
      c.rem[d] -= plen;
      uint8_t flags = kAckF | (c.rem[d] == 0 ? kPshF : 0);
      if (c.kind == kHttp && c.first_seg[d] && !small_) {
        char hdr[1600];
        const size_t n = http_header(c, d, c.rem[d] + plen, hdr);
        len = emit_tcp(c, d, flags, plen, reinterpret_cast<const uint8_t*>(hdr), n);
      } else if (c.first_seg[d] && (c.sport == 25 || c.sport == 587) && d == 1 && !small_) {
        static constexpr char kBanner[] = "220 mail.example.com ESMTP ready\r\n";
        len = emit_tcp(c, d, flags, plen, reinterpret_cast<const uint8_t*>(kBanner), sizeof kBanner - 1);
      } else {
        len = emit_tcp(c, d, flags, plen);
      }
      c.first_seg[d] = false;
      ++c.unacked;
      const bool other_sends_next = c.rem[d] == 0 && c.rem[1 - d] > 0;
      if ((c.unacked >= 2 || c.rem[d] == 0) && !other_sends_next) {
        c.ack_pending = true;
        c.ack_dir = static_cast<uint8_t>(1 - d);
      }
      if (c.ack_pending || other_sends_next) c.unacked = 0;
      return true;
    }
    case kFin1:
      len = emit_tcp(c, c.closer, kFinF | kAckF, 0);
      c.st = kFin2;
      return true;
    case kFin2:
      len = emit_tcp(c, 1 - c.closer, kFinF | kAckF, 0);
      c.st = kFin3;
      return true;
    case kFin3:
      len = emit_tcp(c, c.closer, kAckF, 0);
      finish(c, true);
      return false;
    case kRstEnd:
      len = emit_tcp(c, c.closer, kRstF | kAckF, 0);
      finish(c, true);
      return false;
  }
  return false;
}

bool Generator::step_udp(Conn& c, uint32_t& len) {
  uint8_t msg[1300];
  switch (c.kind) {
    case kDns: {
      // st 0: query; st 1: retransmitted query (bit0) or response; st 2: response.
      if (c.st == 0 || (c.st == 1 && (c.extra & 1))) {
        const size_t n = dns_message(c, false, msg);
        len = emit_udp(c, 0, static_cast<uint32_t>(n), msg, n);
        ++c.st;
        if (c.st == 1 && (c.extra & 8)) {  // never answered
          finish(c, false);
          return false;
        }
        return true;
      }
      const size_t n = dns_message(c, true, msg);
      len = emit_udp(c, 1, static_cast<uint32_t>(n), msg, n);
      finish(c, true);
      return false;
    }
    case kNtp: {
      std::memset(msg, 0, 48);
      msg[0] = c.st == 0 ? 0x23 : 0x24;  // v4, mode client / server
      if (c.st == 1) msg[1] = 2;         // stratum
      put32(msg + 40, static_cast<uint32_t>(start_ns_ / 1000000000u + 2208988800u));
      len = emit_udp(c, c.st, 48, msg, 48);
      if (c.st++ == 0) return true;
      finish(c, true);
      return false;
    }
    case kQuic:
      if (c.st == 0) {  // client Initial, padded to 1200 bytes
        std::memset(msg, 0, 1200);
        msg[0] = 0xc3;
        put32(msg + 1, 1);  // QUIC version 1
        msg[5] = 8;
        for (int i = 0; i < 8; ++i) msg[6 + i] = static_cast<uint8_t>(rng_.next());
        len = emit_udp(c, 0, 1200, msg, 14);
        c.st = 1;
        c.rem[1] = c.tot[1];
        return true;
      }
      if (c.ack_pending) {
        c.ack_pending = false;
        msg[0] = 0x40 | static_cast<uint8_t>(rng_.below(64));  // short header
        len = emit_udp(c, 0, c.plmax[0], msg, 1);
        if (c.rem[1] == 0) {
          finish(c, true);
          return false;
        }
        return true;
      }
      {
        const auto plen = static_cast<uint32_t>(std::min<uint64_t>(c.rem[1], c.plmax[1]));
        msg[0] = 0x40 | static_cast<uint8_t>(rng_.below(64));
        len = emit_udp(c, 1, plen, msg, 1);
        c.rem[1] -= plen;
        if (++c.unacked >= 4 || c.rem[1] == 0) {
          c.unacked = 0;
          c.ack_pending = true;
        }
        if (c.rem[1] == 0 && !c.ack_pending) {
          finish(c, true);
          return false;
        }
        return true;
      }
    default: {  // RTP, syslog, VPN: packets in both directions, chosen by remaining packets
      if (c.st == 0) {
        c.rem[0] = c.tot[0];
        c.rem[1] = c.tot[1];
        c.st = 1;
      }
      if (c.rem[0] == 0 && c.rem[1] == 0) c.rem[0] = 1;  // degenerate: one tiny packet
      auto npk = [&](int k) {
        return c.rem[k] == 0 ? 0.0 : static_cast<double>((c.rem[k] + c.plmax[k] - 1) / c.plmax[k]);
      };
      const double n0 = npk(0), n1 = npk(1);
      const int d = rng_.uni() * (n0 + n1) < n0 ? 0 : 1;
      auto plen = static_cast<uint32_t>(std::min<uint64_t>(c.rem[d], c.plmax[d]));
      c.rem[d] -= plen;
      if (small_) plen = std::max<uint32_t>(plen, c.v6 ? 2 : 22);
      if (c.kind == kSyslog) {
        const int n = std::snprintf(reinterpret_cast<char*>(msg), 64,
                                    "<134>Nov 14 22:13:20 h%u app: ", static_cast<unsigned>(c.ch % 1000));
        len = emit_udp(c, d, plen, msg, static_cast<size_t>(n));
      } else {
        len = emit_udp(c, d, plen);
      }
      if (c.rem[0] == 0 && c.rem[1] == 0) {
        finish(c, true);
        return false;
      }
      return true;
    }
  }
}

// Bookkeeping when a connection ends: candidate for the reported mid-sized TCP connection.
void Generator::finish(const Conn& c, bool completed) {
  if (c.proto != 6 || !completed || c.start_off == UINT64_MAX) return;
  const uint64_t size = c.sent[0] + c.sent[1];
  const uint64_t mid = target_ / 2;
  const uint64_t dist = c.start_off > mid ? c.start_off - mid : mid - c.start_off;
  Pick p{true, c.ch, c.sh, c.cport, c.sport, size, dist};
  if (size >= kMidMin && size <= kMidMax && (!mid_.valid || dist < mid_.dist)) mid_ = p;
  if (!any_.valid || size > any_.size || (size == any_.size && dist < any_.dist)) any_ = p;
}

// 4-ary min-heap of (virtual finish time, slot): the root is the connection that sends next.
// sift_down moves the hole to a leaf along the smallest children (branch-free), then sifts the
// entry up from there (Floyd); an updated root key usually belongs near the bottom.
void Generator::sift_down(size_t i) {
  const size_t n = hkey_.size();
  double* k = hkey_.data();
  uint32_t* s = hslot_.data();
  const double ek = k[i];
  const uint32_t es = s[i];
  const size_t top = i;
  for (;;) {
    const size_t c = 4 * i + 1;
    size_t m;
    if (c + 3 < n) {
      const size_t a = c + (k[c + 1] < k[c] ? 1 : 0);
      const size_t b = c + 2 + (k[c + 3] < k[c + 2] ? 1 : 0);
      m = k[b] < k[a] ? b : a;
    } else {
      if (c >= n) break;
      m = c;
      for (size_t j = c + 1; j < n; ++j)
        if (k[j] < k[m]) m = j;
    }
    k[i] = k[m];
    s[i] = s[m];
    i = m;
  }
  while (i > top) {
    const size_t p = (i - 1) / 4;
    if (!(ek < k[p])) break;
    k[i] = k[p];
    s[i] = s[p];
    i = p;
  }
  k[i] = ek;
  s[i] = es;
}

void Generator::run(int fd, uint64_t target) {
  target_ = target;
  out_.fd = fd;
  // pcap global header, nanosecond resolution
  tmach::util::pcap::FileHeader gh;  // LINKTYPE_ETHERNET
  gh.snaplen = 65535;
  std::memcpy(out_.reserve(sizeof(gh)), &gh, sizeof(gh));
  out_.commit(sizeof(gh));
  out_.flush();

  out_.discard = true;
  conns_.resize(kActiveConns);
  hkey_.resize(kActiveConns);
  hslot_.resize(kActiveConns);
  for (uint32_t i = 0; i < kActiveConns; ++i) {
    new_conn(conns_[i]);
    hkey_[i] = rng_.uni() * 100.0 * conns_[i].inv_w;
    hslot_[i] = i;
  }
  for (size_t i = kActiveConns / 4 + 1; i-- > 0;) sift_down(i);

  while (out_.total < target) {
    Conn& c = conns_[hslot_[0]];
    const bool counted = !out_.discard;
    uint32_t len = 0;
    const bool alive = step(c, len);
    if (counted && flood_ > 0) {
      for (flood_acc_ += flood_; flood_acc_ >= 1 && out_.total < target; flood_acc_ -= 1) emit_flood_syn();
    }
    if (counted && c.pkts_out++ == 0) {
      ++conns_seen_;
      if (c.proto == 6 && !first_.valid) first_ = {true, c.ch, c.sh, c.cport, c.sport, 0, 0};
      ++(c.proto == 6 ? tcp_seen_ : udp_seen_);
      v6_seen_ += c.v6;
    }
    if (alive) {
      hkey_[0] += len * c.inv_w;
    } else {
      const double now = hkey_[0];
      new_conn(c);
      hkey_[0] = now + rng_.uni() * 80.0 * c.inv_w;
    }
    sift_down(0);
    if (out_.discard && out_.discarded >= (small_ ? kWarmupBytesSmall : kWarmupBytes)) {
      out_.flush();  // drops the buffer
      out_.discard = false;
      t0_ns_ = t_ns_;
      for (auto& cc : conns_) cc.pkts_out = 0;
    }
  }
  out_.flush();
}

void Generator::report() const {
  const double dur = t_ns_ - t0_ns_;
  std::printf("packets: %llu\n", static_cast<unsigned long long>(packets_));
  std::printf("bytes: %llu\n", static_cast<unsigned long long>(out_.total));
  std::printf("wire-bytes: %llu\n", static_cast<unsigned long long>(wire_bytes_));
  std::printf("connections: %llu\n", static_cast<unsigned long long>(conns_seen_));
  std::printf("tcp-connections: %llu\n", static_cast<unsigned long long>(tcp_seen_));
  std::printf("udp-connections: %llu\n", static_cast<unsigned long long>(udp_seen_));
  std::printf("ipv6-connections: %llu\n", static_cast<unsigned long long>(v6_seen_));
  if (flood_ > 0) std::printf("flood-connections: %llu\n", static_cast<unsigned long long>(flood_sent_));
  std::printf("duration-seconds: %.6f\n", dur / 1e9);
  std::printf("first-ts: %llu.%09llu\n", static_cast<unsigned long long>(start_ns_ / 1000000000u),
              static_cast<unsigned long long>(start_ns_ % 1000000000u));
  const Pick& p = mid_.valid ? mid_ : any_.valid ? any_ : first_;
  if (p.valid) {
    std::printf("conn: tcp %s %u %s %u\n", addr_str(hosts_[p.ch]).c_str(), p.cport,
                addr_str(hosts_[p.sh]).c_str(), p.sport);
    std::printf("conn-payload-bytes: %llu\n", static_cast<unsigned long long>(p.size));
    std::printf("host: %s\n", addr_str(hosts_[p.ch]).c_str());
  }
}
}  // namespace gen
