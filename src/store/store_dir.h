// The store directory as the recorder owns it: created when new (with its STORE marker),
// refused when it holds other content, locked against a second recorder, and adopted — the
// segments it holds listed, those left open by a crash or with a damaged sidecar recovered.
//
// Used by StoreWriter's constructor, on the thread that creates it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/catalog.h"
#include "store/verified.h"

namespace tmach::store {

// What adopting a store found.
struct AdoptReport {
  size_t segments = 0;   // sealed segments adopted from their sidecars
  size_t recovered = 0;  // open or damaged segments rebuilt from their pcap
  // Sealed sidecars checked whole (every section's CRC): those not known sound (see
  // verified.h), i.e. new since the last clean stop, or changed. The others are not read.
  size_t verified = 0;
  uint64_t verified_bytes = 0;
  uint64_t truncated_bytes = 0;
  std::vector<std::string> foreign;  // left alone
  std::vector<std::string> problems;
  // By class: past the largest sequence number found, whatever became of its segment (also
  // one that could not be recovered): a number is never given twice.
  std::map<std::string, uint64_t> next_seq;
};

class StoreDir {
 public:
  // Creates `root` if needed (a new store gets its STORE marker; a directory with other
  // content and no marker is refused) and locks it (flock on LOCK, which holds our pid).
  // Throws std::runtime_error (e.g. "store ... is in use by another recorder").
  explicit StoreDir(std::string root);
  ~StoreDir();  // releases the lock
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;

  const std::string& root() const { return root_; }
  // The directory of a class's segments, created if needed. Throws.
  std::string class_dir(const std::string& cls) const;

  // Lists the store (sidecar headers, no pcap read) and recovers what is not sealed: only
  // this process may write here (it holds the lock), so an open segment is a crash
  // leftover. Returns every segment left (sealed, in catalog order: by class, then
  // sequence number); fills `report`.
  // A sealed sidecar not known sound (verified.h) is checked whole and rebuilt when damaged;
  // afterwards every sealed sidecar kept is recorded as sound (the VERIFIED file rewritten).
  std::vector<SegmentInfo> adopt(uint32_t directory_every, uint64_t directory_bytes, AdoptReport& report);

  // "" while the store's path still names the directory this recorder locked; else why not
  // (it was deleted, moved away or replaced while recording: what is written into it then is
  // lost, or is nowhere a query looks). A stat() of the path: the writer asks twice a second.
  std::string gone() const;

  // The sidecars known sound: the writer adds those it seals, forgets those it deletes, and
  // saves at a clean stop (save_verified() warns instead of throwing).
  VerifiedSidecars& verified() { return verified_; }
  void save_verified();

 private:
  // Moves a segment's files to quarantine/<class>/ (never over another file); returns where
  // the pcap went.
  std::string quarantine(const SegmentInfo& seg);

  std::string root_;
  int lock_fd_ = -1;
  int dir_lock_fd_ = -1;  // the store directory itself, flock()ed too: LOCK can be deleted, it cannot
  VerifiedSidecars verified_;
};

}  // namespace tmach::store
