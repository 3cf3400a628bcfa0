// Several capture files read as one timeline: a k-way merge by timestamp (as mergecap does).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "capture/source.h"

namespace tmach::capture {

// Hands out the packets of its inputs in timestamp order; packets with equal timestamps come
// in input order (an earlier input first), and one input's packets keep their order within
// it (a file whose timestamps go backwards is not sorted). Each input keeps its own link
// type per packet. A single input is passed through as it is.
//
// The packets of a batch point into the inputs' own batches, which stay valid only until
// the next next_batch() on that input: a batch therefore ends where an input whose packets
// it holds must be read again, and that input is read at the next call.
class MergeSource : public PacketSource {
 public:
  explicit MergeSource(std::vector<std::unique_ptr<PacketSource>> inputs, size_t input_batch = 256);

  size_t next_batch(RawPacket* out, size_t max) override { return next_batch(out, max, nullptr); }
  // The same, also telling the input each packet came from (from[j] for out[j]), if `from`.
  size_t next_batch(RawPacket* out, size_t max, uint32_t* from);
  // Input k returned its end (or stopped: see PacketSource::stop()).
  bool finished(size_t k) const { return buf_[k].done; }
  std::string name() const override;
  // Asks every input to stop.
  void stop() override;
  // The inputs' warnings (each names its file), joined by "; ".
  std::string warning() const override;

  const std::vector<std::unique_ptr<PacketSource>>& inputs() const { return sources_; }

 private:
  struct Buffered {
    std::vector<RawPacket> pkts;
    size_t pos = 0, n = 0;
    bool done = false;
  };
  // Reads the next batch of input `i`; false when it is finished.
  bool refill(uint32_t i);

  std::vector<std::unique_ptr<PacketSource>> sources_;
  std::vector<Buffered> buf_;
  // The inputs holding buffered packets, as (timestamp of the next packet, input): a heap
  // with the smallest pair on top.
  std::vector<std::pair<uint64_t, uint32_t>> heap_;
  std::vector<uint32_t> to_refill_;  // inputs whose buffer ran out in the last batch
  bool primed_ = false;
};

}  // namespace tmach::capture
