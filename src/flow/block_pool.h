// Blocks of flow records, recycled: the flow writer (FlowStoreWriter) and the flow file's
// write-behind thread (FlowFileWriter::Behind) each hand the producer an empty block back for
// the one it gave them, and keep a few emptied blocks for that (their memory is paged in
// already) rather than allocate one per block.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "flow/flow_record.h"

namespace tmach::flow {

// Not thread-safe: its owner holds its own lock around take() and give_back().
class BlockPool {
 public:
  using Block = std::vector<FlowRecord>;

  // Blocks of room for `block_records`; at most `cap` of them kept.
  BlockPool(size_t block_records, size_t cap) : block_records_(block_records), cap_(cap) {}

  // An empty block: a kept one, or else a new one with room for a whole block at once (at a
  // shutdown the producer outruns the writer, no block comes back, and growing each one from
  // nothing, a dozen reallocations, copied every record twice more on the producer's thread;
  // pages not written stay unmapped).
  Block take() {
    Block b;
    if (!spare_.empty()) {
      b.swap(spare_.back());
      spare_.pop_back();
    } else {
      b.reserve(block_records_);
    }
    return b;
  }
  // Keeps `b` (leaving it empty) for take() while fewer than the cap are kept, and says so;
  // otherwise leaves it as it is, for the caller to free (outside its lock: a block is large
  // enough for its memory to go back to the kernel at once).
  bool give_back(Block& b) {
    if (spare_.size() >= cap_) return false;
    b.clear();
    spare_.push_back(std::move(b));
    return true;
  }
  size_t kept() const { return spare_.size(); }

 private:
  size_t block_records_;
  size_t cap_;
  std::vector<Block> spare_;
};

}  // namespace tmach::flow
