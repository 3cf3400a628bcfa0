#include "ids/alert.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "ids/log_follower.h"
#include "packet/community_id.h"
#include "util/timespec.h"

namespace tmach::ids {
namespace {

// An alert's Community ID in the form tm compares (base64), whichever form the IDS wrote (hex
// when its base64 option is off); anything else as it came.
std::string community_id_form(const std::string& id) { return packet::community_id_base64(id).value_or(id); }

std::optional<packet::IpAddr> parse_addr(const std::string& s) {
  if (s.find('\0') != std::string::npos) return std::nullopt;  // (inet_pton would stop there)
  uint8_t b[16];
  if (inet_pton(AF_INET, s.c_str(), b) == 1) return packet::IpAddr::v4(b);
  if (inet_pton(AF_INET6, s.c_str(), b) == 1) return packet::IpAddr::v6(b);
  return std::nullopt;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// Suricata writes the protocol's name ("TCP", "IPv6-ICMP") or its number ("047"); Zeek writes
// "tcp", "udp", "icmp" (for ICMPv6 too: `v6` tells) or "unknown_transport". 0: not known.
std::optional<uint8_t> parse_proto(const std::string& text, bool v6) {
  std::string s = lower(text);
  if (s == "tcp") return packet::kProtoTcp;
  if (s == "udp") return packet::kProtoUdp;
  if (s == "icmp") return v6 ? packet::kProtoIcmp6 : packet::kProtoIcmp;
  if (s == "ipv6-icmp" || s == "icmpv6" || s == "icmp6") return packet::kProtoIcmp6;
  if (s == "sctp") return packet::kProtoSctp;
  if (s == "gre") return packet::kProtoGre;
  if (s == "esp") return packet::kProtoEsp;
  if (s == "unknown_transport" || s.empty()) return 0;
  if (all_digits(s) && s.size() <= 3 && std::stoul(s) <= 255) return static_cast<uint8_t>(std::stoul(s));
  return std::nullopt;
}

// A port (or ICMP type/code) given as a JSON number or a decimal string.
std::optional<uint16_t> port_of(const nlohmann::json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= 65535) return static_cast<uint16_t>(v.get<uint64_t>());
  if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= 65535)
    return static_cast<uint16_t>(v.get<int64_t>());
  if (v.is_string() && all_digits(v.get<std::string>()) && v.get<std::string>().size() <= 5) {
    unsigned long p = std::stoul(v.get<std::string>());
    if (p <= 65535) return static_cast<uint16_t>(p);
  }
  return std::nullopt;
}

// A time given as epoch seconds (a JSON number: microseconds kept, which is what Zeek writes)
// or a string (epoch seconds or ISO-8601, Suricata's "2026-11-25T13:00:00.123456+0000").
std::optional<uint64_t> time_of(const nlohmann::json& v, std::string* err) {
  if (v.is_number()) {
    double d = v.get<double>();
    if (!(d >= 0) || d > 9e9) {
      *err = "time out of range";
      return std::nullopt;
    }
    return static_cast<uint64_t>(std::llround(d * 1e6)) * 1000ull;
  }
  if (v.is_string()) return util::parse_absolute_time(v.get<std::string>(), err);
  *err = "time is neither a number nor a string";
  return std::nullopt;
}

// A line as a JSON object, else why not: where the parser stopped and what it found (invalid
// UTF-8, a line cut short...), or that it is JSON of another kind.
std::optional<nlohmann::json> json_object(std::string_view text, std::string& why) {
  try {
    auto j = nlohmann::json::parse(text);
    if (j.is_object()) return j;
    why = "not a JSON object";
  } catch (const nlohmann::json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error while
    // parsing value - invalid string: ill-formed UTF-8 byte; last read: '...'" (the bytes last
    // read are left out: they may be what is not UTF-8)
    std::string m = e.what();
    const size_t at = m.find("column "), end = m.find("; last read");
    if (at != std::string::npos) m = m.substr(at, end == std::string::npos ? end : end - at);
    why = "not JSON (" + m + ")";
  }
  return std::nullopt;
}

// Suricata's flow_id, a JSON integer; one a pipeline rewrote as a float (1.5e15) is taken by
// its integer value while a double holds it exactly (2^53), a string as it is; anything else is
// no id.
std::string flow_id_of(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // (above 2^53 a double has lost the id's last digits: another id than the same flow's exact
    // alerts, so none)
    if (d >= 0 && d <= 9007199254740992.0 && d == std::floor(d))
      return std::to_string(static_cast<uint64_t>(d));
    return "";
  }
  if (v.is_string()) return v.get<std::string>();
  return "";
}

