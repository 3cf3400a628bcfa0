// Flow query answers, rendered and read back in one place: tm flows, GET /api/v1/flows and the
// front-end (which reads its workers' JSON lines back into rows to merge them) share it, so
// the JSON written and the JSON parsed use the same names and tables.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flow/flow_query.h"
#include "packet/packet_info.h"

namespace tmach::server {

// Keeps the `top` largest rows by `by` (bytes, packets, duration) when top > 0.
void top_flows(std::vector<flow::FlowRow>& rows, size_t top, const std::string& by);
// format: "text" (a table), "json" (one object a line), "csv" (with a header line), "zeek"
// (Zeek's conn.log TSV) or "zeek-json" (Zeek's JSON conn.log): server/zeek_format.h.
std::string render_flows(const std::vector<flow::FlowRow>& rows, const std::string& format);
// The HTTP content type of an answer in `format`.
const char* flow_content_type(const std::string& format);

// An IP protocol's name as flow answers write it ("tcp", "udp", "icmp6", ...; else its number).
std::string proto_name(uint8_t p);
// Whether a flow answer shows a record's ports: TCP, UDP, SCTP and DCCP (whose records hold
// them, though tcpdump's `port` does not match DCCP, nor tm's); the text table and Zeek's
// conn.log alike.
inline bool shows_ports(uint8_t proto) { return packet::port_protocol(proto) || proto == packet::kProtoDccp; }

// The flow-record JSON codec: one object of a json-format answer, and back.
// flow_from_json throws std::runtime_error or nlohmann::json::exception on a bad object.
nlohmann::json flow_to_json(const flow::FlowRow& r);
flow::FlowRow flow_from_json(const nlohmann::json& j);
// A whole JSON-lines answer (empty lines skipped).
std::vector<flow::FlowRow> parse_flow_lines(const std::string& body);

}  // namespace tmach::server
