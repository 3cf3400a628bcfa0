// Flow files: "<store>/flows/<seq:08>-<first_ns>-lt0.flows", a header naming the classes,
// then blocks of zstd-compressed, byte-transposed FlowRecords, each with its own length and CRC, so a file
// cut short by a crash is read up to its last complete block. A sealed file has a sidecar
// ("...idx", the same format as packet segments: time range, and address/port/protocol
// indexes over record ordinals).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flow/flow_record.h"
#include "store/index.h"
#include "store/segment_meta.h"

namespace tmach::flow {

inline constexpr const char* kFlowDir = "flows";

struct FlowFileContents {
  std::vector<std::string> classes;
  std::vector<FlowRecord> records;
  uint64_t valid_end = 0;  // offset just past the last complete block
  uint64_t file_size = 0;
  std::string problem;        // why reading stopped early, if it did; with past_damage, what was skipped
  std::string names_problem;  // the class names are damaged (version 3's CRC): classes is empty
  // With past_damage: the blocks skipped, each as (the index in `records` where its records
  // would have been, their count): ordinals (as the file's index numbers records) go on past them.
  std::vector<std::pair<size_t, uint32_t>> skipped;
};

// Reads every complete block. Throws std::runtime_error if the file cannot be opened or its
// header is not a flow file. A block whose header is sound but whose content is damaged (its
// checksum, its compression) ends the reading (`problem`, valid_end before it), or with
// `past_damage` (a query) is skipped, its records lost and named in `problem`, the blocks
// after it read. A damaged header ends it either way: the next block cannot be found.
FlowFileContents read_flow_file(const std::string& path, bool past_damage = false);

// The records of a flow file whose ordinals are in `wanted` (a query's candidates from the
// file's index), each with its ordinal: only the blocks holding one are read, checked and
// decompressed; the others' headers are checked against their zstd frames' sizes (a count
// damaged there would shift every later ordinal). `problem` names what was lost: a block whose
// content is damaged (its wanted records), or where reading stopped early (the wanted records
// after that point). Throws std::runtime_error as read_flow_file().
struct FlowRecordsRead {
  std::vector<std::string> classes;
  std::vector<std::pair<uint32_t, FlowRecord>> records;  // (ordinal, record), ascending
  std::string problem;
  std::string names_problem;  // as FlowFileContents::names_problem
};
FlowRecordsRead read_flow_records(const std::string& path, const Roaring& wanted);

// Writes one flow file; used by the writer thread only.
class FlowFileWriter {
 public:
  FlowFileWriter(std::string base, uint64_t seq, const std::vector<std::string>& classes);
  ~FlowFileWriter();
  void add(const FlowRecord& r);
  void flush_block();  // compress and write what is buffered
  uint64_t seal();     // flush, fsync, write the sidecar; returns its size
  // From now on each block is compressed and written by a thread of its own while the caller
  // indexes the next: at a recorder's shutdown every open connection's record comes at once
  // (hundreds of thousands on the bench capture), and compressing them took as long as the
  // rest of their writing. seal() waits for that thread. Once.
  void write_behind();
  uint64_t file_bytes() const { return file_bytes_.load(std::memory_order_relaxed); }
  // Records in the blocks written to the .flows file so far (any thread).
  uint64_t records_on_disk() const { return records_on_disk_.load(std::memory_order_relaxed); }
  // The heap memory of the file's index being built (store::IndexBuilder::memory_bytes): the
  // caller's thread, as add().
  uint64_t index_memory() const { return builder_.memory_bytes(); }
  const std::string& base() const { return base_; }
  const store::SegmentMeta& meta() const { return meta_; }

 private:
  // Compresses and writes one block (the caller's thread, or write_behind()'s).
  struct Scratch;
  void write_block(const std::vector<FlowRecord>& records, Scratch& scratch);
  class Behind;

  std::string base_;
  int fd_ = -1;
  std::atomic<uint64_t> file_bytes_{0};
  std::atomic<uint64_t> records_on_disk_{0};
  std::vector<FlowRecord> pending_;
  std::unique_ptr<Scratch>
      scratch_;  // for blocks written inline (kept: one context and allocation, not one a block)
  std::unique_ptr<Behind> behind_;
  store::SegmentMeta meta_;
  store::IndexBuilder builder_;
};

// Rebuilds the sidecar of a flow file left without one (crash): cuts it after its last
// complete block (a block whose header is damaged, and all after it, go too); a block before
// that whose content is damaged stays, unindexed, its records lost (said in `problem`, when
// given). Returns the number of records kept.
uint64_t recover_flow_file(const std::string& base, std::string* problem = nullptr);

}  // namespace tmach::flow
