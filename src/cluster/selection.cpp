#include "cluster/selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace tmach::cluster {
namespace {

using query::Expr;
using query::Predicate;

void conjuncts(const Expr& e, std::vector<const Expr*>& out) {
  if (e.op == Expr::Op::kAnd) {
    for (auto& k : e.kids) conjuncts(k, out);
  } else {
    out.push_back(&e);
  }
}

bool layer_ok(const Predicate& p, bool tunnels) { return p.layer == Predicate::Layer::kOuter || !tunnels; }

Selection everyone(std::string why) {
  Selection s;
  s.why = std::move(why);
  return s;
}

}  // namespace

Selection select_workers(const query::ParseResult& parsed, const BalanceInfo& b) {
  if (!b.known || b.workers == 0) return everyone("balancing scheme not configured: every worker");
  if (b.workers == 1) {
    Selection s;
    s.all = false;
    s.workers = {0};
    s.why = "one worker";
    return s;
  }
  if (parsed.kind != query::ParseResult::Kind::kIndexed && !parsed.split())
    return everyone("filter not planned through indexes: every worker");
  std::vector<const Expr*> cs;  // (of a split filter, the terms tm plans: each packet matches them)
  conjuncts(parsed.split() ? parsed.planned : parsed.expr, cs);
  std::set<packet::IpAddr> addrs;
  bool addr_both_ends = false;  // `src and dst host A`: both endpoints are A
  std::set<uint16_t> ports, src_ports, dst_ports;
  std::set<uint8_t> protos = {};  // pinned protocols (intersection); empty set + !proto_pinned = any
  bool proto_pinned = false;
  auto pin_proto = [&](std::set<uint8_t> allowed) {
    if (!proto_pinned) {
      protos = std::move(allowed);
      proto_pinned = true;
      return;
    }
    std::set<uint8_t> x;
    for (uint8_t p : protos)
      if (allowed.count(p)) x.insert(p);
    protos = std::move(x);
  };
  for (const Expr* c : cs) {
    if (c->op != Expr::Op::kPred) continue;
    const Predicate& p = c->pred;
    if (!layer_ok(p, b.tunnels)) continue;
    switch (p.kind) {
      case Predicate::Kind::kHost:
        addrs.insert(p.addr);
        if (p.dir == query::Dir::kSrcAndDst) addr_both_ends = true;
        break;
      case Predicate::Kind::kPort:
        ports.insert(p.port_lo);
        if (p.dir == query::Dir::kSrc || p.dir == query::Dir::kSrcAndDst) src_ports.insert(p.port_lo);
        if (p.dir == query::Dir::kDst || p.dir == query::Dir::kSrcAndDst) dst_ports.insert(p.port_lo);
        // port_matches: TCP, UDP or SCTP unless qualified.
        pin_proto(p.l4 ? std::set<uint8_t>{p.l4}
                       : std::set<uint8_t>{packet::kProtoTcp, packet::kProtoUdp, packet::kProtoSctp});
        break;
      case Predicate::Kind::kProto:
        pin_proto({p.proto});
        break;
      default:
        break;
    }
  }
  // The address pair of every matching packet.
  packet::IpAddr a, bb;
  if (addrs.size() == 2) {
    a = *addrs.begin();
    bb = *addrs.rbegin();
  } else if (addrs.size() == 1 && addr_both_ends) {
    a = bb = *addrs.begin();
  } else {
    return everyone(addrs.size() > 2 ? "more than two addresses pinned (no packet can match): every worker"
                                     : "the filter does not pin an address pair: every worker");
  }
  std::string pair = fmt::format("{{{}, {}}}", a.str(), bb.str());
  std::set<uint32_t> ws;
  Selection s;
  s.all = false;
  if (b.scheme == Scheme::kPair) {
    ws.insert(worker_of(flow_hash(a, bb, 0, 0, 0), b.workers));
    s.why = fmt::format("balance pair: the filter pins the address pair {}", pair);
  } else {
    uint16_t p, q;
    if (ports.size() == 2) {
      p = *ports.begin();
      q = *ports.rbegin();
    } else if (ports.size() == 1 && !src_ports.empty() && !dst_ports.empty()) {
      p = q = *ports.begin();
    } else {
      return everyone(
          fmt::format("balance 5tuple: the filter pins the pair {} but not both ports: every worker", pair));
    }
    if (!proto_pinned) protos = {packet::kProtoTcp, packet::kProtoUdp, packet::kProtoSctp};
    if (protos.empty()) return everyone("contradictory protocols (no packet can match): every worker");
    for (uint8_t pr : protos) ws.insert(worker_of(flow_hash(a, bb, p, q, pr), b.workers));
    ws.insert(worker_of(flow_hash(a, bb, 0, 0, 0), b.workers));  // fragments, tunnels
    std::string names;
    for (uint8_t pr : protos) names += fmt::format("{}{}", names.empty() ? "" : "/", pr);
    s.why = fmt::format(
        "balance 5tuple: the filter pins {} ports {{{}, {}}} protocol {} (and the pair alone: fragments, "
        "tunnels)",
        pair, p, q, names);
  }
  s.workers.assign(ws.begin(), ws.end());
  return s;
}

}  // namespace tmach::cluster
