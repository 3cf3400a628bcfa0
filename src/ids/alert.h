// Alerts of an IDS as tm reads them: Suricata's EVE JSON (event_type "alert") and Zeek's
// notice.log and conn.log (JSON or the TSV format with its #fields header). Each gives a
// connection (a 5-tuple) or, for a Zeek notice about a host, a host alone; a time; an id
// (Suricata's flow_id, Zeek's uid) naming the evidence written for it (ids/evidence.h).
//
// A reader takes one line at a time, so the same code reads a file once or follows it
// (ids/log_follower.h). A line it cannot use is warned with file:line and skipped, never fatal.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "packet/packet_info.h"
#include "server/service.h"

namespace tmach::ids {

struct Alert {
  enum class Source : uint8_t { kSuricata, kZeekNotice, kZeekConn };
  Source source = Source::kSuricata;
  std::string id;      // flow_id or uid as written in the log; empty when the line has none
  uint64_t ts_ns = 0;  // the alert's time
  // A connection (has_tuple) or a host (a Zeek notice with only `src`).
  bool has_tuple = false;
  packet::IpAddr src, dst;  // dst unset for a host
  uint16_t src_port = 0, dst_port = 0;
  uint8_t proto = 0;         // IP protocol number; 0: the log does not say
  std::string community_id;  // the log's own, when it gives one (Suricata's community_id)
  std::string name;          // Suricata alert.signature, Zeek note ("conn" for conn.log)
  std::string message;       // Zeek msg
  uint64_t signature_id = 0;
  int severity = 0;
  nlohmann::json event;  // the line as read (TSV: field name -> value, unset fields left out)
  std::string file;      // where it was read
  size_t line = 0;
};

const char* to_string(Alert::Source s);

// The name of the evidence files of an alert (OUT/<name>.pcap, .json): its id, else its
// Community ID, else a name made of its note, host and time; only [A-Za-z0-9._-] kept (others
// become '_'), never starting with '.', at most 128 characters.
std::string evidence_name(const Alert& a);

// The alert as the evidence JSON lists it: source, time, what it says, and the line itself.
nlohmann::json alert_to_json(const Alert& a);

// What a reader has seen, for the summary.
struct ReadCounts {
  uint64_t lines = 0;    // every line read
  uint64_t alerts = 0;   // lines that gave an alert
  uint64_t ignored = 0;  // not alerts: comments, headers, empty lines, other event types
  uint64_t skipped = 0;  // malformed or naming no connection nor host: warned and skipped
};

// One log's lines into alerts. Keeps the state a format needs between lines (Zeek TSV: the
// separator and the #fields header); reset() forgets it (the file was rotated or truncated).
class AlertReader {
 public:
  enum class Format : uint8_t { kEve, kZeek };
  AlertReader(Format f, std::string file, server::Warn warn)
      : format_(f), file_(std::move(file)), warn_(std::move(warn)) {}
  // One line without its newline, numbered from 1 in its file. An alert, or nullopt (the line
  // was ignored, or skipped: then warned as "FILE:LINE: why").
  std::optional<Alert> line(std::string_view text, size_t lineno);
  // A line too long to be read (LogFollower::kMaxLine), of `bytes` bytes: warned and skipped.
  void too_long(size_t lineno, uint64_t bytes);
  void reset();
  const ReadCounts& counts() const { return counts_; }
  const std::string& file() const { return file_; }

 private:
  std::optional<Alert> eve(std::string_view text, size_t lineno);
  std::optional<Alert> zeek_json(std::string_view text, size_t lineno);
  std::optional<Alert> zeek_tsv(std::string_view text, size_t lineno);
  void zeek_header(std::string_view text, size_t lineno);
  std::optional<Alert> skip(size_t lineno, const std::string& why);
  std::optional<Alert> zeek_record(const nlohmann::json& rec, size_t lineno);

  Format format_;
  std::string file_;
  server::Warn warn_;
  ReadCounts counts_;
  // Zeek TSV: from the header.
  std::string separator_ = "\t", unset_ = "-", empty_ = "(empty)", path_;
  std::vector<std::string> fields_;
};

}  // namespace tmach::ids
