// tm record --read: the inputs of one run checked against what the store has imported
// (store/imports.h), followed while they are read, and logged once they are sealed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "capture/source.h"
#include "store/imports.h"

namespace tmach::store {

// What the record summary says about the inputs.
struct ImportReport {
  std::vector<std::string> skipped;  // inputs not read: already imported (or given twice)
  int signal = 0;                    // non-zero: a signal stopped the run before the input's end
  size_t files = 0;                  // inputs to read (skipped ones not counted)
  size_t files_complete = 0;         // read to their end
  uint64_t packets_read = 0;
  std::optional<uint64_t> bytes_read;   // nullopt: not known (stdin)
  std::optional<uint64_t> bytes_total;  // nullopt: not known (stdin, a pipe)
  bool interrupted() const { return signal != 0; }
};

class ImportSession {
 public:
  // Before the store is opened: fingerprints every input (not stdin or a pipe) and looks it up
  // in the store's import log and among the inputs before it. Unless `force`, one found there
  // is to be skipped, and a line on `err` names it and says when it was imported. Throws
  // std::runtime_error (an input or the log cannot be read).
  ImportSession(const std::string& store_dir, const std::vector<std::string>& paths, bool force,
                std::ostream& err);

  bool skip(size_t i) const { return inputs_[i].skip; }
  // Every input is to be skipped (there is nothing to record).
  bool all_skipped() const;
  // A batch of packets read from input i (before any filtering).
  void note(size_t i, const capture::RawPacket* p, size_t n) {
    if (n == 0) return;
    auto& in = inputs_[i];
    if (in.packets == 0) in.first_ts = p[0].ts_ns;
    in.last_ts = p[n - 1].ts_ns;
    in.packets += n;
  }
  // Input i was read to its end.
  void ended(size_t i) { inputs_[i].ended = true; }
  // Reading is over: takes where each source stopped (sources[i] reads input i; null for a
  // skipped one).
  void stopped(const std::vector<const capture::PacketSource*>& sources);
  // Before the first packet is stored (the store exists): logs a `begun` line for each input
  // to read that can be identified, so that a run killed before commit() is known by the next
  // one (ImportRecord::begun). Throws std::runtime_error naming the log.
  void begin();
  // Once everything read is sealed in the store: logs the inputs read to their end as
  // imported, and one read in part (a signal, a read error) as partial with its counts;
  // one that gave no packet is logged only to end its begun line (reading it again doubles
  // nothing). Throws std::runtime_error naming the log.
  void commit();
  // `signal`: the one that stopped the run (0: none). A signal that came once every input
  // was read interrupted nothing.
  ImportReport report(int signal) const;

 private:
  struct Input {
    std::string path;
    std::optional<FileFingerprint> fp;
    bool skip = false;
    bool ended = false;
    uint64_t packets = 0, first_ts = 0, last_ts = 0;
    std::optional<uint64_t> offset;  // bytes consumed when reading stopped
  };
  std::string store_dir_;
  std::vector<Input> inputs_;
  uint64_t run_ = 0;  // begin()'s wall clock (0: not begun)
};

}  // namespace tmach::store
