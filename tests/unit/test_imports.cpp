// The store's import log: file fingerprints, the log's lines, a line cut short by a crash.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "store/catalog.h"
#include "store/import_session.h"
#include "store/imports.h"
#include "temp_dir.h"

using namespace tmach;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

store::ImportRecord record_of(const store::FileFingerprint& fp, const std::string& path,
                              bool complete = true) {
  store::ImportRecord r;
  r.fp = fp;
  r.path = path;
  r.imported_at_ns = 1700000000123456789ull;
  r.packets = complete ? 136 : 40;
  r.first_ts_ns = 1600000000000000000ull;
  r.last_ts_ns = 1600000060000000000ull;
  r.complete = complete;
  r.bytes_read = complete ? fp.size : fp.size / 3;
  return r;
}

}  // namespace

TEST(Imports, SameContentUnderAnotherPathHasTheSameFingerprint) {
  TempDir d;
  std::string bytes = random_bytes(3u << 20, 1);  // larger than head + tail
  write_file(d.p / "a.pcap", bytes);
  fs::create_directory(d.p / "sub");
  write_file(d.p / "sub" / "renamed.pcap", bytes);
  auto a = store::fingerprint_file((d.p / "a.pcap").string());
  auto b = store::fingerprint_file((d.p / "sub" / "renamed.pcap").string());
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size, bytes.size());
  EXPECT_EQ(*a, *b);
}

TEST(Imports, DifferentContentOfTheSameSizeDiffers) {
  TempDir d;
  for (size_t size : {size_t{100}, size_t{5u << 20}}) {
    std::string bytes = random_bytes(size, 2);
    std::string head = bytes, tail = bytes;
    head[10] ^= 1;         // inside the first MiB
    tail[size - 10] ^= 1;  // inside the last MiB
    write_file(d.p / "x", bytes);
    write_file(d.p / "h", head);
    write_file(d.p / "t", tail);
    auto x = store::fingerprint_file((d.p / "x").string());
    auto h = store::fingerprint_file((d.p / "h").string());
    auto t = store::fingerprint_file((d.p / "t").string());
    ASSERT_TRUE(x && h && t);
    EXPECT_EQ(x->size, h->size);
    EXPECT_NE(*x, *h) << size;
    EXPECT_NE(*x, *t) << size;
    EXPECT_NE(*h, *t) << size;
  }
}

TEST(Imports, StdinAndPipesAreNotFingerprinted) {
  EXPECT_FALSE(store::fingerprint_file("-"));
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_FALSE(store::fingerprint_file("/proc/self/fd/" + std::to_string(fds[0])));
  close(fds[0]);
  close(fds[1]);
  EXPECT_THROW(store::fingerprint_file("/nonexistent/x.pcap"), std::runtime_error);
}

TEST(Imports, LineRoundTrip) {
  store::FileFingerprint fp{123456, 0x0123456789abcdefull, 0xfedcba9876543210ull};
  auto r = record_of(fp, "/data/caps/a b\"c.pcap", false);
  auto back = store::parse_import_line(store::to_json_line(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->fp, fp);
  EXPECT_EQ(back->path, r.path);
  EXPECT_EQ(back->imported_at_ns, r.imported_at_ns);
  EXPECT_EQ(back->packets, r.packets);
  EXPECT_EQ(back->first_ts_ns, r.first_ts_ns);
  EXPECT_EQ(back->last_ts_ns, r.last_ts_ns);
  EXPECT_FALSE(back->complete);
  EXPECT_EQ(back->bytes_read, r.bytes_read);
  EXPECT_FALSE(store::parse_import_line(""));
  EXPECT_FALSE(store::parse_import_line("{\"size\": 1}"));
  EXPECT_FALSE(store::parse_import_line("[1, 2]"));
}

TEST(Imports, TruncatedLastLineIsSkippedAndTheNextAppendStartsAfreshLine) {
  TempDir d;
  std::string dir = d.p.string();
  store::FileFingerprint a{1000, 1, 2}, b{2000, 3, 4}, c{3000, 5, 6};
  store::append_imports(dir, {record_of(a, "/x/a.pcap")});
  std::string whole = store::to_json_line(record_of(b, "/x/b.pcap"));
  {  // a crash in the middle of the second append
    std::ofstream f(d.p / store::kImportLog, std::ios::binary | std::ios::app);
    f << whole.substr(0, whole.size() / 2);
  }
  auto log = store::ImportLog::load(dir);
  ASSERT_EQ(log.records.size(), 1u);
  EXPECT_EQ(log.bad_lines, 1u);
  EXPECT_TRUE(log.find(a));
  EXPECT_FALSE(log.find(b));

  store::append_imports(dir, {record_of(c, "/x/c.pcap")});
  log = store::ImportLog::load(dir);
  ASSERT_EQ(log.records.size(), 2u);
  EXPECT_EQ(log.bad_lines, 1u);
  EXPECT_TRUE(log.find(a));
  EXPECT_TRUE(log.find(c));
  std::string text = read_all(d.p / store::kImportLog);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find(whole.substr(0, whole.size() / 2) + "\n{"), std::string::npos) << text;
}