std::string str_of(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// Zeek's JSON writes a record's fields flat ("id.orig_h"); some pipelines nest them
// ({"id": {"orig_h": ...}}). Either.
const nlohmann::json* zeek_field(const nlohmann::json& rec, const std::string& name) {
  auto it = rec.find(name);
  if (it != rec.end() && !it->is_null()) return &*it;
  size_t dot = name.find('.');
  if (dot == std::string::npos) return nullptr;
  auto outer = rec.find(name.substr(0, dot));
  if (outer == rec.end() || !outer->is_object()) return nullptr;
  auto in = outer->find(name.substr(dot + 1));
  return in == outer->end() || in->is_null() ? nullptr : &*in;
}

// Zeek's ASCII writer escapes the separator and unprintable bytes as \xNN.
std::string unescape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x' &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 3]))) {
      o += static_cast<char>(std::stoi(std::string(s.substr(i + 2, 2)), nullptr, 16));
      i += 3;
    } else {
      o += s[i];
    }
  }
  return o;
}

std::vector<std::string_view> split(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> out;
  if (sep.empty()) {
    out.push_back(s);
    return out;
  }
  size_t pos = 0;
  for (;;) {
    size_t next = s.find(sep, pos);
    if (next == std::string_view::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, next - pos));
    pos = next + sep.size();
  }
}

std::string sanitize(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (o.size() >= 128) break;
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    o += ok ? c : '_';
  }
  if (!o.empty() && o[0] == '.') o[0] = '_';
  return o;
}

}  // namespace

const char* to_string(Alert::Source s) {
  switch (s) {
    case Alert::Source::kSuricata:
      return "suricata";
    case Alert::Source::kZeekNotice:
      return "zeek notice";
    case Alert::Source::kZeekConn:
      return "zeek conn";
  }
  return "?";
}

std::string evidence_name(const Alert& a) {
  if (!a.id.empty()) return sanitize(a.id);
  if (!a.community_id.empty()) return sanitize(a.community_id);
  std::string n = a.name.empty() ? "alert" : a.name;
  n += "_" + a.src.str();
  if (a.has_tuple) n += fmt::format("_{}_{}_{}_{}", a.src_port, a.dst.str(), a.dst_port, a.proto);
  n += fmt::format("_{}", a.ts_ns / 1000000000ull);
  return sanitize(n);
}

nlohmann::json alert_to_json(const Alert& a) {
  nlohmann::json j = {{"source", to_string(a.source)}, {"time", util::format_time(a.ts_ns)}};
  if (a.source == Alert::Source::kSuricata) {
    j["signature"] = a.name;
    j["signature_id"] = a.signature_id;
    j["severity"] = a.severity;
  } else if (a.source == Alert::Source::kZeekNotice) {
    j["note"] = a.name;
    j["msg"] = a.message;
  }
  j["file"] = a.file;
  j["line"] = a.line;
  j["event"] = a.event;
  return j;
}

void AlertReader::reset() {
  separator_ = "\t";
  unset_ = "-";
  empty_ = "(empty)";
  path_.clear();
  fields_.clear();
}

std::optional<Alert> AlertReader::skip(size_t lineno, const std::string& why) {
  ++counts_.skipped;
  warn_(fmt::format("{}:{}: {}: skipped", file_, lineno, why));
  return std::nullopt;
}

void AlertReader::too_long(size_t lineno, uint64_t bytes) {
  ++counts_.lines;
  skip(lineno, fmt::format("a line of {} bytes, longer than the {} a line is read up to", bytes,
                           LogFollower::kMaxLine));
}

std::optional<Alert> AlertReader::line(std::string_view text, size_t lineno) {
  ++counts_.lines;
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) {
    ++counts_.ignored;
    return std::nullopt;
  }
  std::optional<Alert> a;
  if (format_ == Format::kEve) {
    a = eve(text, lineno);
  } else if (text[0] == '#') {
    zeek_header(text, lineno);
    return std::nullopt;
  } else if (text[first] == '{') {
    a = zeek_json(text, lineno);
  } else {
    a = zeek_tsv(text, lineno);
  }
  if (a) {
    a->file = file_;
    a->line = lineno;
    ++counts_.alerts;
  }
  return a;
}

