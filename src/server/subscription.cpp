#include "server/subscription.h"

namespace tmach::server {

Subscriber::Subscriber(const query::QuerySpec& q, size_t max_queue_bytes)
    : q_(q), max_bytes_(max_queue_bytes), filter_(q_.text, q_.parsed) {}

Subscriber::~Subscriber() = default;

bool Subscriber::match(uint64_t ts_ns, uint32_t linktype, const uint8_t* data, uint32_t caplen,
                       uint32_t wirelen) {
  packet::FragmentLayers::Outcome o;  // (a fragment that comes before its first one is not held back)
  return filter_.matches(linktype, data, caplen, wirelen, frags_, ts_ns, o);
}

void Subscriber::offer(uint16_t, uint64_t ts_ns, uint32_t linktype, uint32_t wirelen, const uint8_t* data,
                       uint32_t caplen) {
  if (!match(ts_ns, linktype, data, caplen, wirelen)) return;
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