TEST(Imports, PartialRecordIsNotComplete) {
  TempDir d;
  store::FileFingerprint fp{5000, 7, 8};
  store::append_imports(d.p.string(), {record_of(fp, "/x/a.pcap", false)});
  auto log = store::ImportLog::load(d.p.string());
  const auto* r = log.find(fp);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->complete);
  // A later complete import of the same file wins over the partial one.
  store::append_imports(d.p.string(), {record_of(fp, "/x/a.pcap", true)});
  log = store::ImportLog::load(d.p.string());
  ASSERT_TRUE(log.find(fp));
  EXPECT_TRUE(log.find(fp)->complete);
}

TEST(Imports, MissingLogIsEmpty) {
  TempDir d;
  auto log = store::ImportLog::load(d.p.string());
  EXPECT_TRUE(log.records.empty());
  EXPECT_EQ(log.bad_lines, 0u);
}

TEST(Imports, CatalogTreatsTheLogAsOurs) {
  TempDir d;
  write_file(d.p / "STORE", "tm store format 1\n");
  store::append_imports(d.p.string(), {record_of({1, 2, 3}, "/x/a.pcap")});
  write_file(d.p / "stray.txt", "x");
  auto c = store::Catalog::scan(d.p.string());
  ASSERT_EQ(c.foreign.size(), 1u);
  EXPECT_NE(c.foreign[0].find("stray.txt"), std::string::npos);
}

// The session of one tm record run: what it skips, what it logs.
namespace {

capture::RawPacket pkt(uint64_t ts) { return capture::RawPacket{ts, 0, 0, 1, nullptr}; }

// An empty store in the temporary directory (its STORE file, as a recorder writes it).
std::string new_store(const TempDir& d) {
  const std::string store = (d.p / "store").string();
  fs::create_directory(store);
  write_file(fs::path(store) / "STORE", "tm store format 1\n");
  return store;
}

}  // namespace

TEST(ImportSession, SkipsWhatTheStoreImportedWhateverItsName) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "a.pcap", random_bytes(4096, 3));
  write_file(d.p / "copy-of-a.pcap", random_bytes(4096, 3));
  write_file(d.p / "b.pcap", random_bytes(4096, 4));
  std::vector<std::string> first = {(d.p / "a.pcap").string()};
  {
    std::ostringstream err;
    store::ImportSession s(store, first, false, err);
    EXPECT_FALSE(s.skip(0));
    EXPECT_TRUE(err.str().empty());
    capture::RawPacket p[2] = {pkt(10), pkt(20)};
    s.note(0, p, 2);
    s.ended(0);
    s.commit();
  }
  std::vector<std::string> second = {(d.p / "copy-of-a.pcap").string(), (d.p / "b.pcap").string(),
                                     (d.p / "b.pcap").string()};
  std::ostringstream err;
  store::ImportSession s(store, second, false, err);
  EXPECT_TRUE(s.skip(0));
  EXPECT_FALSE(s.skip(1));
  EXPECT_TRUE(s.skip(2));  // given twice in one run
  EXPECT_FALSE(s.all_skipped());
  EXPECT_NE(err.str().find("copy-of-a.pcap: already imported"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find((d.p / "a.pcap").string()), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("2 packets"), std::string::npos) << err.str();
  std::ostringstream err2;
  store::ImportSession forced(store, second, true, err2);
  EXPECT_FALSE(forced.skip(0) || forced.skip(1) || forced.skip(2));
  EXPECT_TRUE(err2.str().empty());
}

