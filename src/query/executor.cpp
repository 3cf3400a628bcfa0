#include "query/executor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <queue>
#include <stdexcept>

#include "packet/datagram_memory.h"
#include "packet/decoder.h"
#include "query/packet_filter.h"
#include "query/planner.h"
#include "store/pcap_scan.h"
#include "store/sidecar.h"
#include "util/file_io.h"
#include "util/pcap.h"

namespace tmach::query {
namespace {

// A segment's pcap that could not be opened (errno `e`): there but unreadable ends the answer
// (util::UnreadableError); gone (ENOENT) is a segment evicted since it was listed, which the
// caller warns of and passes.
[[noreturn]] void open_failed(const std::string& path, int e) {
  util::throw_if_unreadable(path, e);
  throw std::runtime_error(fmt::format("{}: cannot open ({}: evicted meanwhile?)", path, std::strerror(e)));
}

// A read-only mapping of a segment's pcap file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) open_failed(path, errno);
    struct stat st;
    int e = 0;  // (0: empty; a segment's pcap is never empty: its header is written first)
    if (fstat(fd, &st) != 0) {
      e = errno;
    } else if (st.st_size > 0) {
      size_ = static_cast<size_t>(st.st_size);
      void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED)
        base_ = static_cast<const uint8_t*>(m);
      else
        e = errno;
    }
    ::close(fd);
    if (!base_) util::throw_if_unreadable(path, e, "map");  // (out of address space, say)
    if (!base_) throw std::runtime_error(fmt::format("{}: cannot map (empty)", path));
  }
  ~MappedFile() {
    if (base_) munmap(const_cast<uint8_t*>(base_), size_);
  }
  const uint8_t* base() const { return base_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

// Reads single records of a pcap file with pread, through a small window (neighbouring
// candidates often share it). For candidates far apart this costs less than mapping the file:
// each first touch of a mapped page is a fault that maps its neighbours too (fault-around).
class RecordReader {
 public:
  // `size`: the file's size, known already (checked against the sidecar).
  RecordReader(const std::string& path, uint64_t size) : path_(path), size_(size) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) open_failed(path, errno);
  }
  ~RecordReader() { ::close(fd_); }
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;
  uint64_t size() const { return size_; }

  // The record at `off` (16-byte header, then caplen bytes), valid until the next call;
  // nullptr when it does not fit in the file. `window`: how much to read from `off` if the
  // record is not in the bytes read last (more when later records will be wanted too).
  const uint8_t* record(uint64_t off, size_t window = kRecordGuess) {
    if (off + 16 > size_) return nullptr;
    if (off < pos_ || off + 16 > pos_ + len_) fill(off, std::max<size_t>(window, 16));
    uint32_t caplen;
    std::memcpy(&caplen, buf_.data() + (off - pos_) + 8, 4);
    if (caplen > (16u << 20) || off + 16 + caplen > size_) return nullptr;
    if (off + 16 + caplen > pos_ + len_) fill(off, 16 + caplen);
    return buf_.data() + (off - pos_);
  }

  // Enough for most records (an Ethernet frame and its header): reading more costs copying.
  static constexpr size_t kRecordGuess = 2048;

 private:
  void fill(uint64_t off, size_t want) {
    want = static_cast<size_t>(std::min<uint64_t>(want, size_ - off));
    if (buf_.size() < want) buf_.resize(want);
    ssize_t got = util::pread_full(fd_, buf_.data(), want, off);
    if (got < 0) util::throw_if_unreadable(path_, errno, "read");  // (EIO: not an answer to give short)
    if (got < 0 || static_cast<size_t>(got) < want)
      throw std::runtime_error(fmt::format("{}: read failed (truncated meanwhile?)", path_));
    pos_ = off;
    len_ = want;
  }
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::vector<uint8_t> buf_;
  uint64_t pos_ = 0, len_ = 0;
};

// Up to one candidate per this many bytes of pcap, a segment's candidates are read with
// pread (RecordReader); more, and the file is mapped. Measured on the 5 GB bench store:
// 'host X' (~1300 candidates per 256 MiB segment) spent most of its time in page faults.
constexpr uint64_t kPcapBytesPerReadCandidate = 64 << 10;

struct Match {
  uint64_t ts;
  uint64_t off;  // record header offset: in the mapped file, or in `kept`
};

