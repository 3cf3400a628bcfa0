#include "server/local_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <tuple>

#include "flow/flow_query.h"
#include "query/executor.h"
#include "server/flow_format.h"
#include "store/catalog.h"
#include "util/pcap.h"
#include "util/timespec.h"

namespace tmach::server {
// --from/--to (the names are the command line's: only the CLI asks a LocalService so far).
void parse_time_range(const std::string& from, const std::string& to, uint64_t& from_ns, uint64_t& to_ns) {
  uint64_t now = util::now_ns();
  for (auto [flag, text, dst] : {std::tuple{"--from", &from, &from_ns}, std::tuple{"--to", &to, &to_ns}}) {
    if (text->empty()) continue;
    std::string err;
    auto t = util::parse_time(*text, now, &err);
    if (!t) throw std::runtime_error(std::string(flag) + ": " + err);
    *dst = *t;
  }
}

namespace {

query::ParseResult parse_filter(const std::string& text) {
  query::ParseResult pr = query::parse_expr(text);
  if (pr.kind == query::ParseResult::Kind::kError) throw BadRequest(query::format_error(text, pr));
  return pr;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string LocalService::query(const QueryRequest& r, const ByteSink& sink, const Warn& warn) {
  query::QuerySpec q;
  q.text = r.filter;
  q.parsed = parse_filter(q.text);
  parse_time_range(r.from, r.to, q.from_ns, q.to_ns);
  if (q.from_ns > q.to_ns) throw std::runtime_error("--from is after --to");
  q.classes = r.classes;
  auto t0 = std::chrono::steady_clock::now();
  // Names only: the executor checks each sidecar it opens (and skips by its time range).
  store::Catalog cat = store::Catalog::scan(store_, store::Catalog::Depth::kNames);
  for (auto& c : q.classes)
    if (std::find(cat.classes.begin(), cat.classes.end(), c) == cat.classes.end())
      throw std::runtime_error(fmt::format("no class '{}' in store {}", c, store_));
  // util/pcap.h: the link type is that of the first packet; packets of another link type
  // cannot share the stream and are counted instead. 1 MiB writes.
  util::pcap::Writer out(sink, 1 << 20);
  query::QueryStats st = query::run_query(cat, q, [&](const query::OutPacket& p) {
    out.write(p.ts_ns, p.linktype, p.caplen, p.wirelen, p.data);
  });
  out.finish();
  double ms = ms_since(t0);
  for (auto& w : st.warnings) warn(w);
  if (out.other_link())
    warn(fmt::format("{} matching packets of another link type than {} were left out", out.other_link(),
                     out.linktype()));
  return fmt::format(
      "{} segments searched ({} by index, {} scanned), {} skipped by time; {} candidates, {} matched, {:.1f} "
      "ms",
      st.segments_indexed + st.segments_scanned, st.segments_indexed, st.segments_scanned,
      st.segments_skipped_time, st.candidates, st.matched, ms);
}

std::string LocalService::flows(const FlowRequest& r, const ByteSink& sink, const Warn& warn) {
  query::ParseResult pr = parse_filter(r.filter);
  uint64_t from = 0, to = UINT64_MAX;
  parse_time_range(r.from, r.to, from, to);
  flow::FlowQueryStats st;
  auto rows = flow::query_flows(store_, pr, from, to, st);
  top_flows(rows, r.top, r.by);
  std::string text = render_flows(rows, r.format);
  sink(text.data(), text.size());
  for (auto& w : st.warnings) warn(w);
  return fmt::format("{} files ({} by index, {} scanned, {} skipped by time), {} records read, {} flows",
                     st.files, st.files_indexed, st.files_scanned, st.files_skipped, st.candidates,
                     rows.size());
}

}  // namespace tmach::server
