#include "server/subscription.h"

#include "packet/decoder.h"
#include "query/eval.h"

namespace tmach::server {

Subscriber::Subscriber(const query::QuerySpec& q, size_t max_queue_bytes)
    : q_(q), max_bytes_(max_queue_bytes) {}

Subscriber::~Subscriber() {
  for (auto& [lt, p] : bpf_)
    if (p.second) pcap_freecode(&p.first);
}

bool Subscriber::match(uint32_t linktype, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
  if (q_.parsed.kind == query::ParseResult::Kind::kBpfOnly) {
    auto it = bpf_.find(linktype);
    if (it == bpf_.end()) {
      int dlt = linktype == 101 ? DLT_RAW : static_cast<int>(linktype);
      pcap_t* p = pcap_open_dead_with_tstamp_precision(dlt, 262144, PCAP_TSTAMP_PRECISION_NANO);
      bpf_program prog{};
      bool ok = pcap_compile(p, &prog, q_.text.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
      pcap_close(p);
      it = bpf_.emplace(linktype, std::make_pair(prog, ok)).first;
    }
    return it->second.second && bpf_filter(it->second.first.bf_insns, data, wirelen, caplen) != 0;
  }
  packet::decode(linktype, data, caplen, info_);
  return query::matches(q_.parsed.expr, info_);
}

void Subscriber::offer(uint16_t, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
                       uint32_t caplen) {
  if (!match(linktype, data, caplen, wirelen)) return;
  std::lock_guard lk(mu_);
  if (bytes_ + caplen + 64 > max_bytes_) {
    overflow_++;
    return;
  }
  q_pk_.push_back(
      SubPacket{ts_ns, linktype, wirelen, std::string(reinterpret_cast<const char*>(data), caplen)});
  bytes_ += caplen + 64;
  cv_.notify_one();
}

void Subscriber::take(std::deque<SubPacket>& out, std::chrono::milliseconds wait) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, wait, [&] { return !q_pk_.empty(); });
  delivered_ += q_pk_.size();
  for (auto& p : q_pk_) out.push_back(std::move(p));
  q_pk_.clear();
  bytes_ = 0;
}

}  // namespace tmach::server
