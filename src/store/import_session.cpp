#include "store/import_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "store/catalog.h"
#include "util/timespec.h"

namespace fs = std::filesystem;

namespace tmach::store {
namespace {

// "2026-11-25 13:00:00 UTC": the seconds are enough to tell imports apart.
std::string when(uint64_t ns) {
  std::string t = util::format_time(ns);  // 2026-11-25T13:00:00.123456789Z
  return t.substr(0, 10) + " " + t.substr(11, 8) + " UTC";
}

std::string describe(const ImportRecord& r) {
  std::string s = fmt::format("as {}: {} packets", r.path, r.packets);
  if (r.packets)
    s += fmt::format(", {} .. {}", util::format_time(r.first_ts_ns), util::format_time(r.last_ts_ns));
  return s;
}

}  // namespace

ImportSession::ImportSession(const std::string& store_dir, const std::vector<std::string>& paths, bool force,
                             std::ostream& err)
    : store_dir_(store_dir) {
  ImportLog log;
  if (!paths.empty() && is_store_dir(store_dir)) log = ImportLog::load(store_dir);
  for (auto& p : paths) {
    Input in;
    in.path = p;
    in.fp = fingerprint_file(p);
    if (in.fp && !force) {
      // A file without packets stored nothing: reading it again doubles nothing.
      if (const auto* r = log.find(*in.fp)) {
        in.skip = true;
        if (r->begun)
          err << fmt::format(
              "tm record: skipping {}: an import of it into {} began on {} (as {}) and has no end logged "
              "(the run was killed, crashed or could not write); the part of it stored before that would be "
              "stored twice (--force records the whole file again)\n",
              p, store_dir, when(r->imported_at_ns), r->path);
        else {
          // A later run of it that was killed (--force) stored an unknown part of it once more.
          std::string later;
          if (const auto* k = log.unended_after(*in.fp, r))
            later = fmt::format(
                "; an import of it begun later, on {} (as {}), has no end logged (the run was killed, "
                "crashed "
                "or could not write): part of it may be in the store twice already",
                when(k->imported_at_ns), k->path);
          if (r->complete)
            err << fmt::format(
                "tm record: skipping {}: already imported into {} on {} ({}){}; nothing recorded from it "
                "(--force records it again)\n",
                p, store_dir, when(r->imported_at_ns), describe(*r), later);
          else
            err << fmt::format(
                "tm record: skipping {}: partly imported into {} on {} ({}, interrupted after {} of {} "
                "bytes){}; "
                "recording it again would store those packets twice (--force records the whole file again)\n",
                p, store_dir, when(r->imported_at_ns), describe(*r), r->bytes_read, r->fp.size, later);
        }
      } else if (const auto* r = log.find_prefix(p, *in.fp)) {
        in.skip = true;
        err << fmt::format(
            "tm record: skipping {}: it begins with a file imported into {} on {} ({}, {} bytes), the same "
            "bytes: a capture that grew since; recording it would store those packets twice (--force "
            "records the whole file again; 'editcap FILE REST 1-{}' writes the packets after them)\n",
            p, store_dir, when(r->imported_at_ns), describe(*r), r->fp.size, r->packets);
      } else {
        for (auto& before : inputs_)
          if (before.fp && *before.fp == *in.fp && !before.skip) {
            in.skip = true;
            err << fmt::format(
                "tm record: skipping {}: the same file as {}, given before it in this run (--force records "
                "it twice)\n",
                p, before.path);
            break;
          }
      }
    }
    inputs_.push_back(std::move(in));
  }
  // A log with lines that are not records (damaged, or cut short by a crash in an append)
  // may have lost the record of a file recorded now: said, since it would be stored twice.
  // (Files only: a pipe or stdin is never looked up in the log.)
  const bool any_read =
      std::any_of(inputs_.begin(), inputs_.end(), [](const Input& i) { return i.fp && !i.skip; });
  if (log.bad_lines && any_read && !force)
    err << fmt::format(
        "tm record: warning: {}/{}: {} line{} that {} not an import record (damaged, or cut short by a "
        "crash) skipped; a file whose import was logged there is recorded again\n",
        store_dir, kImportLog, log.bad_lines, log.bad_lines == 1 ? "" : "s",
        log.bad_lines == 1 ? "is" : "are");
}

bool ImportSession::all_skipped() const {
  for (auto& in : inputs_)
    if (!in.skip) return false;
  return !inputs_.empty();
}

void ImportSession::stopped(const std::vector<const capture::PacketSource*>& sources) {
  for (size_t i = 0; i < inputs_.size() && i < sources.size(); ++i) {
    auto& in = inputs_[i];
    if (in.ended && in.fp)
      in.offset = in.fp->size;
    else if (!in.skip && sources[i])
      in.offset = sources[i]->bytes_read();
  }
}

namespace {

std::string absolute_path(const std::string& p) {
  std::error_code ec;
  auto abs = fs::absolute(p, ec);
  return ec ? p : abs.lexically_normal().string();
}

}  // namespace

void ImportSession::begin() {
  std::vector<ImportRecord> recs;
  run_ = util::now_ns();
  for (auto& in : inputs_) {
    if (in.skip || !in.fp) continue;
    ImportRecord r;
    r.fp = *in.fp;
    r.path = absolute_path(in.path);
    r.imported_at_ns = run_;
    r.complete = false;
    r.run = run_;
    r.begun = true;
    recs.push_back(std::move(r));
  }
  append_imports(store_dir_, recs);
}

void ImportSession::commit() {
  std::vector<ImportRecord> recs;
  uint64_t now = util::now_ns();
  for (auto& in : inputs_) {
    if (in.skip || !in.fp) continue;
    // Nothing of it is in the store: reading it again doubles nothing (logged only to end
    // its begun line).
    if (in.packets == 0 && !run_) continue;
    ImportRecord r;
    r.fp = *in.fp;
    r.path = absolute_path(in.path);
    r.run = run_;
    r.imported_at_ns = now;
    r.packets = in.packets;
    r.first_ts_ns = in.first_ts;
    r.last_ts_ns = in.last_ts;
    r.complete = in.ended;
    r.bytes_read = in.ended ? in.fp->size : in.offset.value_or(0);
    recs.push_back(std::move(r));
  }
  append_imports(store_dir_, recs);
}

ImportReport ImportSession::report(int signal) const {
  ImportReport rep;
  bool bytes_known = true, total_known = true;
  uint64_t bytes = 0, total = 0;
  for (auto& in : inputs_) {
    if (in.skip) {
      rep.skipped.push_back(in.path);
      continue;
    }
    ++rep.files;
    rep.packets_read += in.packets;
    if (in.ended) ++rep.files_complete;
    if (in.fp)
      total += in.fp->size;
    else
      total_known = false;
    if (in.offset)
      bytes += *in.offset;
    else if (in.packets || in.ended)
      bytes_known = false;
  }
  if (bytes_known) rep.bytes_read = bytes;
  if (total_known) rep.bytes_total = total;
  if (signal && rep.files_complete < rep.files) rep.signal = signal;
  return rep;
}

}  // namespace tmach::store
