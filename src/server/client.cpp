#include "server/client.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "server/http_client.h"
#include "server/http_limits.h"
#include "server/listen.h"

namespace tmach::server {
namespace {

struct Target {
  HostPort at;
  std::string token;
  bool tls = false;
  TlsClientFiles files;
};

Target target(const ClientOptions& c) {
  Target t;
  try {
    t.at = parse_http_url(c.url);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("--server: ") + e.what());
  }
  if (!c.token_file.empty()) t.token = read_token_file(c.token_file, "--token-file");
  t.tls = is_https_url(c.url);
  if (!t.tls && !(c.ca.empty() && c.cert.empty() && c.key.empty()))
    throw std::runtime_error("--ca, --cert and --key are for https:// servers; --server is " + c.url);
  t.files = {c.ca, c.cert, c.key};
  return t;
}

// Sends `req`; a status other than 200/201 leaves the server's {"error": ...} (or its body)
// in r.error: as it is for 400 (the user's request refused, printed alone), else as "server
// answered N: ...". The body goes to `out` when the status is 200 and `out` is set, else into
// r.body.
ClientResult exchange(const ClientOptions& c, HttpRequest req,
                      const std::function<bool(const char*, size_t)>& out, const HeadersSeen& started = {}) {
  Target t = target(c);
  req.bearer_token = t.token;
  HttpTimeouts limits;
  limits.read_ms = c.timeout_s * 1000;
  if (req.target.starts_with("/api/v1/subscribe")) limits.body_ms = 24 * 3600 * 1000;  // (quiet for long)
  ClientResult r;
  HttpResponse resp;
  bool complete = true;
  try {
    complete = http_request(
        t.at, req, resp,
        [&](const char* data, size_t n) {
          if (resp.status != 200 || !out) {
            r.body.append(data, n);
            return true;
          }
          try {
            if (out(data, n)) return true;
            r.error = "write failed (disk full, or the reader went away)";
          } catch (const std::exception& e) {
            r.error = e.what();
          }
          return false;
        },
        limits, t.tls ? &t.files : nullptr,
        [&] {
          if (started && resp.status == 200) started(resp.headers);
        });
  } catch (const HttpError& e) {
    r.status = resp.status;
    r.headers = resp.headers;  // a tm frontend's query id: what went missing (HttpService)
    if (resp.status == 200)
      r.error = fmt::format(
          "the server ended the answer early (stopped, or the query hit its time limit): {}", e.what());
    else
      r.error = e.what();
    return r;
  }
  r.status = resp.status;
  r.headers = resp.headers;
  if (!complete && r.error.empty()) r.error = "stopped reading the answer";
  if (r.status != 200 && r.status != 201 && r.error.empty()) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    std::string msg = j.is_object() && j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>()
                          : r.body;
    while (!msg.empty() && std::isspace(static_cast<unsigned char>(msg.back()))) msg.pop_back();
    if (r.status == 400 && !msg.empty())
      r.error = msg;
    else
      r.error = fmt::format("server answered {}{}{}", r.status, msg.empty() ? "" : ": ", msg);
  }
  return r;
}

}  // namespace

ClientResult api_get(const ClientOptions& c, const std::string& path, const Params& params,
                     const std::function<bool(const char*, size_t)>& out) {
  HttpRequest req;
  req.target = with_query(path, params);
  return exchange(c, std::move(req), out);
}

ClientResult api_query(const ClientOptions& c, const std::string& path, const Params& params,
                       const std::function<bool(const char*, size_t)>& out, const HeadersSeen& started) {
  HttpRequest req;
  req.target = with_query(path, params);
  if (!get_fits(req.target.size())) {
    req.method = "POST";
    req.body = form_body(params);
    req.content_type = "application/x-www-form-urlencoded";
    req.target = path;
  }
  return exchange(c, std::move(req), out, started);
}

ClientResult api_post(const ClientOptions& c, const std::string& path, const std::string& json_body) {
  HttpRequest req;
  req.method = "POST";
  req.target = path;
  req.body = json_body;
  req.content_type = "application/json";
  return exchange(c, std::move(req), nullptr);
}

ClientResult api_delete(const ClientOptions& c, const std::string& path) {
  HttpRequest req;
  req.method = "DELETE";
  req.target = path;
  return exchange(c, std::move(req), nullptr);
}

std::string unknown_parameter(std::string_view name) { return fmt::format("unknown parameter '{}'", name); }

bool refused_unknown_parameter(int status, const std::string& error, std::string_view name) {
  return status == 400 && error.find(unknown_parameter(name)) != std::string::npos;
}

}  // namespace tmach::server
