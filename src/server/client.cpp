#include "server/client.h"

#include <fmt/format.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "server/listen.h"

namespace tmach::server {
namespace {

std::unique_ptr<httplib::Client> make(const ClientOptions& c) {
  auto cl = std::make_unique<httplib::Client>(c.url);
  if (!cl->is_valid()) throw std::runtime_error("--server: '" + c.url + "' is not a URL (http://HOST:PORT)");
  cl->set_connection_timeout(10);
  cl->set_read_timeout(24 * 3600);  // a subscription may stay quiet for long
  cl->set_keep_alive(false);
  if (!c.token_file.empty()) {
    std::string tok = read_token_file(c.token_file, "--token-file");
    cl->set_bearer_token_auth(tok);
  }
  return cl;
}

void finish(ClientResult& r, const httplib::Result& res, const ClientOptions& c) {
  if (!res) {
    r.status = 0;
    if (r.error.empty()) r.error = fmt::format("cannot reach {}: {}", c.url, httplib::to_string(res.error()));
    return;
  }
  r.status = res->status;
  if (r.status != 200 && r.status != 201 && r.error.empty()) {
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    r.error = j.is_object() && j.contains("error") ? j["error"].get<std::string>() : res->body;
    if (r.error.empty()) r.error = fmt::format("HTTP {}", r.status);
  }
}

}  // namespace

ClientResult api_get(const ClientOptions& c, const std::string& path, const Params& params, std::FILE* out) {
  if (!out) return api_get(c, path, params, std::function<bool(const char*, size_t)>());
  bool write_failed = false;
  ClientResult r = api_get(c, path, params, [&](const char* data, size_t n) {
    write_failed = std::fwrite(data, 1, n, out) != n;
    return !write_failed;
  });
  if (write_failed) r.error = "write failed (disk full, or the reader went away)";
  if (r.status == 200 && r.error.empty() && std::fflush(out) != 0) r.error = "write failed";
  return r;
}

ClientResult api_get(const ClientOptions& c, const std::string& path, const Params& params,
                     const std::function<bool(const char*, size_t)>& out) {
  auto cl = make(c);
  ClientResult r;
  httplib::Params p(params.begin(), params.end());
  std::string full = httplib::append_query_params(path, p);
  int status = 0;
  auto res = cl->Get(
      full,
      [&](const httplib::Response& resp) {
        status = resp.status;
        for (auto& [k, v] : resp.headers) {
          std::string lower = k;
          for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          r.headers.emplace(lower, v);
        }
        return true;
      },
      [&](const char* data, size_t n) {
        if (status != 200 || !out) {
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
      });
  if (!res && status == 200 && r.error.empty())
    r.error = "the server ended the answer early (stopped, or the query hit its time limit)";
  if (res) res->body = r.body;
  finish(r, res, c);
  if (!res && status) r.status = status;
  return r;
}

ClientResult api_post(const ClientOptions& c, const std::string& path, const std::string& json_body) {
  auto cl = make(c);
  ClientResult r;
  auto res = cl->Post(path, json_body, "application/json");
  if (res) r.body = res->body;
  finish(r, res, c);
  return r;
}

ClientResult api_delete(const ClientOptions& c, const std::string& path) {
  auto cl = make(c);
  ClientResult r;
  auto res = cl->Delete(path);
  if (res) r.body = res->body;
  finish(r, res, c);
  return r;
}

}  // namespace tmach::server
