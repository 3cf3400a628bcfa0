#include "cluster/pcap_merge.h"

namespace tmach::cluster {

bool PacketQueue::push(MergePacket&& p) {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return cancelled_ || q_.empty() || bytes_ < max_; });
  if (cancelled_) return false;
  bytes_ += p.data.size() + sizeof(MergePacket);
  q_.push_back(std::move(p));
  cv_.notify_all();
  return true;
}

void PacketQueue::close() {
  std::lock_guard lk(mu_);
  closed_ = true;
  cv_.notify_all();
}

void PacketQueue::cancel() {
  std::lock_guard lk(mu_);
  cancelled_ = true;
  closed_ = true;
  q_.clear();
  bytes_ = 0;
  cv_.notify_all();
}

bool PacketQueue::wait_head(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(mu_);
  cv_.wait_until(lk, deadline, [&] { return !q_.empty() || closed_; });
  return !q_.empty();
}

MergePacket PacketQueue::pop() {
  std::lock_guard lk(mu_);
  MergePacket p = std::move(q_.front());
  q_.pop_front();
  bytes_ -= p.data.size() + sizeof(MergePacket);
  cv_.notify_all();
  return p;
}

bool PacketQueue::closed_and_empty() const {
  std::lock_guard lk(mu_);
  return closed_ && q_.empty();
}

size_t PacketQueue::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

std::optional<size_t> merge_next(std::vector<PacketQueue*>& qs, std::chrono::steady_clock::duration stall,
                                 std::vector<size_t>* timed_out) {
  auto deadline = std::chrono::steady_clock::now() + stall;
  std::optional<size_t> best;
  for (size_t i = 0; i < qs.size(); ++i) {
    PacketQueue* q = qs[i];
    if (!q) continue;
    if (!q->wait_head(deadline)) {
      if (!q->closed_and_empty()) {  // still open, no packet within the limit: stuck
        q->cancel();
        if (timed_out) timed_out->push_back(i);
      }
      qs[i] = nullptr;  // exhausted (or given up): out of the merge
      continue;
    }
    if (!best || q->head().ts_ns < qs[*best]->head().ts_ns) best = i;
  }
  return best;
}

}  // namespace tmach::cluster
