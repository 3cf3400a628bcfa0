// Requests to the API of a running tm serve / tm frontend: what HttpService (http_service.h)
// is made of, and tm query --explain --server (the front-end's /api/v1/explain).
#pragma once

#include <cctype>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace tmach::server {

struct ClientOptions {
  std::string url;         // http://HOST:PORT
  std::string token_file;  // bearer token, if any
  // https:// servers (tls_client.h): the CA that signed the server's certificate (empty: the
  // system's CAs); a client certificate and key for servers that require one.
  std::string ca, cert, key;
  // A server that sends nothing for this long is given up on (HttpTimeouts::read_ms); a
  // subscription waits for its packets without a limit once its answer has begun.
  int timeout_s = 600;
};

struct ClientResult {
  int status = 0;                                   // HTTP status; 0 when the request failed
  std::string body;                                 // the answer when not streamed (or the error body)
  std::string error;                                // transport error or the server's {"error": ...}
  std::multimap<std::string, std::string> headers;  // of the answer (api_get), names in lower case
  std::string header(std::string name) const {
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

using Params = std::multimap<std::string, std::string>;

// GET path?params; the body goes to `sink` as it arrives when the status is 200 (sink may be
// null: kept in the result). The sink returns false, or throws, to stop reading: r.error says why.
ClientResult api_get(const ClientOptions& c, const std::string& path, const Params& params,
                     const std::function<bool(const char*, size_t)>& sink);
// A request taking a filter (/api/v1/query, /count, /explain, /flows, /subscribe): api_get,
// unless its request line would be longer than a server takes (kMaxRequestLine,
// http_limits.h: a long filter); then a POST of the same parameters as a form body, which
// those routes take as their GET's. Short requests stay GETs: a server older than those POST
// routes answers them (and refused the long GET with 414 as well). `started`, when set, is given
// a 200 answer's headers (names in lower case) as soon as they are read, before its body: what
// a stream that may stay quiet for long (a subscription) must say at once.
using HeadersSeen = std::function<void(const std::multimap<std::string, std::string>&)>;
ClientResult api_query(const ClientOptions& c, const std::string& path, const Params& params,
                       const std::function<bool(const char*, size_t)>& sink, const HeadersSeen& started = {});
ClientResult api_post(const ClientOptions& c, const std::string& path, const std::string& json_body);
ClientResult api_delete(const ClientOptions& c, const std::string& path);

// How a tm server refuses a parameter its route does not take (only_params, http_common.h):
// "unknown parameter 'NAME'" in a 400's error. A client (or a front-end) that finds that
// refusal of a newer parameter (refused_unknown_parameter) asks an older tm again without it.
std::string unknown_parameter(std::string_view name);
bool refused_unknown_parameter(int status, const std::string& error, std::string_view name);

}  // namespace tmach::server