// A damaged log's lines that are not records may have held a file's: a run that records a
// file says so (it was silent, and the file was stored twice).
TEST(ImportSession, ALogWithDamagedLinesIsWarnedOf) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "a.pcap", random_bytes(4096, 3));
  const std::vector<std::string> a = {(d.p / "a.pcap").string()};
  {
    std::ostringstream err;
    store::ImportSession s(store, a, false, err);
    capture::RawPacket p[1] = {pkt(10)};
    s.note(0, p, 1);
    s.ended(0);
    s.commit();
    EXPECT_TRUE(err.str().empty()) << err.str();
  }
  write_file(d.p / "store" / store::kImportLog, std::string("\0\0\0\n{\"not\": \"a record\"}\n", 24));
  std::ostringstream err;
  store::ImportSession s(store, a, false, err);
  EXPECT_FALSE(s.skip(0));  // (its record is gone)
  EXPECT_NE(err.str().find("imports.jsonl: 2 lines that are not an import record (damaged, or cut short by a "
                           "crash) skipped; a file whose import was logged there is recorded again"),
            std::string::npos)
      << err.str();
}

TEST(ImportSession, InterruptedImportIsLoggedAsPartial) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "a.pcap", random_bytes(4096, 5));
  write_file(d.p / "b.pcap", random_bytes(4096, 6));
  std::vector<std::string> paths = {(d.p / "a.pcap").string(), (d.p / "b.pcap").string()};
  {
    std::ostringstream err;
    store::ImportSession s(store, paths, false, err);
    capture::RawPacket p[3] = {pkt(10), pkt(20), pkt(30)};
    s.note(0, p, 3);
    s.ended(0);
    s.note(1, p, 2);  // b: a signal came before its end
    s.commit();
    auto rep = s.report(SIGINT);
    EXPECT_TRUE(rep.interrupted());
    EXPECT_EQ(rep.files, 2u);
    EXPECT_EQ(rep.files_complete, 1u);
    EXPECT_EQ(rep.packets_read, 5u);
    EXPECT_EQ(rep.bytes_total, 8192u);
    // A signal after every input was read interrupted nothing.
    store::ImportSession all(store, {paths[0]}, true, err);
    all.ended(0);
    EXPECT_FALSE(all.report(SIGTERM).interrupted());
  }
  auto log = store::ImportLog::load(store);
  ASSERT_EQ(log.records.size(), 2u);
  EXPECT_TRUE(log.records[0].complete);
  EXPECT_EQ(log.records[0].packets, 3u);
  EXPECT_EQ(log.records[0].first_ts_ns, 10u);
  EXPECT_EQ(log.records[0].last_ts_ns, 30u);
  EXPECT_FALSE(log.records[1].complete);
  EXPECT_EQ(log.records[1].packets, 2u);
  // Recording b again is refused, and the message says it was partly imported.
  std::ostringstream err;
  store::ImportSession again(store, {paths[1]}, false, err);
  EXPECT_TRUE(again.all_skipped());
  EXPECT_NE(err.str().find("partly imported"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("2 packets"), std::string::npos) << err.str();
}

TEST(ImportSession, FileWithoutPacketsIsNotLogged) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "empty.pcap", random_bytes(24, 7));
  std::vector<std::string> paths = {(d.p / "empty.pcap").string()};
  for (int run = 0; run < 2; ++run) {
    std::ostringstream err;
    store::ImportSession s(store, paths, false, err);
    EXPECT_FALSE(s.skip(0)) << "run " << run << ": " << err.str();
    s.ended(0);
    s.commit();
  }
  EXPECT_TRUE(store::ImportLog::load(store).records.empty());
}

// A run killed after it began storing a file's packets logs no end line: the next run knows
// the file is in the store in part (its begun line) and refuses it rather than store that
// part twice.
TEST(ImportSession, AnImportThatBeganAndNeverEndedIsRefused) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "a.pcap", random_bytes(4096, 8));
  std::vector<std::string> paths = {(d.p / "a.pcap").string()};
  {
    std::ostringstream err;
    store::ImportSession s(store, paths, false, err);
    s.begin();
    capture::RawPacket p[2] = {pkt(10), pkt(20)};
    s.note(0, p, 2);  // ... and the run is killed: no commit()
  }
  {
    std::ostringstream err;
    store::ImportSession again(store, paths, false, err);
    EXPECT_TRUE(again.all_skipped());
    EXPECT_NE(err.str().find("has no end logged"), std::string::npos) << err.str();
  }
  {
    std::ostringstream err;
    store::ImportSession forced(store, paths, true, err);
    EXPECT_FALSE(forced.skip(0));
    forced.begin();
    capture::RawPacket p[3] = {pkt(10), pkt(20), pkt(30)};
    forced.note(0, p, 3);
    forced.ended(0);
    forced.commit();
  }
  std::ostringstream err;
  store::ImportSession third(store, paths, false, err);
  EXPECT_TRUE(third.all_skipped());
  EXPECT_NE(err.str().find("already imported"), std::string::npos) << err.str();
  auto log = store::ImportLog::load(store);
  ASSERT_EQ(log.records.size(), 3u);
  EXPECT_TRUE(log.records[0].begun);
  EXPECT_TRUE(log.records[1].begun);
  EXPECT_FALSE(log.records[2].begun);
  EXPECT_EQ(log.records[2].run, log.records[1].run);
}