// The matches of one segment, sorted by time, with the file they live in: mapped, or (when
// its candidates were read with pread) copies of the matching records in `kept`.
struct SegmentMatches {
  size_t order;  // position in the time-sorted segment list: breaks timestamp ties
  uint32_t linktype;
  std::unique_ptr<MappedFile> file;
  std::unique_ptr<RecordReader> reader;
  std::vector<uint8_t> kept;
  std::vector<Match> matches;
  size_t next = 0;
  bool in_order = false;  // matches were found in time order (a monotonic segment's file order)

  const uint8_t* match_record(const Match& m) const {
    return file ? file->base() + m.off : kept.data() + m.off;
  }
  // A record by its file offset (checked when read through the reader; the caller checked
  // mapped ones), or nullptr.
  const uint8_t* file_record(uint64_t off) const { return file ? file->base() + off : reader->record(off); }
};

class Engine {
  struct Orphan;  // (below)

 public:
  Engine(const QuerySpec& q, QueryStats& st) : q_(q), st_(st) {}

  // Re-checks the record at `off` (its bytes at `data`); a match joins sm.matches. A later
  // fragment is matched as its datagram when its first fragment was re-checked before (in
  // this segment or an earlier one: frags_ lives as long as the query); one whose first
  // was not seen yet is judged as it is, and waits in orphans_ until its first comes later
  // in the segment, and is then judged again as its datagram, at once (either way: under a
  // `not` too). At once, as the index builder does: frags_ holds a datagram only until
  // another one takes its slot, so waiting for the end of the segment lost some (6 of 100
  // reversed datagrams, 362 of 1000).
  void check(SegmentMatches& sm, uint64_t off, uint64_t ts, const uint8_t* data, uint32_t caplen,
             uint32_t wirelen) {
    if (ts < q_.from_ns || ts >= q_.to_ns) return;
    ++st_.candidates;
    packet::FragmentLayers::Outcome o;
    const bool hit = filter_.matches(sm.linktype, data, caplen, wirelen, frags_, ts, o) &&
                     of_connection(sm.linktype, data, caplen);
    if (hit) keep(sm, off, ts, data, caplen);
    if (o == packet::FragmentLayers::Outcome::kOrphan) {
      // At most kMaxOrphans waiting, the oldest forgotten first (its verdict as it was stands),
      // as the index builder keeps them.
      const packet::PacketInfo& p = filter_.last();
      orphans_.add(packet::FragmentId::of(p.ip[packet::fragmented_layer(p)]),
                   Orphan{Match{ts, off}, hit ? sm.matches.size() - 1 : Orphan::kNotKept});
    }
    if (o == packet::FragmentLayers::Outcome::kFirst) {
      first_seen_ = true;
      if (orphans_.size()) {
        const packet::PacketInfo& p = filter_.last();
        orphans_.take(packet::FragmentId::of(p.ip[packet::fragmented_layer(p)]), [&](const Orphan& m) {
          recheck(sm, m);  // (a matches() call: `p` is gone)
          return true;
        });
      }
    }
  }

  // An orphan judged again (its first fragment seen since): one that matches now joins the
  // matches, one that matched as it was leaves them at the end of the segment (dropped_:
  // positions in sm.matches, which must not move before then).
  void recheck(SegmentMatches& sm, const Orphan& m) {
    const uint8_t* rec = sm.file_record(m.at.off);
    if (!rec) return;  // (read through the reader: its verdict as it was stands)
    uint32_t h[4];
    std::memcpy(h, rec, 16);
    packet::FragmentLayers::Outcome o;
    const bool hit = filter_.matches(sm.linktype, rec + 16, h[2], h[3], frags_, m.at.ts, o) &&
                     of_connection(sm.linktype, rec + 16, h[2]);
    if (o != packet::FragmentLayers::Outcome::kInherited) return;  // (its first went meanwhile)
    if (hit && m.kept == Orphan::kNotKept) {
      keep(sm, m.at.off, m.at.ts, rec + 16, h[2]);
      late_added_ = true;
    } else if (!hit && m.kept != Orphan::kNotKept) {
      dropped_.push_back(m.kept);
    }
  }

  // QuerySpec::connection of a frame the filter matched (true without one): of the frame as the
  // exact evaluator decoded it (filter_.last(): a later fragment with its datagram's layers; a
  // split filter's too), or, when libpcap answered the whole filter, as decoded here.
  bool of_connection(uint32_t linktype, const uint8_t* data, uint32_t caplen) {
    if (!q_.connection) return true;
    if (!filter_.libpcap_whole()) return q_.connection(filter_.last());
    packet::decode(linktype, data, caplen, decoded_);
    return q_.connection(decoded_);
  }

