#include "capture/merge_source.h"

#include <algorithm>
#include <functional>

namespace tmach::capture {

MergeSource::MergeSource(std::vector<std::unique_ptr<PacketSource>> inputs, size_t input_batch)
    : sources_(std::move(inputs)), buf_(sources_.size()) {
  if (sources_.size() > 1)
    for (auto& b : buf_) b.pkts.resize(std::max<size_t>(1, input_batch));
  heap_.reserve(sources_.size());
}

bool MergeSource::refill(uint32_t i) {
  Buffered& b = buf_[i];
  if (b.done) return false;
  b.pos = 0;
  b.n = sources_[i]->next_batch(b.pkts.data(), b.pkts.size());
  if (b.n == 0) b.done = true;
  return b.n > 0;
}

size_t MergeSource::next_batch(RawPacket* out, size_t max, uint32_t* from) {
  if (sources_.size() == 1) {
    if (buf_[0].done) return 0;
    size_t n = sources_[0]->next_batch(out, max);
    if (n == 0) buf_[0].done = true;
    if (from) std::fill(from, from + n, 0u);
    return n;
  }
  // std::*_heap keep the largest element on top: compare with greater<> for the smallest
  // (timestamp, input) pair, which puts an earlier input first on equal timestamps.
  const std::greater<> later;
  // The caller is done with the previous batch: the inputs it exhausted may be read again.
  if (!primed_) {
    primed_ = true;
    for (uint32_t i = 0; i < sources_.size(); ++i) to_refill_.push_back(i);
  }
  for (uint32_t i : to_refill_) {
    if (refill(i)) {
      heap_.emplace_back(buf_[i].pkts[0].ts_ns, i);
      std::push_heap(heap_.begin(), heap_.end(), later);
    }
  }
  to_refill_.clear();
  size_t n = 0;
  while (n < max && !heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const uint32_t i = heap_.back().second;
    Buffered& b = buf_[i];
    if (from) from[n] = i;
    out[n++] = b.pkts[b.pos++];
    if (b.pos < b.n) {
      heap_.back().first = b.pkts[b.pos].ts_ns;
      std::push_heap(heap_.begin(), heap_.end(), later);
    } else {
      // Its next packet is unknown until it is read again, which would invalidate the
      // packets of it already in this batch: the batch ends here.
      heap_.pop_back();
      to_refill_.push_back(i);
      break;
    }
  }
  return n;
}

std::string MergeSource::name() const {
  std::string s;
  for (auto& src : sources_) {
    if (!s.empty()) s += ", ";
    s += src->name();
  }
  return s;
}

void MergeSource::stop() {
  for (auto& src : sources_) src->stop();
}

std::string MergeSource::warning() const {
  std::string s;
  for (auto& src : sources_) {
    std::string w = src->warning();
    if (w.empty()) continue;
    if (!s.empty()) s += "; ";
    s += w;
  }
  return s;
}

}  // namespace tmach::capture