std::optional<Alert> AlertReader::eve(std::string_view text, size_t lineno) {
  std::string why;
  auto parsed = json_object(text, why);
  if (!parsed) return skip(lineno, why);
  nlohmann::json& j = *parsed;
  if (str_of(j, "event_type") != "alert") {
    ++counts_.ignored;
    return std::nullopt;
  }
  Alert a;
  a.source = Alert::Source::kSuricata;
  std::string err;
  auto ts = j.contains("timestamp") ? time_of(j["timestamp"], &err) : std::nullopt;
  if (!ts) return skip(lineno, "alert without a usable timestamp" + (err.empty() ? "" : " (" + err + ")"));
  a.ts_ns = *ts;
  auto src = parse_addr(str_of(j, "src_ip")), dst = parse_addr(str_of(j, "dest_ip"));
  for (const char* k : {"src_ip", "dest_ip"})  // (one there but not an address: said so)
    if (j.contains(k) && !(k[0] == 's' ? src : dst))
      return skip(lineno, fmt::format("{} {} is not an IPv4 or IPv6 address", k, j[k].dump()));
  if (!src || !dst) return skip(lineno, "alert without src_ip and dest_ip addresses");
  if (src->is_v4() != dst->is_v4()) return skip(lineno, "src_ip and dest_ip of different IP versions");
  a.src = *src;
  a.dst = *dst;
  a.has_tuple = true;
  auto proto = parse_proto(str_of(j, "proto"), !src->is_v4());
  if (!proto) return skip(lineno, "unknown proto '" + str_of(j, "proto") + "'");
  a.proto = *proto;
  bool icmp = a.proto == packet::kProtoIcmp || a.proto == packet::kProtoIcmp6;
  // ICMP: type and code stand for the ports (as in the Community ID).
  const char* pk[2] = {icmp ? "icmp_type" : "src_port", icmp ? "icmp_code" : "dest_port"};
  uint16_t* pv[2] = {&a.src_port, &a.dst_port};
  for (int i = 0; i < 2; ++i) {
    if (!j.contains(pk[i])) {
      if (packet::port_protocol(a.proto))
        return skip(lineno, fmt::format("{} alert without {}", str_of(j, "proto"), pk[i]));
      continue;
    }
    auto p = port_of(j[pk[i]]);
    if (!p) return skip(lineno, fmt::format("bad {} {}", pk[i], j[pk[i]].dump()));
    *pv[i] = *p;
  }
  if (auto f = j.find("flow_id"); f != j.end()) a.id = flow_id_of(*f);
  a.community_id = community_id_form(str_of(j, "community_id"));
  if (auto al = j.find("alert"); al != j.end() && al->is_object()) {
    a.name = str_of(*al, "signature");
    if (auto s = al->find("signature_id"); s != al->end() && s->is_number_unsigned())
      a.signature_id = s->get<uint64_t>();
    if (auto s = al->find("severity"); s != al->end() && s->is_number_integer()) a.severity = s->get<int>();
  }
  a.event = std::move(j);
  return a;
}

void AlertReader::zeek_header(std::string_view text, size_t lineno) {
  ++counts_.ignored;
  // "#separator \x09" is the one header line whose value follows a space.
  if (text.substr(0, 10) == "#separator") {
    std::string_view v = text.substr(10);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    std::string sep = unescape(v);
    if (sep.empty()) {
      skip(lineno, "empty #separator");
      --counts_.ignored;
      return;
    }
    reset();
    separator_ = sep;
    return;
  }
  auto parts = split(text, separator_);
  std::string_view key = parts[0];
  if (key == "#fields") {
    fields_.assign(parts.begin() + 1, parts.end());
  } else if (key == "#unset_field" && parts.size() == 2) {
    unset_ = unescape(parts[1]);
  } else if (key == "#empty_field" && parts.size() == 2) {
    empty_ = unescape(parts[1]);
  } else if (key == "#path" && parts.size() == 2) {
    path_ = unescape(parts[1]);
  }
}

std::optional<Alert> AlertReader::zeek_json(std::string_view text, size_t lineno) {
  std::string why;
  auto j = json_object(text, why);
  if (!j) return skip(lineno, why);
  return zeek_record(*j, lineno);
}

