// tm serve -i's live hooks (live.h) over a record::Session: its shards' published counters,
// dynamic classes (kept in the store's dynamic-classes.json), the connection tables and their
// controls, subscriptions to what the writer appends. The capture threads call the hooks
// marked so around each batch; every Backend method runs on API threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capture/source.h"
#include "config/config.h"
#include "record/recorder.h"
#include "record/session.h"
#include "server/live.h"
#include "server/rate_history.h"
#include "store/store_writer.h"

namespace tmach::server {

// This worker's share of a split (tm serve --worker-id), as its stats show it. The server
// layer does not know the split itself (cluster/): it gets these values and a reader of the
// counters, which runs on the capture threads (publish()).
struct WorkerShare {
  uint32_t worker_id = 0, workers = 0;
  std::string balance;
  struct Counts {
    uint64_t kept_packets = 0, other_packets = 0;
  };
  std::function<Counts()> counts;  // empty: a fanout member, whose share the kernel picks
};

class LiveBackend : public Backend {
 public:
  // One recorder per capture thread (shard); each shard's hooks run on its own thread.
  LiveBackend(const config::Config& cfg, store::StoreWriter& w, std::vector<record::Recorder*> recs);

  // This worker's share of a split, if any (before the capture threads start).
  void set_share(WorkerShare s) { share_ = std::move(s); }
  // Flow files the recording left without a sidecar so far (record::Session::flow_files_unsealed),
  // for the stats and metrics; unset: none.
  void set_flows(const flow::FlowDrain* f) { flows_ = f; }

  // --- capture threads ---------------------------------------------------------------------
  // Restores the dynamic classes of dynamic-classes.json; before the capture threads start.
  void load_classes();
  // A shard's connection table lock: its capture thread holds it while it processes a batch,
  // an API thread while it reads or controls the connections.
  std::mutex& table_mutex(size_t shard) { return shards_[shard].table_mu; }
  // Before each batch: applies what the API asked for (a live source blocks while the link is
  // idle, so this runs right after the next packets arrive and before they are processed).
  void apply_commands(size_t shard);
  // After each batch of the shard: expires dynamic classes (for every shard: commands),
  // publishes the shard's counters for the API.
  void publish(size_t shard, const std::vector<capture::PacketSource*>& sources);

  // --- stopping (any thread) ---------------------------------------------------------------
  // Ends the subscriptions at a stop: the writer offers them no packet from now on (what it
  // still writes, draining, is stored, not streamed; costly filters then no longer slow the
  // drain), and subscribe() refuses (503, shutting down). The streams end at the API's stop.
  void end_subscriptions();

  // --- API threads (Backend) ---------------------------------------------------------------
  bool sync() override;
  std::string problem() override;
  std::map<std::string, uint64_t> first_seq() const override { return writer_.adopt_report().next_seq; }
  nlohmann::json stats() override;
  void metrics(Metrics& m) override;
  nlohmann::json class_set(const std::string& host, const std::string& cls, uint64_t for_ns) override;
  nlohmann::json class_list() override;
  std::optional<nlohmann::json> class_remove(const std::string& host) override;
  store::Catalog subscribe(const std::shared_ptr<Subscriber>& s) override;
  void unsubscribe(const std::shared_ptr<Subscriber>& s) override;
  nlohmann::json connections(const query::Expr& e, size_t top) override;
  nlohmann::json control(const query::Expr& e, int suspend_cutoff, int suspend_timeout) override;
  nlohmann::json history() override { return history_->json(); }

 private:
  struct Dyn {
    uint16_t cls;
    uint64_t expires_ns;  // 0: never
  };
  // A dynamic-class change, applied by each shard's capture thread to its recorder before its
  // next batch.
  using Command = std::function<void(record::Recorder&)>;
  struct Shard {
    std::vector<Command> cmds;  // mu_
    std::atomic<bool> pending{false};
    std::mutex table_mu;
    record::RecorderTotals totals;  // mu_: published after each batch
    std::vector<capture::SourceStats> kernel;
    std::chrono::steady_clock::time_point last_kstats{};
  };
  struct Snapshot {
    record::RecorderTotals t;  // every shard's published counters added up
    uint64_t kernel_received = 0, kernel_dropped = 0, iface_dropped = 0;  // of every source
    uint64_t ring_damaged = 0;  // frames of AF_PACKET ring blocks skipped as impossible
  };

  int class_index(const std::string& name) const;
  nlohmann::json entry(const std::string& host, const Dyn& d) const;
  std::string persist();                // mu_ held; "" when saved, else a warning for the answer
  void command(const Command& c);       // mu_ held
  Snapshot snapshot() const;            // mu_ held
  record::MemoryReport memory() const;  // mu_ held
  nlohmann::json rate_sample();         // the history thread: cumulative counters now

  const config::Config& cfg_;
  store::StoreWriter& writer_;
  const flow::FlowDrain* flows_ = nullptr;  // set_flows()
  std::vector<record::Recorder*> recs_;
  std::deque<Shard> shards_;  // by shard (deque: Shard holds a mutex)
  std::string path_;
  std::mutex mu_;
  std::map<std::string, Dyn> dyn_;
  uint64_t share_kept_ = 0, share_other_ = 0;      // mu_
  uint64_t next_expiry_ = 0;                       // mu_
  std::vector<std::shared_ptr<Subscriber>> subs_;  // writer thread only
  std::atomic<bool> offering_{true};               // until end_subscriptions()
  std::atomic<uint64_t> sub_overflow_{0};
  WorkerShare share_;  // workers == 0: no split
  // The rates of the last 3 hours, every 10 s, for the web page (tm-history thread); last, so
  // that it stops before anything it reads is destroyed.
  std::unique_ptr<RateHistory> history_;
};

}  // namespace tmach::server
