#include "store/index.h"

#include <future>

#include "packet/fragment_layers.h"
#include "store/roaring_writer.h"

namespace tmach::store {

const std::map<uint32_t, Roaring>& SegmentIndex::scalar(Field f) const {
  switch (f) {
    case Field::kPort:
      return port;
    case Field::kProto:
      return proto;
    case Field::kNet:
      return net;
    default:
      return vlan;
  }
}

size_t SegmentIndex::memory_bytes() const {
  size_t n = 0;
  for (auto& [k, b] : addr) n += 16 + b.getSizeInBytes();
  for (auto* m : {&port, &proto, &net, &vlan})
    for (auto& [k, b] : *m) n += 4 + b.getSizeInBytes();
  return n;
}

IndexBuilder::IndexBuilder() { clear(); }

namespace {

// Doubles an open-addressed table (cold: a segment's tables reach their size early), placing
// every used slot again by `home` (which sees the new size).
template <class Table, class Home>
[[gnu::noinline, gnu::cold]] void grow_table(Table& t, Home&& home) {
  Table old(t.size() * 2, typename Table::value_type{{}, -1});
  old.swap(t);
  const size_t m = t.size() - 1;
  for (const auto& s : old)
    if (s.slot >= 0)
      for (size_t i = home(s.key);; i = (i + 1) & m)
        if (t[i].slot < 0) {
          t[i] = s;
          break;
        }
}

}  // namespace

// v6_slot and v4_slot run for every address of every packet, from add() only (this file):
// inlined there, the growth out of line.
[[gnu::always_inline]] inline int32_t& IndexBuilder::v6_slot(const AddrKey& k) {
  if (v6_used_ * 2 >= v6_.size()) [[unlikely]]
    grow_table(v6_, [this](const AddrKey& key) { return AddrKeyHash{}(key) & (v6_.size() - 1); });
  size_t m = v6_.size() - 1;
  for (size_t i = AddrKeyHash{}(k)&m;; i = (i + 1) & m) {
    V6Slot& s = v6_[i];
    if (s.slot < 0) [[unlikely]] {
      s.key = k;
      ++v6_used_;
      ensure(s.slot);
      addr_keys_.emplace_back(k, s.slot);
      return s.slot;
    }
    if (same_key(s.key, k)) return s.slot;
  }
}

[[gnu::always_inline]] inline int32_t& IndexBuilder::v4_slot(uint32_t k) {
  if (v4_used_ * 2 >= v4_.size()) [[unlikely]] {
    --v4_shift_;
    grow_table(v4_, [this](uint32_t key) { return v4_home(key); });
  }
  const size_t m = v4_.size() - 1;
  for (size_t i = v4_home(k);; i = (i + 1) & m) {
    V4Slot& s = v4_[i];
    if (s.slot < 0) [[unlikely]] {
      s.key = k;
      ++v4_used_;
      ensure(s.slot);
      AddrKey a{};
      a[10] = a[11] = 0xff;
      std::memcpy(&a[12], &k, 4);
      addr_keys_.emplace_back(a, s.slot);
      return s.slot;
    }
    if (s.key == k) return s.slot;
  }
}

// net_index and append_to_list, like the slots above, run per packet from add() only.
[[gnu::always_inline]] inline size_t IndexBuilder::net_index(uint32_t key) {
  for (size_t i = 0; i < net_.size(); ++i)
    if (net_[i].first == key) return i;
  net_.emplace_back(key, -1);
  net_list_.push_back(-1);
  return net_.size() - 1;
}

[[gnu::always_inline]] inline void IndexBuilder::append_to_list(int32_t& list, int32_t& slot) {
  if (list < 0) [[unlikely]] {
    // (`list` set once the list exists: build_postings() takes every one set as an index)
    lists_.push_back(List{static_cast<uint32_t>(ensure(slot)), {}});
    list = static_cast<int32_t>(lists_.size() - 1);
    if (!spare_lists_.empty()) {
      lists_.back().ords.swap(spare_lists_.back());
      spare_lists_.pop_back();
    }
  }
  lists_[static_cast<size_t>(list)].ords.push_back(ord_);
}

void IndexBuilder::add(uint32_t ord, const KeysView& k) {
  if (next_ord_ == first_ord_ && out_of_sequence_.empty()) first_ord_ = next_ord_ = ord;  // the first
  // A few ordinals skipped (no caller here does) stay in sequence as packets without keys.
  for (; ord > next_ord_ && ord - next_ord_ < 1024; ++next_ord_) counts_.push_back(0);
  const bool in_sequence = ord == next_ord_;
  ord_ = ord;
  const size_t keys = size_t{k.n_v4} + k.n_v6 + k.n_scalars;
  entries_ += keys;
  // The slots of the logged keys (all but the listed ones) go straight into the log when its
  // chunk has room for every key of the packet (almost always), else through `local`. Local
  // copies throughout: a member written per key is a store the compiler must keep, and
  // reload after every store to the log.
  uint32_t local[2 * IndexKeys::kMaxAddrs + IndexKeys::kMaxScalars];
  uint32_t* out = in_sequence ? slots_.room(keys) : nullptr;
  if (!out) out = local;
  uint32_t n = 0;
  for (size_t i = 0; i < k.n_v4; ++i) {
    uint32_t a;
    std::memcpy(&a, k.v4 + 4 * i, 4);
    out[n++] = static_cast<uint32_t>(ensure(v4_slot(a)));
  }
  for (size_t i = 0; i < k.n_v6; ++i) {
    AddrKey a;
    std::memcpy(a.data(), k.v6 + 16 * i, 16);
    out[n++] = static_cast<uint32_t>(ensure(v6_slot(a)));
  }
  for (size_t i = 0; i < k.n_scalars; ++i) {
    uint32_t s;
    std::memcpy(&s, k.scalars + 4 * i, 4);
    if (s & kScalarNetFlag) {
      const size_t at = net_index(s & ~kScalarNetFlag);
      append_to_list(net_list_[at], net_[at].second);
    } else if (s >= kScalarProtoBase && s < kScalarVlanBase) {
      append_to_list(proto_list_[s - kScalarProtoBase], direct_[s]);
    } else if (s < kScalarDirectEnd) {
      out[n++] = static_cast<uint32_t>(ensure(direct_[s]));
    }
  }
  if (in_sequence) {
    if (out != local)
      slots_.commit(n);
    else
      for (uint32_t i = 0; i < n; ++i) slots_.push_back(local[i]);
    counts_.push_back(static_cast<uint8_t>(n));
    ++next_ord_;
  } else {
    for (uint32_t i = 0; i < n; ++i) out_of_sequence_.push_back(Entry{local[i], ord});
  }
}

void IndexBuilder::add_keys(uint32_t ord, const packet::PacketInfo& p) {
  IndexKeys k;
  index_keys(p, k);
  add(ord, k);
}

void IndexBuilder::add_packet(uint32_t ord, const packet::PacketInfo& p, packet::FragmentLayers* frags,
                              uint64_t ts_ns) {
  if (!frags || packet::fragmented_layer(p) < 0) return add_keys(ord, p);  // the common case
  packet::PacketInfo full = p;
  switch (frags->apply(full, ts_ns)) {
    case packet::FragmentLayers::Outcome::kOrphan:
      orphans_.add(packet::FragmentId::of(p.ip[packet::fragmented_layer(p)]), Orphan{ord, p});
      break;
    case packet::FragmentLayers::Outcome::kFirst:
      // Later fragments of this datagram that came first: index them as the datagram now.
      orphans_.take(packet::FragmentId::of(full.ip[packet::fragmented_layer(full)]), [&](const Orphan& o) {
        packet::PacketInfo info = o.info;
        if (frags->apply(info, ts_ns) != packet::FragmentLayers::Outcome::kInherited) return false;
        add_keys(o.ordinal, info);
        return true;
      });
      break;
    default:
      break;
  }
  add_keys(ord, full);
}

namespace {

// Bytewise order of 16-byte keys (std::array's operator<, SegmentIndex's map order) as two
// big-endian 64-bit words.
struct AddrOrder {
  static std::pair<uint64_t, uint64_t> words(const AddrKey& k) {
    uint64_t a, b;
    std::memcpy(&a, k.data(), 8);
    std::memcpy(&b, k.data() + 8, 8);
    return {__builtin_bswap64(a), __builtin_bswap64(b)};
  }
  bool operator()(const std::pair<AddrKey, PostingIndex::Span>& x,
                  const std::pair<AddrKey, PostingIndex::Span>& y) const {
    return words(x.first) < words(y.first);
  }
};

}  // namespace

void IndexBuilder::build_postings(PostingIndex& out, bool two_threads) const {
  // Group the log by slot: count, prefix sums, scatter. After the scatter slot_end[s] is
  // where slot s ends, and so where slot s + 1 begins.
  std::vector<uint32_t>& end = out.slot_end;
  end.assign(nslots_, 0);
  // Both passes touch end[] (and the scatter ords[]) at random, and a segment's slots are
  // more than the caches hold: ask for those lines a few keys ahead. (Measured on
  // ingest-heavy: the scatter's loads and stores of end[] and ords[] were most of the seal.)
  constexpr size_t kAhead = 16;
  slots_.for_each_chunk([&](const uint32_t* p, size_t n) {
    size_t i = 0;
    for (; i + kAhead < n; ++i) {
      __builtin_prefetch(&end[p[i + kAhead]], 1);
      ++end[p[i]];
    }
    for (; i < n; ++i) ++end[p[i]];
  });
  for (const Entry& e : out_of_sequence_) ++end[e.slot];
  uint32_t sum = 0;
  for (uint32_t& n : end) {
    const uint32_t c = n;
    n = sum;
    sum += c;
  }
  const size_t entries = slots_.size() + out_of_sequence_.size();
  if (out.ords.size() < entries) out.ords.resize(entries);
  uint32_t* ords = out.ords.data();
  // The slots in sequence, each packet's `count` of them with its ordinal: packet by packet,
  // the slots read through a cursor over the log's chunks. A packet whose slots and the
  // prefetches' reach lie within the current chunk (nearly all) takes the short loop.
  {
    const uint32_t* p = nullptr;
    size_t at = 0, n = 0, next_chunk = 0;  // the cursor: p[at], of n in chunk next_chunk - 1
    uint32_t ord = first_ord_;
    counts_.for_each_chunk([&](const uint8_t* cnt, size_t m) {
      for (size_t k = 0; k < m; ++k, ++ord) {
        size_t c = cnt[k];
        if (at + c + kAhead <= n) [[likely]] {
          for (; c; --c, ++at) {
            __builtin_prefetch(&end[p[at + kAhead]], 1);
            // (end[] of that key may still move before we get there: the line is what counts)
            __builtin_prefetch(&ords[end[p[at + kAhead / 2]]], 1);
            ords[end[p[at]]++] = ord;
          }
          continue;
        }
        for (; c; --c, ++at) {
          while (at == n) {  // (a packet's slots may straddle two chunks)
            p = slots_.chunk(next_chunk++, n);
            at = 0;
          }
          if (at + kAhead < n) __builtin_prefetch(&end[p[at + kAhead]], 1);
          if (at + kAhead / 2 < n) __builtin_prefetch(&ords[end[p[at + kAhead / 2]]], 1);
          ords[end[p[at]]++] = ord;
        }
      }
    });
  }
  for (const Entry& e : out_of_sequence_) ords[end[e.slot]++] = e.ord;

  // A slot's ordinals ascend, but a packet carrying the key twice (source port = destination
  // port) adds its ordinal twice in a row, and a later fragment indexed again when its first
  // arrived adds an earlier ordinal: such spans are sorted (if need be) and de-duplicated.
  // Sizing the bitmap checks the order on the way (most spans are in order): one pass.
  // (ordinals found not ascending: sorted if need be and de-duplicated where they are)
  auto ordered = [](uint32_t* first, uint32_t* last) {
    bool dup = false, unordered = false;
    for (uint32_t* p = first + 1; p < last; ++p)
      if (p[0] <= p[-1]) {
        dup = true;
        unordered |= p[0] < p[-1];
      }
    if (unordered) std::sort(first, last);
    if (dup) last = std::unique(first, last);
    const size_t n = static_cast<size_t>(last - first);
    return PostingIndex::Span{first, static_cast<uint32_t>(n),
                              static_cast<uint32_t>(roaring_portable_size(first, n))};
  };
  auto span = [&](int32_t slot) {
    const size_t s = static_cast<size_t>(slot);
    uint32_t* first = ords + (s == 0 ? 0 : end[s - 1]);
    uint32_t* last = ords + end[s];
    const size_t bytes = roaring_portable_size_if_ascending(first, static_cast<size_t>(last - first));
    if (bytes)
      return PostingIndex::Span{first, static_cast<uint32_t>(last - first), static_cast<uint32_t>(bytes)};
    return ordered(first, last);
  };

  // The protocols' and network kinds' postings are their lists (a list's slot has no entries
  // in the log): used where they are when ascending without repeats, as they nearly always
  // are (copying them was a pass over a few ordinals a packet, into memory of its own);
  // otherwise copied into `unordered`, then sorted and de-duplicated there.
  std::vector<PostingIndex::Span> listed(lists_.size());
  size_t unordered = 0;
  for (size_t i = 0; i < lists_.size(); ++i) {
    const util::HugeVector<uint32_t>& o = lists_[i].ords;
    const size_t bytes = roaring_portable_size_if_ascending(o.data(), o.size());
    listed[i] = PostingIndex::Span{o.data(), static_cast<uint32_t>(o.size()), static_cast<uint32_t>(bytes)};
    if (bytes == 0) unordered += o.size();
  }
  if (out.unordered.size() < unordered) out.unordered.resize(unordered);
  for (size_t i = 0, at = 0; i < lists_.size(); ++i) {
    if (listed[i].bytes != 0) continue;
    uint32_t* first = out.unordered.data() + at;
    at += listed[i].size;
    listed[i] = ordered(first, std::copy_n(listed[i].data, listed[i].size, first));
  }

  // The address keys' spans, sorted by key; with two threads on a helper (a std::async task,
  // joined below) while this thread does the scalar keys': spans of different slots touch
  // disjoint ranges of ords, and each side fills vectors of its own.
  auto addr_spans = [&] {
    out.addr.clear();
    out.addr.reserve(addr_keys_.size());
    for (const auto& [k, slot] : addr_keys_) out.addr.emplace_back(k, span(slot));
    std::sort(out.addr.begin(), out.addr.end(), AddrOrder{});
  };
  std::future<void> addr_done;
  if (two_threads)
    addr_done = std::async(std::launch::async, addr_spans);
  else
    addr_spans();
  for (auto* f : {&out.port, &out.proto, &out.net, &out.vlan}) f->clear();
  for (uint32_t k = 0; k < kScalarProtoBase; ++k)
    if (direct_[k] >= 0) out.port.emplace_back(k, span(direct_[k]));
  for (uint32_t k = 0; k < 256; ++k)
    if (proto_list_[k] >= 0) out.proto.emplace_back(k, listed[static_cast<size_t>(proto_list_[k])]);
  for (uint32_t k = 0; k < 4096; ++k)
    if (direct_[kScalarVlanBase + k] >= 0) out.vlan.emplace_back(k, span(direct_[kScalarVlanBase + k]));
  if (direct_[kScalarVlanBase + 4096] >= 0)
    out.vlan.emplace_back(kAnyVlan, span(direct_[kScalarVlanBase + 4096]));
  for (size_t i = 0; i < net_.size(); ++i)
    if (net_list_[i] >= 0) out.net.emplace_back(net_[i].first, listed[static_cast<size_t>(net_list_[i])]);
  std::sort(out.net.begin(), out.net.end(), [](auto& x, auto& y) { return x.first < y.first; });
  if (two_threads) addr_done.get();  // (rethrows the helper's failure)
}

const PostingIndex& IndexBuilder::finish_postings(bool two_threads) {
  build_postings(postings_, two_threads);
  clear();
  return postings_;
}

SegmentIndex IndexBuilder::finish() { return to_segment_index(finish_postings()); }

SegmentIndex IndexBuilder::snapshot() const {
  PostingIndex p;
  build_postings(p);
  return to_segment_index(p);
}

SegmentIndex to_segment_index(const PostingIndex& p) {
  auto bitmap = [&](PostingIndex::Span s) {
    Roaring r;
    r.addMany(s.size, p.of(s).data());
    r.runOptimize();
    return r;
  };
  SegmentIndex ix;
  for (const auto& [k, s] : p.addr) ix.addr.emplace_hint(ix.addr.end(), k, bitmap(s));
  for (auto [from, to] : {std::pair{&p.port, &ix.port}, std::pair{&p.proto, &ix.proto},
                          std::pair{&p.net, &ix.net}, std::pair{&p.vlan, &ix.vlan}})
    for (const auto& [k, s] : *from) to->emplace_hint(to->end(), k, bitmap(s));
  return ix;
}

uint64_t IndexBuilder::memory_bytes() const {
  auto vec = [](const auto& v) { return uint64_t{v.capacity()} * sizeof(v[0]); };
  uint64_t n = slots_.memory_bytes() + counts_.memory_bytes() + vec(out_of_sequence_) +
               orphans_.size() * (sizeof(Orphan) + sizeof(packet::FragmentId) + 32);
  for (const List& l : lists_) n += vec(l.ords);
  for (const auto& l : spare_lists_) n += vec(l);
  n += vec(lists_) + vec(spare_lists_) + vec(direct_) + vec(net_) + vec(proto_list_) + vec(net_list_);
  n += vec(v6_) + vec(v4_) + vec(addr_keys_);
  const PostingIndex& p = postings_;
  n += vec(p.ords) + vec(p.unordered) + vec(p.addr) + vec(p.port) + vec(p.proto) + vec(p.net) + vec(p.vlan) +
       vec(p.slot_end);
  return n;
}

void IndexBuilder::clear() {
  entries_ = 0;
  orphans_.clear();
  slots_.clear();
  counts_.clear();
  out_of_sequence_.clear();
  first_ord_ = next_ord_ = 0;
  nslots_ = 0;
  direct_.assign(kScalarDirectEnd, -1);
  net_.clear();
  // Last first: the next segment's first list (most often the same key, as common as it was
  // here) gets this one's memory back.
  for (auto l = lists_.rbegin(); l != lists_.rend(); ++l) {
    l->ords.clear();
    spare_lists_.push_back(std::move(l->ords));
  }
  lists_.clear();
  proto_list_.assign(256, -1);
  net_list_.clear();
  v6_.assign(256, V6Slot{{}, -1});
  v6_used_ = 0;
  v4_.assign(1024, V4Slot{0, -1});
  v4_shift_ = 64 - 10;
  v4_used_ = 0;
  addr_keys_.clear();
}

}  // namespace tmach::store