std::optional<Alert> AlertReader::zeek_tsv(std::string_view text, size_t lineno) {
  if (fields_.empty()) return skip(lineno, "a Zeek log line before any #fields header (nor a JSON object)");
  auto parts = split(text, separator_);
  if (parts.size() != fields_.size())
    return skip(lineno,
                fmt::format("{} fields where the #fields header names {}", parts.size(), fields_.size()));
  nlohmann::json rec = nlohmann::json::object();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == unset_) continue;
    rec[fields_[i]] = parts[i] == empty_ ? std::string() : unescape(parts[i]);
  }
  return zeek_record(rec, lineno);
}

// One Zeek record, from JSON or TSV (where every value is a string).
std::optional<Alert> AlertReader::zeek_record(const nlohmann::json& rec, size_t lineno) {
  Alert a;
  bool notice = rec.contains("note") || path_ == "notice";
  a.source = notice ? Alert::Source::kZeekNotice : Alert::Source::kZeekConn;
  const nlohmann::json* ts = zeek_field(rec, "ts");
  std::string err;
  auto t = ts ? time_of(*ts, &err) : std::nullopt;
  if (!t) return skip(lineno, "no usable ts" + (err.empty() ? "" : " (" + err + ")"));
  a.ts_ns = *t;
  if (auto* u = zeek_field(rec, "uid")) a.id = u->is_string() ? u->get<std::string>() : u->dump();
  const nlohmann::json *oh = zeek_field(rec, "id.orig_h"), *rh = zeek_field(rec, "id.resp_h");
  std::string proto_text;
  if (auto* p = zeek_field(rec, "proto")) proto_text = p->is_string() ? p->get<std::string>() : p->dump();
  if (oh && rh) {
    auto src = oh->is_string() ? parse_addr(oh->get<std::string>()) : std::nullopt;
    auto dst = rh->is_string() ? parse_addr(rh->get<std::string>()) : std::nullopt;
    if (!src || !dst) return skip(lineno, "bad id.orig_h or id.resp_h");
    if (src->is_v4() != dst->is_v4()) return skip(lineno, "id.orig_h and id.resp_h of different IP versions");
    a.src = *src;
    a.dst = *dst;
    a.has_tuple = true;
    const nlohmann::json *op = zeek_field(rec, "id.orig_p"), *rp = zeek_field(rec, "id.resp_p");
    if (op) {
      auto p = port_of(*op);
      if (!p) return skip(lineno, "bad id.orig_p " + op->dump());
      a.src_port = *p;
    }
    if (rp) {
      auto p = port_of(*rp);
      if (!p) return skip(lineno, "bad id.resp_p " + rp->dump());
      a.dst_port = *p;
    }
    auto proto = parse_proto(proto_text, !src->is_v4());
    if (!proto) return skip(lineno, "unknown proto '" + proto_text + "'");
    a.proto = *proto;
    // A TCP, UDP or SCTP connection without its ports is not one (as a Suricata alert's):
    // port 0 would find no flow record.
    if (packet::port_protocol(a.proto) && (!op || !rp))
      return skip(lineno,
                  fmt::format("{} connection without {}", proto_text, !op ? "id.orig_p" : "id.resp_p"));
  } else if (notice && (zeek_field(rec, "src") || zeek_field(rec, "dst"))) {
    // A notice about a host (a scan, say): its src (else its dst).
    const nlohmann::json* h = zeek_field(rec, "src") ? zeek_field(rec, "src") : zeek_field(rec, "dst");
    auto host = h->is_string() ? parse_addr(h->get<std::string>()) : std::nullopt;
    if (!host) return skip(lineno, "bad src " + h->dump());
    a.src = *host;
  } else {
    return skip(lineno, notice ? "notice names neither a connection (id.orig_h, id.resp_h) nor a host (src)"
                               : "neither a notice (note) nor a connection (id.orig_h, id.resp_h)");
  }
  if (notice) {
    if (auto* n = zeek_field(rec, "note")) a.name = n->is_string() ? n->get<std::string>() : n->dump();
    if (auto* m = zeek_field(rec, "msg")) a.message = m->is_string() ? m->get<std::string>() : m->dump();
  } else {
    a.name = path_.empty() ? "conn" : path_;
  }
  if (auto* c = zeek_field(rec, "community_id"); c && c->is_string())
    a.community_id = community_id_form(c->get<std::string>());
  a.event = rec;
  return a;
}

}  // namespace tmach::ids
