// JSON text for output (answers, files, logs): a string that is not UTF-8 (a store path of
// other bytes, a name taken from the wire) has its bad bytes replaced by U+FFFD, where
// nlohmann::json's dump() throws (type_error 316), which turned /health of such a store into a 400.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tmach::util {

// (A template: an nlohmann::ordered_json, Zeek's columns in Zeek's order, is dumped as it is,
// not converted to a json, which sorts its keys.)
template <class Json>
std::string json_text(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace tmach::util
