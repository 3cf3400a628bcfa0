// What a store has imported: one fingerprint per capture file recorded into it (tm record
// --read), so that recording the same file again is noticed instead of storing its packets
// twice.
//
// STORE_DIR/imports.jsonl holds one JSON object per line, appended (and fsynced) once the
// file's packets are sealed in segments. A line cut short by a crash is skipped when read,
// and the next append starts on a fresh line. A file whose import was interrupted is logged
// with complete = false and what was read of it (packets, bytes).
//
// A file is identified by its size and a hash of its first and last MiB, all known before it
// is read; its first and last packet times are logged for the messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tmach::store {

inline constexpr const char* kImportLog = "imports.jsonl";
inline constexpr uint64_t kFingerprintSpan = 1u << 20;  // bytes hashed at each end of a file

// A 64-bit hash of a byte range (MurmurHash64A): not cryptographic, it tells files apart.
uint64_t hash64(const void* data, size_t len, uint64_t seed = 0);

struct FileFingerprint {
  uint64_t size = 0;
  uint64_t head_hash = 0;  // hash64 of the first min(size, 1 MiB) bytes
  uint64_t tail_hash = 0;  // hash64 of the last min(size, 1 MiB) bytes
  bool operator==(const FileFingerprint&) const = default;
};

// The fingerprint of a regular file; nullopt for what cannot be read twice (stdin, a pipe, a
// character device). Throws std::runtime_error naming the path when it cannot be read.
std::optional<FileFingerprint> fingerprint_file(const std::string& path);

struct ImportRecord {
  FileFingerprint fp;
  std::string path;             // the path it was read from (absolute)
  uint64_t imported_at_ns = 0;  // wall clock when logged
  uint64_t packets = 0;         // packets read from the file
  uint64_t first_ts_ns = 0;     // first and last packet times, in file order (0: no packet)
  uint64_t last_ts_ns = 0;
  bool complete = true;     // false: the import was interrupted after `packets` packets
  uint64_t bytes_read = 0;  // of fp.size (== fp.size when complete)
  // The run that read it: the wall clock when it began (0 in logs written before runs were
  // logged). A run logs a `begun` line for each file before it stores any packet of it, and
  // an end line (complete or partial, with the same `run`) once its packets are sealed: a
  // begun line no end line follows is an import that was killed, crashed or failed to write,
  // with an unknown part of the file in the store.
  uint64_t run = 0;
  bool begun = false;
};

// One line of the log (no newline), and back; nullopt when the line is not a whole record.
std::string to_json_line(const ImportRecord& r);
std::optional<ImportRecord> parse_import_line(std::string_view line);

struct ImportLog {
  std::vector<ImportRecord> records;  // in the order they were logged
  size_t bad_lines = 0;               // lines that were not records (e.g. cut short by a crash)

  // Reads STORE_DIR/imports.jsonl; empty when there is none. Throws std::runtime_error
  // naming the file when it exists but cannot be read.
  static ImportLog load(const std::string& store_dir);
  // The record that says a file with this fingerprint is in the store, in whole or in part:
  // the latest complete one with packets, else the latest of the partial ones with packets
  // and the begun lines no end line followed; null when there is none (never imported, or
  // every import of it stored no packet).
  const ImportRecord* find(const FileFingerprint& fp) const;
  // The latest begun line for this fingerprint that no end line followed, logged after `after`
  // (one of `records`, e.g. what find() returned): an import of the file killed since (a
  // --force run after a complete import); null when there is none.
  const ImportRecord* unended_after(const FileFingerprint& fp, const ImportRecord* after) const;
  // The latest complete import with packets of a shorter file that the file at `path` (of
  // fingerprint `fp`) begins with: the same bytes at the start (its head hash) and at the end
  // of the shorter one's length (its tail hash). A capture that grew since it was imported (a
  // tcpdump -w still writing). Null when there is none. Throws as fingerprint_file.
  const ImportRecord* find_prefix(const std::string& path, const FileFingerprint& fp) const;
};

// Appends records to STORE_DIR/imports.jsonl in one write and fsyncs it (and the directory
// when the file is new). When the file's last line was cut short, starts on a new line.
// Throws std::runtime_error naming the file.
void append_imports(const std::string& store_dir, const std::vector<ImportRecord>& records);

}  // namespace tmach::store