  // A match joins the segment's list; read through the reader, its bytes are copied.
  static void keep(SegmentMatches& sm, uint64_t off, uint64_t ts, const uint8_t* data, uint32_t caplen) {
    if (sm.file) {
      sm.matches.push_back(Match{ts, off});
      return;
    }
    sm.matches.push_back(Match{ts, sm.kept.size()});
    sm.kept.insert(sm.kept.end(), data - 16, data + caplen);
  }

  // After a segment: its orphans whose first fragment came later in it, judged again as their
  // datagram: one that matches now joins the matches, one that matched as it was leaves them
  // (so that F and `not F` never both hold for it). Returns true when some were added (out of
  // order).
  // (Those whose first came were judged at once, by check(); the rest are tried once more
  // here, which changes nothing unless frags_ learnt their first some other way.)
  bool recheck_orphans(SegmentMatches& sm) {
    if (first_seen_) orphans_.for_each([&](const Orphan& m) { recheck(sm, m); });
    std::sort(dropped_.begin(), dropped_.end());
    for (auto it = dropped_.rbegin(); it != dropped_.rend(); ++it)
      sm.matches.erase(sm.matches.begin() + static_cast<std::ptrdiff_t>(*it));
    const bool added = late_added_;
    forget_orphans();
    return added;
  }

  void forget_orphans() {
    orphans_.clear();
    dropped_.clear();
    late_added_ = false;
    first_seen_ = false;
  }

  // Reads a sealed segment through its sidecar. Returns false to ask for a scan instead.
  bool through_index(const store::SegmentInfo& seg, SegmentMatches& sm) {
    // Only what the plan needs is read from the sidecar: the directory, the keys and
    // bitmaps of the fields the filter names, and the offsets when there are candidates.
    std::unique_ptr<store::SidecarView> view;
    Roaring cand;
    // A catalog of names only (Catalog::Depth::kNames) leaves to us what it did not check:
    // the pcap's size against the sidecar's (a mismatch: scanned), and the time range.
    uint64_t pcap_bytes = seg.pcap_bytes;
    if (!seg.headers_read) {
      struct stat st;
      if (::stat(seg.pcap_path().c_str(), &st) != 0) open_failed(seg.pcap_path(), errno);
      pcap_bytes = static_cast<uint64_t>(st.st_size);
    }
    try {
      view = store::SidecarView::open(seg.idx_path());
      const store::SegmentMeta& m = view->meta();
      store::check_sidecar_fits(seg.idx_path(), seg.meta, m, pcap_bytes);
      if (m.last_ts < q_.from_ns || m.first_ts >= q_.to_ns) {
        ++st_.segments_skipped_time;
        return true;
      }
      uint32_t n = static_cast<uint32_t>(m.packets);
      // The directory turns the time range into an ordinal range (monotonic segments only).
      uint32_t lo = 0, hi = n;
      if (m.monotonic && (q_.from_ns > m.first_ts || q_.to_ns <= m.last_ts)) {
        for (const auto& d : view->directory()) {
          if (d.ts_ns < q_.from_ns) lo = d.ordinal;
          if (d.ts_ns >= q_.to_ns) {
            hi = d.ordinal;
            break;
          }
        }
      }
      // A link type tm does not decode has no key in the index: libpcap judges every frame
      // (PacketFilter), as it does a filter it answers whole.
      if ((filter_.bpf() && !q_.parsed.split()) || !packet::decodes_link(m.linktype)) {
        if (lo < hi) cand.addRange(lo, hi);
      } else {
        // (A split filter: the candidates of its terms tm plans; libpcap judges the rest.)
        cand = plan_segment(q_.parsed.split() ? q_.parsed.planned : q_.parsed.expr, *view, n).set;
        // Frames cut short inside their headers are judged by the re-check whatever the index
        // says of them (PacketFilter: libpcap's verdict, which the keys they have cannot give).
        // Looked up only where the sidecar does not say there are none (most segments).
        if (m.cut_frames) cand |= view->scalar(store::Field::kNet, store::kNetCut, store::kNetCut);
        if (lo > 0 || hi < n) {
          Roaring range;
          if (lo < hi) range.addRange(lo, hi);
          cand &= range;
        }
      }
      if (cand.isEmpty()) {
        ++st_.segments_empty;
        ++st_.segments_indexed;
        return true;
      }
    } catch (const std::exception& e) {
      st_.warnings.push_back(fmt::format("{} (segment scanned instead)", e.what()));
      return false;
    }
    // Only now, with candidates, is the pcap opened: most segments of a narrow query have none.
    if (cand.cardinality() <= std::max<uint64_t>(16, pcap_bytes / kPcapBytesPerReadCandidate)) {
      sm.reader = std::make_unique<RecordReader>(seg.pcap_path(), pcap_bytes);
      // Room for the copies at once: growing by doubling copied them again and faulted in
      // twice the pages (what is reserved but not used is never touched).
      sm.kept.reserve(cand.cardinality() * RecordReader::kRecordGuess);
    } else
      sm.file = std::make_unique<MappedFile>(seg.pcap_path());
    const uint8_t* base = sm.file ? sm.file->base() : nullptr;
    uint64_t size = sm.file ? sm.file->size() : sm.reader->size();
    // Each candidate's record: where the index puts it (offs), and where the next one begins (ends).
    std::vector<uint64_t> offs, ends;
    offs.reserve(cand.cardinality());
    ends.reserve(cand.cardinality());
    try {
      for (uint32_t ord : cand) {
        offs.push_back(view->offset(ord));
        ends.push_back(ord + 1 < view->meta().packets ? view->offset(ord + 1) : pcap_bytes);
      }
    } catch (const std::exception& e) {
      st_.warnings.push_back(fmt::format("{} (segment scanned instead)", e.what()));
      return fail(sm);
    }
    for (size_t i = 0; i < offs.size(); ++i) {
      uint64_t off = offs[i];
      if (off + 16 > size) {
        st_.warnings.push_back(fmt::format("{}: index points past the end of the file", seg.pcap_path()));
        return fail(sm);
      }
      const uint8_t* rec = base ? base + off : sm.reader->record(off, read_window(offs, i));
      uint32_t h[4] = {0, 0, 0, 0};
      if (rec) std::memcpy(h, rec, 16);
      // The index knows where the next record starts: a record header that disagrees is damaged.
      // It is reported and skipped; the other candidates are found by their own offsets.
      if (!rec || ends[i] < off + 16 || h[2] != ends[i] - off - 16) {
        st_.warnings.push_back(fmt::format(
            "{}: damaged record at offset {} (captured length {}, the index leaves room for {}): skipped",
            seg.pcap_path(), off, h[2], ends[i] < off + 16 ? 0 : ends[i] - off - 16));
        continue;
      }
      uint64_t ts = static_cast<uint64_t>(h[0]) * 1000000000ull + h[1];
      check(sm, off, ts, rec + 16, h[2], h[3]);
    }
    ++st_.segments_indexed;
    sm.in_order = view->meta().monotonic;
    return true;
  }

