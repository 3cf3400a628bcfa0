// Flow records as Zeek's conn.log (tm flows --format zeek|zeek-json, format=zeek on
// /api/v1/flows): Zeek's field names, types and meanings, so that zeek-cut and tools written
// for conn.log read them; what tm's records cannot say is written unset ("-"), never another
// quantity under Zeek's name. tm's own fields follow as extra columns (community_id, tm_*).
//
// What is approximated (tm keeps per direction the OR of the TCP flags seen, the packet and
// wire-byte counts and how the connection ended, not the order of events nor payload sizes):
// - conn_state follows Zeek's decision (base/protocols/conn/main.zeek) with "a side sent
//   SYN" for "it opened" and "a side's flags hold FIN/RST" for "it closed/reset".
// - history holds each letter once, in a fixed order S h A D F R (originator upper case,
//   responder lower case, each letter's originator form before its responder form), not in
//   the order the packets came; D stands for PSH seen (data segments usually carry PSH). UDP:
//   D/d for a side that sent packets. Other protocols: unset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flow/flow_query.h"

namespace tmach::server {

// Zeek's uid for a flow record: "C" + base62 of tm's flow id (stable: same record, same uid).
std::string zeek_uid(uint64_t flow_id);

// Zeek's conn_state ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0",
// "RSTRH", "SH", "SHR", "OTH") and history derived from the record ("" = unset).
std::string zeek_conn_state(const flow::FlowRecord& r);
std::string zeek_history(const flow::FlowRecord& r);

// A whole conn.log: Zeek's TSV with its header and #close line (`now_s`: the #open/#close
// time, seconds since the epoch), or Zeek's JSON log (one object a line, unset fields left out).
std::string render_zeek_tsv(const std::vector<flow::FlowRow>& rows, int64_t now_s);
std::string render_zeek_json(const std::vector<flow::FlowRow>& rows);

}  // namespace tmach::server
