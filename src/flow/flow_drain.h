// Who writes the flow records, and on which thread: while recording, the store writer's
// thread drains them between its rings (tick(), through StoreWriter::set_tick); from hold()
// on — the end of input, when a recorder's shutdown ends every connection at once — a
// thread of its own (tm-flows) drains them as they come and indexes while another
// compresses (FlowStoreWriter::write_behind), alongside the last drain and seal of the
// packet segments rather than after them, holding the producer to a few blocks ahead
// (FlowStoreWriter::bound) so the burst reuses their memory; close() says every record is
// pushed, join() waits for the last flow file to be sealed.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flow/flow_store.h"

namespace tmach::flow {

class FlowDrain {
 public:
  // Opens the store's flow files (FlowStoreWriter: adopts, recovers, applies the budget).
  FlowDrain(FlowOptions opts, std::vector<std::string> class_names, std::vector<std::string>* problems);
  ~FlowDrain();  // close() and join(), reporting a failure in the log
  FlowDrain(const FlowDrain&) = delete;
  FlowDrain& operator=(const FlowDrain&) = delete;

  // Any thread but tm-flows (FlowStoreWriter::push): `block` comes back empty. From hold() on
  // it may wait for tm-flows to drain (a few blocks ahead at most).
  void push(std::vector<FlowRecord>& block) { writer_->push(block); }
  // The writer thread, each turn: writes what was pushed, unless hold() took over.
  void tick(uint64_t now_ns);
  // End of input is near: from now on the records are written on tm-flows. Once (later calls do nothing).
  void hold();
  // Every record is pushed: tm-flows writes the last ones and seals the file (hold() if not yet).
  void close();
  // Waits for tm-flows; rethrows its failure. Idempotent.
  void join();
  // The same, dropping a failure (when the packet side failed first and reports that).
  void join_quietly();

  uint64_t records_written() const { return writer_->records_written(); }
  uint64_t files_unsealed() const { return writer_->files_unsealed(); }  // any thread
  // After join(): records pushed that are not on disk (FlowStoreWriter::records_lost), and
  // tm-flows' failure, if it failed (also after join_quietly()).
  uint64_t records_lost() { return writer_->records_lost(); }
  const std::string& failure() const { return failure_what_; }
  // Any thread: the index of the flow file being written, now and at its most
  // (FlowStoreWriter::index_memory).
  uint64_t index_memory() const { return writer_->index_memory(); }
  uint64_t index_memory_peak() const { return writer_->index_memory_peak(); }

 private:
  std::unique_ptr<FlowStoreWriter> writer_;
  std::string failure_what_;  // join()
  // tick() drains only under mu_ and only until hold() (finishing_, checked again under mu_);
  // tm-flows takes mu_ once at its start, so it waits for a drain the writer thread may have
  // begun before it saw finishing_, and does not hold it after (a tick() then would wait for
  // tm-flows to end, delaying the writer's last drain of the rings).
  std::atomic<bool> finishing_{false};
  std::atomic<bool> closed_{false};
  std::mutex mu_;
  std::thread thread_;
  std::exception_ptr failure_;
};

}  // namespace tmach::flow