  // How much to read at candidate i when it is not in the reader's window yet: its record
  // and those of the next candidates close behind it (a connection's packets often are),
  // in one read of at most 64 KiB.
  static size_t read_window(const std::vector<uint64_t>& offs, size_t i) {
    constexpr uint64_t kGap = 8 << 10, kMax = 64 << 10, kGuess = RecordReader::kRecordGuess;
    uint64_t until = offs[i] + kGuess;
    for (size_t j = i + 1; j < offs.size() && offs[j] >= offs[i] && offs[j] <= until + kGap &&
                           offs[j] + kGuess - offs[i] <= kMax;
         ++j)
      until = std::max(until, offs[j] + kGuess);
    return static_cast<size_t>(until - offs[i]);
  }

  // An index read that went wrong half-way: forget it, the segment is scanned instead.
  static bool fail(SegmentMatches& sm) {
    sm.matches.clear();
    sm.kept.clear();
    sm.reader.reset();
    return false;
  }

  void by_scan(const store::SegmentInfo& seg, SegmentMatches& sm) {
    sm.matches.clear();
    sm.kept.clear();
    sm.reader.reset();
    forget_orphans();  // (a scan after a failed index read starts over)
    ++st_.segments_scanned;
    // The file may be growing (being written): only complete records are visited, up to its
    // size when the catalog was taken (a consistent snapshot, e.g. a subscription's history).
    const bool open = seg.state == store::SegmentInfo::State::kOpen;
    store::ScanOptions so;
    so.min_ts = store::name_min_ts(seg.pcap_path());
    if (open) so.limit = seg.pcap_bytes;
    store::ScanResult r;
    try {
      r = store::scan_pcap(
          seg.pcap_path(),
          [&](uint64_t off, uint64_t ts, uint32_t caplen, uint32_t wirelen, const uint8_t* data) {
            if (off + 16 + caplen > sm.file->size()) return;  // grew after we mapped it
            check(sm, off, ts, data, caplen, wirelen);
          },
          so);
    } catch (const util::IoError& e) {
      util::throw_if_unreadable(seg.pcap_path(), e.error_number());  // (there: the answer would be short)
      throw;
    }
    if (r.header_ok) sm.linktype = r.linktype;
    // What a scan cannot read is said, as the index's damaged records are (a segment being
    // written may be empty, or end in a record being written).
    if (!r.header_ok && (!open || !r.header_begun))
      st_.warnings.push_back(fmt::format("{}: no pcap file header: segment unreadable ({} bytes not read)",
                                         seg.pcap_path(), r.file_size));
    else if (r.end == store::ScanResult::End::kDamaged)
      st_.warnings.push_back(fmt::format(
          "{}: damaged record at offset {} ({}): without an index the records after it cannot be found ({} "
          "bytes not read)",
          seg.pcap_path(), r.valid_end, r.damage, r.unread()));
    else if (r.end == store::ScanResult::End::kIncomplete && !open)
      st_.warnings.push_back(fmt::format("{}: cut short in a record at offset {} ({} bytes not read)",
                                         seg.pcap_path(), r.valid_end, r.unread()));
    sm.in_order = seg.state == store::SegmentInfo::State::kSealed && seg.headers_read && seg.meta.monotonic;
  }

