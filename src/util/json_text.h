// JSON text for output (answers, files, logs): a string that is not UTF-8 (a store path of
// other bytes, a name taken from the wire) has its bad bytes replaced by U+FFFD, where
// nlohmann::json's dump() throws (type_error 316), which turned /health of such a store into a 400.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tmach::util {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tmach::util