// A --force run after a complete import, killed midway, stored part of the file a second
// time: the next run's skip message says so, not just that the file was imported whole.
TEST(ImportSession, AKilledForcedRunAfterACompleteImportIsNamed) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "a.pcap", random_bytes(4096, 11));
  write_file(d.p / "b.pcap", random_bytes(4096, 12));
  const std::string a = (d.p / "a.pcap").string(), b = (d.p / "b.pcap").string();
  {
    std::ostringstream err;
    store::ImportSession s(store, {a, b}, false, err);
    s.begin();
    capture::RawPacket p[2] = {pkt(10), pkt(20)};
    s.note(0, p, 2);
    s.ended(0);
    s.note(1, p, 2);
    s.ended(1);
    s.commit();
  }
  {
    std::ostringstream err;
    store::ImportSession forced(store, {a}, true, err);
    forced.begin();
    capture::RawPacket p[1] = {pkt(10)};
    forced.note(0, p, 1);  // ... and the run is killed: no commit()
  }
  std::ostringstream err;
  store::ImportSession next(store, {a, b}, false, err);
  EXPECT_TRUE(next.all_skipped());
  const std::string msg = err.str();
  const size_t nl = msg.find('\n');
  ASSERT_NE(nl, std::string::npos) << msg;
  const std::string of_a = msg.substr(0, nl), of_b = msg.substr(nl + 1);
  EXPECT_NE(of_a.find("already imported"), std::string::npos) << msg;
  EXPECT_NE(of_a.find("has no end logged"), std::string::npos) << msg;
  EXPECT_NE(of_a.find("twice"), std::string::npos) << msg;
  // b was not touched by the killed run: its message is the plain one.
  EXPECT_NE(of_b.find("already imported"), std::string::npos) << msg;
  EXPECT_EQ(of_b.find("has no end logged"), std::string::npos) << msg;
  // A later complete run ends the story: the killed one is before it.
  {
    std::ostringstream e2;
    store::ImportSession forced(store, {a}, true, e2);
    forced.begin();
    capture::RawPacket p[2] = {pkt(10), pkt(20)};
    forced.note(0, p, 2);
    forced.ended(0);
    forced.commit();
  }
  std::ostringstream e3;
  store::ImportSession last(store, {a}, false, e3);
  EXPECT_TRUE(last.all_skipped());
  EXPECT_EQ(e3.str().find("has no end logged"), std::string::npos) << e3.str();
}

// A run that began a file and stored nothing of it (no packet) ends its begun line: the file
// is not refused next time. A run that ended in part (a signal) is refused as partial.
TEST(ImportSession, ABegunImportIsEndedByItsRunsEndLine) {
  TempDir d;
  const std::string store = new_store(d);
  write_file(d.p / "empty.pcap", random_bytes(24, 9));
  write_file(d.p / "b.pcap", random_bytes(4096, 10));
  std::vector<std::string> paths = {(d.p / "empty.pcap").string(), (d.p / "b.pcap").string()};
  {
    std::ostringstream err;
    store::ImportSession s(store, paths, false, err);
    s.begin();
    s.ended(0);
    capture::RawPacket p[1] = {pkt(10)};
    s.note(1, p, 1);  // b: interrupted by a signal after a packet
    s.commit();
  }
  std::ostringstream err;
  store::ImportSession again(store, paths, false, err);
  EXPECT_FALSE(again.skip(0)) << err.str();
  EXPECT_TRUE(again.skip(1));
  EXPECT_NE(err.str().find("partly imported"), std::string::npos) << err.str();
}
