#include "store/index.h"

#include <algorithm>
#include <future>
#include <stdexcept>

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
  if (!any_) {  // the first
    any_ = true;
    first_ord_ = next_ord_ = ord;
  }
  // A few ordinals skipped stay in sequence as packets without keys. After a gap of 1024 or
  // more every later packet is out of sequence: right, but 8 bytes a key and merged at the seal
  // (only the rebuild of a flow file with a damaged block skips ordinals, a block's worth).
  for (; ord > next_ord_ && ord - next_ord_ < 1024; ++next_ord_) {
    if ((next_ord_ & 0xffff) == 0 && next_ord_ != first_ord_) flush_window();
    counts_.push_back(0);
  }
  const bool in_sequence = ord == next_ord_;
  if (in_sequence && (ord & 0xffff) == 0 && ord != first_ord_) [[unlikely]]
    flush_window();  // a new window: the last one's containers are final
  ord_ = ord;
  const size_t keys = size_t{k.n_v4} + k.n_v6 + k.n_scalars;
  entries_ += keys;
  // The slots of the logged keys (all but the listed ones) go straight into the log when its
  // chunk has room for every key of the packet (almost always), else through `local`. Local
  // copies throughout: a member written per key is a store the compiler must keep, and
  // reload after every store to the log.
  uint32_t local[2 * IndexKeys::kMaxAddrs + IndexKeys::kMaxScalars];
  uint32_t* out = local;
  if (in_sequence) {
    slots_.reserve(slots_.size() + keys);
    out = slots_.data() + slots_.size();
  }
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
    // (a packet out of sequence has all its keys in `local`, its listed ones too)
    if (s & kScalarNetFlag) {
      const size_t at = net_index(s & ~kScalarNetFlag);
      if (in_sequence)
        append_to_list(net_list_[at], net_[at].second);
      else
        out[n++] = static_cast<uint32_t>(ensure(net_[at].second));
    } else if (s >= kScalarProtoBase && s < kScalarVlanBase) {
      if (in_sequence)
        append_to_list(proto_list_[s - kScalarProtoBase], direct_[s]);
      else
        out[n++] = static_cast<uint32_t>(ensure(direct_[s]));
    } else if (s < kScalarDirectEnd) {
      out[n++] = static_cast<uint32_t>(ensure(direct_[s]));
    }
  }
  if (in_sequence) {
    slots_.resize_for_overwrite(slots_.size() + n);
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

void ContainerArena::next_chunk() {
  const size_t next = chunks_.empty() ? 0 : cur_ + 1;
  if (next == chunks_.size()) {
    // (references are 32-bit, in units of 2 bytes: 8 GiB, far above a segment's containers:
    // at most one of 10 bytes for each of its segment_size / 8 keys)
    if ((chunks_.size() + 1) * (kChunk / 2) > (uint64_t{1} << 32))
      throw std::length_error("index arena full");
    // (what can throw first, the arena unchanged if it does)
    chunks_.reserve(next + 1);
    used_.reserve(next + 1);
    std::unique_ptr<uint8_t[], Free> chunk(static_cast<uint8_t*>(util::page_alloc(kChunk)));
    chunks_.push_back(std::move(chunk));
    used_.push_back(0);
  }
  cur_ = next;
  at_ = 0;
}

std::pair<uint32_t, RoaringContainer> IndexBuilder::write_container(uint32_t slot, uint32_t* ords, size_t n) {
  // (a packet carrying the key twice gave its ordinal twice, next to each other)
  n = static_cast<size_t>(std::unique(ords, ords + n) - ords);
  const RoaringContainer c = roaring_container_shape(ords, n);
  uint8_t* data = arena_.add(c, slot);
  roaring_container_write(ords, n, c, data);
  return {arena_.reference(data), c};
}

void IndexBuilder::add_container(uint32_t slot, uint32_t* ords, size_t n) {
  const RoaringContainer c = write_container(slot, ords, n).second;
  SlotState& st = slot_state_[slot];
  ++st.containers;
  st.data_bytes += c.bytes;
  st.has_run |= c.kind == RoaringContainer::kRun;
}

void IndexBuilder::flush_window() {
  if (slot_state_.size() < nslots_) slot_state_.resize(nslots_);
  if (window_.size() < nslots_) window_.resize(nslots_, 0);
  uint32_t* win = window_.data();
  // Group the window's log by slot: count (noting the slots it touches), prefix sums over
  // those, scatter. After the scatter win[s] is where slot s's ordinals end. Both passes
  // touch win[] at random, over more slots than the caches hold: its lines are asked for a
  // few keys ahead.
  constexpr size_t kAhead = 16;
  touched_.clear();
  const uint32_t* p = slots_.data();
  const size_t n = slots_.size();
  {
    size_t i = 0;
    for (; i + kAhead < n; ++i) {
      __builtin_prefetch(&win[p[i + kAhead]], 1);
      if (win[p[i]]++ == 0) touched_.push_back(p[i]);
    }
    for (; i < n; ++i)
      if (win[p[i]]++ == 0) touched_.push_back(p[i]);
  }
  uint32_t sum = 0;
  for (uint32_t s : touched_) {
    const uint32_t c = win[s];
    win[s] = sum;
    sum += c;
  }
  if (window_ords_.size() < sum) window_ords_.resize(sum);
  uint32_t* ords = window_ords_.data();
  {
    size_t at = 0;
    uint32_t ord = first_ord_;
    for (const uint8_t c : counts_) {
      for (const size_t e = at + c; at < e; ++at) {
        if (at + kAhead < n) __builtin_prefetch(&win[p[at + kAhead]], 1);
        ords[win[p[at]]++] = ord;
      }
      ++ord;
    }
  }
  // Each touched slot's container, in the order they were touched: their states are as
  // scattered as their slots, so asked for a few slots ahead (without it, the state's load was
  // most of add_container's time: build/micro_seal).
  uint32_t begin = 0;
  const uint32_t* t = touched_.data();
  for (size_t i = 0, nt = touched_.size(); i < nt; ++i) {
    if (i + kAhead < nt) __builtin_prefetch(&slot_state_[t[i + kAhead]], 1);
    const uint32_t s = t[i];
    const uint32_t end = win[s];
    win[s] = 0;
    add_container(s, ords + begin, end - begin);
    begin = end;
  }
  for (List& l : lists_)
    if (!l.ords.empty()) {
      add_container(l.slot, l.ords.data(), l.ords.size());
      l.ords.clear();
    }
  slots_.clear();
  counts_.clear();
  first_ord_ = next_ord_;
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

template <class F>
void IndexBuilder::for_each_scalar(F&& f) const {
  for (uint32_t k = 0; k < kScalarProtoBase; ++k)
    if (direct_[k] >= 0) f(Field::kPort, k, direct_[k]);
  for (uint32_t k = 0; k < 256; ++k)
    if (direct_[kScalarProtoBase + k] >= 0) f(Field::kProto, k, direct_[kScalarProtoBase + k]);
  for (uint32_t k = 0; k < 4096; ++k)
    if (direct_[kScalarVlanBase + k] >= 0) f(Field::kVlan, k, direct_[kScalarVlanBase + k]);
  if (direct_[kScalarVlanBase + 4096] >= 0) f(Field::kVlan, kAnyVlan, direct_[kScalarVlanBase + 4096]);
  for (const auto& [key, slot] : net_)
    if (slot >= 0) f(Field::kNet, key, slot);
}

void PostingIndex::write(Span s, uint8_t* out) const {
  // The containers' descriptions first (the header needs their count, types and sizes), on
  // the stack for a key in up to kLocal windows.
  constexpr size_t kLocal = 64;
  RoaringContainer local[kLocal];
  std::vector<RoaringContainer> more;
  RoaringContainer* cs = local;
  if (s.size > kLocal) {
    more.resize(s.size);
    cs = more.data();
  }
  bool has_run = false;
  for (uint32_t i = 0; i < s.size; ++i) {
    if (i + 4 < s.size) __builtin_prefetch(arena->record(s.data[i + 4]));
    cs[i] = ContainerArena::container(arena->record(s.data[i]));
    has_run |= cs[i].kind == RoaringContainer::kRun;
  }
  uint8_t* p = roaring_header_write({cs, s.size}, has_run, out);
  for (uint32_t i = 0; i < s.size; ++i) {
    std::memcpy(p, ContainerArena::data(arena->record(s.data[i])), cs[i].bytes);
    p += cs[i].bytes;
  }
}

void IndexBuilder::build_postings(bool two_threads) {
  PostingIndex& out = postings_;
  out.arena = &arena_;
  if (slot_state_.size() < nslots_) slot_state_.resize(nslots_);
  // Each slot's containers together, in the order they were made (their keys ascending): a
  // counting sort of the arena's records by slot. After it end[s] is where slot s's end.
  std::vector<uint32_t>& end = out.slot_end;
  end.resize(nslots_);
  uint32_t sum = 0;
  for (size_t s = 0; s < nslots_; ++s) {
    end[s] = sum;
    sum += slot_state_[s].containers;
  }
  // Room behind them for the keys with packets out of sequence, whose references are made
  // again (below): their containers, and at most one more for each such packet.
  std::vector<Entry>& oos = out_of_sequence_;
  std::sort(oos.begin(), oos.end(), [](const Entry& x, const Entry& y) {
    return x.slot != y.slot ? x.slot < y.slot : x.ord < y.ord;
  });
  size_t room = sum + oos.size();
  for (size_t i = 0; i < oos.size(); ++i)
    if (i == 0 || oos[i].slot != oos[i - 1].slot) room += slot_state_[oos[i].slot].containers;
  if (out.refs.size() < room) out.refs.resize(room);
  uint32_t* refs = out.refs.data();
  arena_.for_each(
      [&](uint32_t ref, const RoaringContainer&, uint32_t slot, const uint8_t*) { refs[end[slot]++] = ref; });

  // Keys with packets indexed out of sequence (later fragments indexed again when their first
  // arrived; rare): in each window where a key has such packets, its container (if any) and
  // those packets make a new container, written to the arena; the key's other containers stay
  // as they are. Its references then go behind everyone's, in window order.
  std::unordered_map<uint32_t, PostingIndex::Span> merged;
  if (!oos.empty()) {
    uint32_t* at = refs + sum;
    std::vector<uint32_t> vals;
    for (size_t i = 0; i < oos.size();) {
      const uint32_t slot = oos[i].slot;
      const uint32_t* old = refs + end[slot] - slot_state_[slot].containers;
      const uint32_t* old_end = refs + end[slot];
      uint32_t* first = at;
      size_t data_bytes = 0;
      bool has_run = false;
      auto put = [&](uint32_t ref, const RoaringContainer& c) {
        *at++ = ref;
        data_bytes += c.bytes;
        has_run |= c.kind == RoaringContainer::kRun;
      };
      while (i < oos.size() && oos[i].slot == slot) {
        const uint32_t window = oos[i].ord >> 16;
        vals.clear();
        for (; old != old_end; ++old) {  // the key's containers before the window, then its own
          const uint8_t* r = arena_.record(*old);
          const RoaringContainer c = ContainerArena::container(r);
          if (c.key > window) break;
          if (c.key < window) {
            put(*old, c);
            continue;
          }
          vals.resize(c.card_minus_1 + size_t{1});
          roaring_container_decode(c, ContainerArena::data(r), vals.data());
          ++old;
          break;
        }
        const size_t from_container = vals.size();
        for (; i < oos.size() && oos[i].slot == slot && oos[i].ord >> 16 == window; ++i)
          vals.push_back(oos[i].ord);
        // (both parts ascending: one merge; write_container drops the repeats: packets carrying
        // the key twice, or already in)
        std::inplace_merge(vals.begin(), vals.begin() + static_cast<std::ptrdiff_t>(from_container),
                           vals.end());
        const auto [ref, c] = write_container(slot, vals.data(), vals.size());
        put(ref, c);
      }
      for (; old != old_end; ++old) put(*old, ContainerArena::container(arena_.record(*old)));
      const auto n = static_cast<uint32_t>(at - first);
      merged.emplace(
          slot,
          PostingIndex::Span{first, n, static_cast<uint32_t>(roaring_header_size(n, has_run) + data_bytes)});
    }
  }
  auto span = [&](int32_t slot) {
    const auto s = static_cast<uint32_t>(slot);
    if (!merged.empty())
      if (auto m = merged.find(s); m != merged.end()) return m->second;
    const SlotState& st = slot_state_[s];
    return PostingIndex::Span{
        refs + end[s] - st.containers, st.containers,
        static_cast<uint32_t>(roaring_header_size(st.containers, st.has_run) + st.data_bytes)};
  };

  // The address keys' spans, sorted by key; with two threads on a helper (a std::async task,
  // joined below) while this thread does the scalar keys' (each side fills vectors of its own).
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
  for_each_scalar([&](Field f, uint32_t key, int32_t slot) {
    (f == Field::kPort    ? out.port
     : f == Field::kProto ? out.proto
     : f == Field::kVlan  ? out.vlan
                          : out.net)
        .emplace_back(key, span(slot));
  });
  std::sort(out.net.begin(), out.net.end(), [](auto& x, auto& y) { return x.first < y.first; });
  if (two_threads) addr_done.get();  // (rethrows the helper's failure)
}

const PostingIndex& IndexBuilder::finish_postings(bool two_threads) {
  flush_window();
  build_postings(two_threads);
  clear();  // (keeps the arena's contents until the next add(): the postings refer to them)
  return postings_;
}

SegmentIndex IndexBuilder::finish() { return to_segment_index(finish_postings()); }

SegmentIndex IndexBuilder::snapshot() const {
  // Every slot's bitmap: its finished containers, then the window's log and lists, then the
  // packets out of sequence (Roaring sorts those in).
  std::vector<Roaring> bm(nslots_);
  std::vector<uint32_t> vals;
  arena_.for_each([&](uint32_t, const RoaringContainer& c, uint32_t slot, const uint8_t* data) {
    vals.resize(c.card_minus_1 + size_t{1});
    roaring_container_decode(c, data, vals.data());
    bm[slot].addMany(vals.size(), vals.data());
  });
  {
    uint32_t ord = first_ord_;
    size_t i = 0;
    for (uint8_t c : counts_) {
      for (; c; --c) bm[slots_[i++]].add(ord);
      ++ord;
    }
  }
  for (const List& l : lists_) bm[l.slot].addMany(l.ords.size(), l.ords.data());
  for (const Entry& e : out_of_sequence_) bm[e.slot].add(e.ord);
  for (Roaring& r : bm) r.runOptimize();
  SegmentIndex ix;
  for (const auto& [k, slot] : addr_keys_) ix.addr.emplace(k, std::move(bm[static_cast<size_t>(slot)]));
  for_each_scalar([&](Field f, uint32_t key, int32_t slot) {
    (f == Field::kPort    ? ix.port
     : f == Field::kProto ? ix.proto
     : f == Field::kVlan  ? ix.vlan
                          : ix.net)
        .emplace(key, std::move(bm[static_cast<size_t>(slot)]));
  });
  return ix;
}

SegmentIndex to_segment_index(const PostingIndex& p) {
  std::vector<uint8_t> buf;
  auto bitmap = [&](PostingIndex::Span s) {
    buf.resize(s.bytes);
    p.write(s, buf.data());
    return Roaring::readSafe(reinterpret_cast<const char*>(buf.data()), buf.size());
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
  uint64_t n = vec(slots_) + vec(counts_) + vec(out_of_sequence_) +
               orphans_.size() * (sizeof(Orphan) + sizeof(packet::FragmentId) + 32);
  for (const List& l : lists_) n += vec(l.ords);
  for (const auto& l : spare_lists_) n += vec(l);
  n += vec(lists_) + vec(spare_lists_) + vec(direct_) + vec(net_) + vec(proto_list_) + vec(net_list_);
  n += vec(v6_) + vec(v4_) + vec(addr_keys_);
  n += arena_.memory_bytes() + vec(slot_state_) + vec(window_) + vec(touched_) + vec(window_ords_);
  const PostingIndex& p = postings_;
  n += vec(p.refs) + vec(p.addr) + vec(p.port) + vec(p.proto) + vec(p.net) + vec(p.vlan) + vec(p.slot_end);
  return n;
}

void IndexBuilder::clear() {
  entries_ = 0;
  any_ = false;
  arena_.clear();
  slot_state_.clear();
  window_.clear();
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