  std::unique_ptr<SegmentMatches> open(const store::SegmentInfo& listed, size_t order) {
    auto sm = std::make_unique<SegmentMatches>();
    sm->order = order;
    sm->linktype = listed.meta.linktype;
    bool late_fragments = false;
    store::SegmentInfo moved;  // the segment under its new name, when renamed since listed
    const store::SegmentInfo* segp = &listed;
    for (int attempt = 0;; ++attempt) {
      const store::SegmentInfo& seg = *segp;
      try {
        bool done = false;
        forget_orphans();
        if (seg.state == store::SegmentInfo::State::kSealed)
          done = through_index(seg, *sm);
        else if (seg.state == store::SegmentInfo::State::kBadSidecar)
          st_.warnings.push_back(fmt::format("{} (segment scanned instead)", seg.problem));
        if (!done) {
          if (!sm->file) sm->file = std::make_unique<MappedFile>(seg.pcap_path());
          by_scan(seg, *sm);
        }
        late_fragments = recheck_orphans(*sm);
        break;
      } catch (const util::UnreadableError&) {
        throw;  // (the answer would be short: it is ended, not warned of)
      } catch (const std::exception& e) {
        sm->matches.clear();
        sm->kept.clear();
        sm->file.reset();
        sm->reader.reset();
        // A segment being written is renamed when older packets arrive and when sealed
        // (its name tells its smallest timestamp): look for it under its new name, once.
        if (attempt == 0 && ::access(seg.pcap_path().c_str(), F_OK) != 0) {
          moved = listed;
          if (store::relocate(moved)) {
            segp = &moved;
            continue;
          }
        }
        st_.warnings.push_back(e.what());
        return sm;
      }
    }
    for (std::string& w : filter_.problems())
      if (std::find(st_.warnings.begin(), st_.warnings.end(), w) == st_.warnings.end())
        st_.warnings.push_back(std::move(w));
    if (!sm->in_order || late_fragments)
      std::sort(sm->matches.begin(), sm->matches.end(),
                [](const Match& a, const Match& b) { return a.ts != b.ts ? a.ts < b.ts : a.off < b.off; });
    st_.matched += sm->matches.size();
    return sm;
  }

 private:
  const QuerySpec& q_;
  QueryStats& st_;
  PacketFilter filter_{q_.text, q_.parsed};
  packet::FragmentLayers frags_;
  packet::PacketInfo decoded_;  // (of_connection, when libpcap matched)
  static constexpr size_t kMaxOrphans = 4096;
  struct Orphan {
    static constexpr size_t kNotKept = SIZE_MAX;
    Match at;
    size_t kept;  // its position in the segment's matches when it matched as it was, else kNotKept
  };
  // This segment's later fragments whose first was not seen when they were re-checked.
  packet::WaitingFragments<Orphan> orphans_{kMaxOrphans};
  std::vector<size_t> dropped_;  // positions in the segment's matches of orphans that no longer match
  bool late_added_ = false;      // orphans joined the matches out of order
  bool first_seen_ = false;      // this segment had a first fragment
};

}  // namespace

