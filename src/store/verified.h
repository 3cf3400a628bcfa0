// Which sealed sidecars are known sound, so that `tm record` checks each sidecar whole once
// (at the first start that finds it unknown), not at every start: the store's VERIFIED file.
//
// A sidecar is known sound when it was written by tm (sealed, or rebuilt from its pcap) or
// checked whole (verify_sidecar) and has not changed since: its size, modification time and
// inode are what was recorded then. The file is rewritten (atomically) after adopting a store
// and at a clean stop; a run that ends otherwise leaves the previous one, so the sidecars that
// run sealed are checked at the next start. A file that is missing or unreadable means nothing
// is known: every sidecar is checked (what the first start of an older store does).
// As git does with its index ("racy clean"), a sidecar modified no earlier than the VERIFIED
// file was written is not trusted: a change within one tick of the file system's clock after
// its stamp would leave its time as it was. So the few sealed just before a stop are checked.
// The file is a cache: losing it costs a check of every sidecar, never a wrong answer (a stamp
// matches only the file it was taken of). So it is not fsynced, and not rewritten when nothing
// changed (a start that finds every sidecar known, or a new empty store, writes nothing).
//
// Not thread-safe: owned by StoreDir, used by the thread that owns the store writer.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

namespace tmach::store {

inline constexpr const char* kVerifiedFile = "VERIFIED";

class VerifiedSidecars {
 public:
  struct Stamp {
    uint64_t size = 0, mtime_ns = 0, ino = 0;
    bool operator==(const Stamp&) const = default;
  };
  // Reads <root>/VERIFIED (nothing known when missing or not ours).
  void load(const std::string& root);
  // `idx_path` is a sidecar inside the store. Known sound: recorded, and unchanged since.
  bool known(const std::string& idx_path) const;
  // Records the sidecar as it is now (after writing or checking it); a missing file is forgotten.
  void add(const std::string& idx_path);
  void forget(const std::string& idx_path);
  size_t size() const { return stamps_.size(); }
  // Rewrites <root>/VERIFIED when a sidecar was added or forgotten since load() or the last
  // save(); entries whose sidecar is gone are left out. Throws util::IoError.
  void save();

 private:
  std::string key(const std::string& idx_path) const;  // relative to the root when inside it
  std::string root_;
  uint64_t saved_ns_ = 0;                          // the modification time of the VERIFIED file loaded
  std::unordered_map<std::string, Stamp> stamps_;  // by key
  bool changed_ = false;                           // since load() or save()
};

}  // namespace tmach::store