QueryStats run_query(const store::Catalog& cat, const QuerySpec& q,
                     const std::function<void(const OutPacket&)>& out,
                     const std::function<void()>& before_segment) {
  QueryStats st;
  if (q.parsed.kind == ParseResult::Kind::kError) throw std::runtime_error(format_error(q.text, q.parsed));
  if (q.parsed.kind == ParseResult::Kind::kBpfOnly) {
    std::set<uint32_t> links;  // (of the classes asked: a filter may be one link type's alone)
    for (const auto& s : cat.segments)
      if (q.classes.empty() || std::find(q.classes.begin(), q.classes.end(), s.cls) != q.classes.end())
        links.insert(s.meta.linktype);
    // (No size cap here: the filter given was checked against it before a flow's or Community
    // ID's connections, which tm writes, were joined to it.)
    std::string err = libpcap_filter_error(libpcap_text(q.text, q.parsed), links, false);
    if (!err.empty()) throw std::runtime_error(err);
  }
  std::vector<const store::SegmentInfo*> segs;
  for (const auto& s : cat.segments) {
    ++st.segments_total;
    if (!q.classes.empty() && std::find(q.classes.begin(), q.classes.end(), s.cls) == q.classes.end())
      continue;
    if (s.hi_ts() < q.from_ns || s.lo_ts() >= q.to_ns) {
      ++st.segments_skipped_time;
      continue;
    }
    segs.push_back(&s);
  }
  // A segment whose pcap is lost while its sidecar stays: its packets cannot be answered.
  for (const auto& s : cat.missing) {
    if (!q.classes.empty() && std::find(q.classes.begin(), q.classes.end(), s.cls) == q.classes.end())
      continue;
    if (s.lo_ts() >= q.to_ns) continue;
    st.warnings.push_back(fmt::format("{}: missing (its sidecar {} is there): its packets are not answered",
                                      s.pcap_path(), s.idx_path()));
  }
  std::stable_sort(segs.begin(), segs.end(), [](const store::SegmentInfo* a, const store::SegmentInfo* b) {
    return a->lo_ts() < b->lo_ts();
  });

  // k-way merge: segments join the heap when the merge reaches their first timestamp, so
  // only overlapping segments are held at once.
  Engine eng(q, st);
  using Item = SegmentMatches*;
  auto later = [](Item a, Item b) {
    const Match& x = a->matches[a->next];
    const Match& y = b->matches[b->next];
    return x.ts != y.ts ? x.ts > y.ts : a->order > b->order;
  };
  std::priority_queue<Item, std::vector<Item>, decltype(later)> heap(later);
  std::vector<std::unique_ptr<SegmentMatches>> active;
  size_t next_seg = 0;
  uint64_t emitted = 0;  // (q.limit)
  auto admit_until = [&](uint64_t ts) {
    while (next_seg < segs.size() && (heap.empty() || segs[next_seg]->lo_ts() <= ts)) {
      if (before_segment) before_segment();
      auto sm = eng.open(*segs[next_seg], next_seg);
      ++next_seg;
      if (!sm->matches.empty()) {
        heap.push(sm.get());
        active.push_back(std::move(sm));
      }
      if (!heap.empty()) ts = std::min(ts, heap.top()->matches[heap.top()->next].ts);
    }
  };
  for (;;) {
    if (heap.empty()) {
      if (next_seg >= segs.size()) break;
      admit_until(0);  // opens segments until one has a match (or none are left)
      continue;
    }
    admit_until(heap.top()->matches[heap.top()->next].ts);
    SegmentMatches* sm = heap.top();
    heap.pop();
    const Match& m = sm->matches[sm->next++];
    const uint8_t* rec = sm->match_record(m);
    uint32_t h[4];
    std::memcpy(h, rec, 16);
    out(OutPacket{m.ts, sm->linktype, h[2], h[3], rec + 16});
    if (q.limit && ++emitted == q.limit) break;
    if (sm->next < sm->matches.size()) {
      heap.push(sm);
    } else {
      // Release the segment's mapping as soon as it is exhausted.
      for (auto& a : active)
        if (a.get() == sm) {
          a.reset();
          break;
        }
    }
  }
  return st;
}

}  // namespace tmach::query
