#include "server/http_common.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <initializer_list>
#include <random>
#include <set>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "server/client.h"
#include "server/http_limits.h"
#include "server/listen.h"

namespace tmach::server {

void Admission::admit() {
  if (active_.fetch_add(1) >= limit_) {
    active_--;
    rejected_++;
    throw Unavailable(fmt::format("too many {} (limit {}); try again later", what_, limit_));
  }
}

FlowParams flow_params(const httplib::Request& req) {
  FlowParams p;
  std::string format = param(req, "format"), by = param(req, "by"), top = param(req, "top");
  if (!format.empty()) p.format = format;
  if (!by.empty()) p.by = by;
  if (p.format != "json" && p.format != "csv" && p.format != "text" && p.format != "zeek" &&
      p.format != "zeek-json")
    throw BadRequest("format: json, csv, text, zeek or zeek-json");
  if (p.by != "bytes" && p.by != "packets" && p.by != "duration")
    throw BadRequest("by: bytes, packets or duration");
  p.top = param_u64(req, "top", UINT64_MAX);
  return p;
}

void json_error(httplib::Response& res, int status, const std::string& msg, nlohmann::json extra) {
  res.status = status;
  extra["error"] = msg;
  // (A message quoting the request's bytes that are not UTF-8 — a path, a parameter's name —
  // has them replaced, not a dump that throws.)
  res.set_content(extra.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", kJsonType);
}

bool const_time_equal(const std::string& a, const std::string& b) {
  unsigned char d = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    d |= x ^ y;
  }
  return d == 0;
}

ByteSink chunk_sink(httplib::DataSink& sink) {
  return [&sink](const char* p, size_t n) {
    if (!sink.write(p, n)) throw std::runtime_error("client went away");
  };
}

std::string param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::string();
  if (size_t n = req.get_param_value_count(name); n > 1)
    throw ApiError(400, fmt::format("{}: given {} times (it takes one value)", name, n));
  std::string v = req.get_param_value(name);
  if (std::string why = text_problem(v); !why.empty()) throw ApiError(400, fmt::format("{}: {}", name, why));
  return v;
}

uint64_t param_u64(const httplib::Request& req, const char* name, uint64_t max, uint64_t def) {
  std::string v = param(req, name);
  if (v.empty()) return def;
  uint64_t x = 0;
  bool ok = v.find_first_not_of("0123456789") == std::string::npos;
  for (size_t i = 0; ok && i < v.size(); ++i) {
    unsigned d = static_cast<unsigned>(v[i] - '0');
    ok = x <= (max - d) / 10;
    x = x * 10 + d;
  }
  if (!ok) throw ApiError(400, fmt::format("{}: expected a number from 0 to {}", name, max));
  return x;
}

namespace {
// A request body's JSON nests at most this deep (the API's bodies nest 2 deep: a list of
// classes in an object). Checked on the bytes before they are parsed, so that a hostile body
// ([[[[... 50000 deep, well under the 1 MiB limit) cannot exhaust a thread's stack in the
// recursive walks over the parsed value.
constexpr size_t kMaxBodyNesting = 16;

// How deep the JSON text's arrays and objects nest, counted outside its strings; stops
// counting once past `limit`.
size_t json_nesting(std::string_view text, size_t limit) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void check_json_text(const nlohmann::json& j, const std::string& where) {
  if (j.is_string()) {
    if (std::string why = text_problem(j.get_ref<const std::string&>()); !why.empty())
      throw ApiError(400, fmt::format("{}: {}", where, why));
  } else if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (std::string why = text_problem(k); !why.empty())
        throw ApiError(400, fmt::format("body: a key {}", why));
      check_json_text(v, where.empty() || where == "body" ? k : where + "." + k);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) check_json_text(j[i], fmt::format("{}[{}]", where, i));
  }
}
}  // namespace

nlohmann::json json_body(const httplib::Request& req) {
  if (json_nesting(req.body, kMaxBodyNesting) > kMaxBodyNesting)
    throw ApiError(400, fmt::format("body: JSON nested more than {} deep", kMaxBodyNesting));
  // A member given twice is refused, as a parameter given twice is (which one counts would be
  // the parser's choice); the parser's own error says where the text is not JSON.
  std::string twice;
  std::set<std::string> keys;
  auto note_key = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::object_start && depth == 0) keys.clear();
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && twice.empty() &&
        !keys.insert(parsed.get<std::string>()).second)
      twice = parsed.get<std::string>();
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(req.body, note_key);
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 14: syntax error while
    // parsing value - invalid string: ...; last read: '...'": the position and the reason.
    std::string why = e.what();
    if (size_t at = why.find("] "); at != std::string::npos) why.erase(0, at + 2);
    if (size_t at = why.find("; last read:"); at != std::string::npos) why.resize(at);
    throw ApiError(400, "body: not JSON: " + why);
  }
  if (!j.is_object()) throw ApiError(400, "body: not a JSON object");
  if (!twice.empty())
    throw ApiError(400, fmt::format("body: member '{}' given twice (it takes one value)", twice));
  check_json_text(j, "body");
  return j;
}

std::string json_string(const nlohmann::json& j, const char* key, const std::string& def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) throw ApiError(400, fmt::format("{}: expected a string", key));
  const auto& v = it->get_ref<const std::string&>();
  if (std::string why = text_problem(v); !why.empty()) throw ApiError(400, fmt::format("{}: {}", key, why));
  return v;
}

std::optional<bool> json_bool(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw ApiError(400, fmt::format("{}: expected true or false", key));
  return it->get<bool>();
}

namespace {
// The web page's own files ("/", "/static/..."): no token (they hold none; the page asks for it).
bool is_web_page(const std::string& path) { return path == "/" || path.rfind("/static/", 0) == 0; }
// A download by ticket (routes.cpp, download_tickets.h): the ticket, which only a request with
// the token obtains, is its credential; a browser's own download cannot send a header.
bool is_ticket_download(const httplib::Request& req) {
  return (req.method == "GET" || req.method == "HEAD") && req.path.rfind("/api/v1/download/", 0) == 0;
}

// "Bearer TOKEN", the scheme in any case (RFC 7235: schemes are case-insensitive), one or
// more spaces after it. The token itself is compared in constant time.
bool bearer_matches(const std::string& auth, const std::string& token) {
  static const std::string scheme = "bearer";
  if (auth.size() <= scheme.size()) return false;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(auth[i])) != scheme[i]) return false;
  size_t p = scheme.size();
  if (auth[p] != ' ') return false;
  while (p < auth.size() && auth[p] == ' ') p++;
  return const_time_equal(auth.substr(p), token);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A browser's request made by a page of another origin (another site, or another port of this
// host): its Origin header is not this server's, which the Host header names. Browsers send
// Origin with every POST and DELETE, and with cross-origin fetches; a client that is not a
// browser sends none. Without this check a page the analyst opens could POST a form, or a
// JSON body as text/plain (no preflight), to the API of a server without a token: move hosts
// into a class without cutoff, suspend cutoffs.
// The browser says itself where the request comes from (Sec-Fetch-Site, every current
// browser): "same-origin" or "none" (typed, a bookmark) pass, "same-site" (another port of this
// host) and "cross-site" do not. That holds behind a reverse proxy too, which changes Host.
// Without it (an older browser), Origin is compared with Host, or with the proxy's
// X-Forwarded-Host.
bool cross_origin(const httplib::Request& req) {
  std::string origin = lower(req.get_header_value("Origin"));
  if (origin.empty()) return false;
  if (req.has_header("Sec-Fetch-Site")) {
    const std::string site = lower(req.get_header_value("Sec-Fetch-Site"));
    return site != "same-origin" && site != "none";
  }
  for (const char* scheme : {"http://", "https://"})
    if (origin.rfind(scheme, 0) == 0) {
      const std::string o = origin.substr(std::strlen(scheme));
      std::string fwd = lower(req.get_header_value("X-Forwarded-Host"));
      fwd = fwd.substr(0, fwd.find(','));  // (the first proxy's: the name the browser used)
      return o != lower(req.get_header_value("Host")) && (fwd.empty() || o != fwd);
    }
  return true;  // "null" (a sandboxed or file: page), or another scheme
}

// A Host header's name, without its port or an IPv6 address's brackets, in lower case. (An
// IPv6 address without brackets, as some clients write it without a port: the whole.)
std::string host_name(const std::string& host) {
  std::string h = lower(host);
  if (!h.empty() && h.front() == '[') return h.substr(1, h.find(']') - 1);
  const size_t colon = h.find(':');
  if (colon != std::string::npos && h.find(':', colon + 1) != std::string::npos) return h;
  return colon == std::string::npos ? h : h.substr(0, colon);
}

// A server without a token listens on loopback only (require_token_off_loopback), where it
// answers the names of loopback: a request for another name is a web page of that name whose
// DNS answer was switched to 127.0.0.1 (DNS rebinding), same-origin with the API and able to
// read the whole store. (HTTP/1.0 without Host: allowed.)
bool loopback_name(const std::string& host) {
  if (host.empty()) return true;
  const std::string h = host_name(host);
  return is_loopback(h) || h == "ip6-localhost" || h == "ip6-loopback" ||
         (h.size() > 10 && h.ends_with(".localhost"));
}
}  // namespace

// A parameter a route does not take is refused (400), not ignored: an ignored `flow=` once
// streamed the whole TCP traffic.
// A JSON body's members are parameters too: a misspelt "fitler" is refused as fitler= is (it
// once answered the whole store). (A JSON body that came as a form — curl -d — is in
// req.params as junk: then the query string's names and the body's members are checked.)
void only_params(const httplib::Request& req, std::initializer_list<std::string_view> known) {
  std::vector<std::string> names;
  if (size_t at = req.body.find_first_not_of(" \t\r\n"); at != std::string::npos && req.body[at] == '{') {
    const nlohmann::json body = json_body(req);
    for (auto& [k, v] : body.items()) names.push_back(k);
    httplib::Params query;
    parse_params(query_string(req.target), query);
    for (auto& [k, v] : query) {
      // (Which would count? The body's, read first, silently: refused, as a name given twice is.)
      if (body.is_object() && body.contains(k))
        throw ApiError(
            400, fmt::format("{}: given in the query string and in the JSON body (it takes one value)", k));
      names.push_back(k);
    }
  } else {
    for (auto& [k, v] : req.params) names.push_back(k);
  }
  for (auto& k : names)
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (auto n : known) list += fmt::format("{}{}", list.empty() ? "" : ", ", n);
      throw BadRequest(fmt::format("{} for {} {} (it takes: {})", unknown_parameter(k), req.method, req.path,
                                   list.empty() ? "none" : list));
    }
}

std::optional<bool> bool_param(const httplib::Request& req, const char* name) {
  std::string v = param(req, name);
  if (v.empty()) return std::nullopt;
  if (v == "1" || v == "true" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "no") return false;
  throw ApiError(400, fmt::format("{}: expected true or false (1, 0, true, false, yes, no)", name));
}

bool flag_param(const httplib::Request& req, const char* name) {
  return bool_param(req, name).value_or(false);
}

void form_params(const httplib::Request& req) {
  if (req.get_header_value("Content-Type") != kDeferredFormType) return;
  if (size_t n = static_cast<size_t>(std::count(req.body.begin(), req.body.end(), '&')) + 1;
      n > kMaxFormParams)
    throw BadRequest(fmt::format("form body: {} parameters (the limit is {})", n, kMaxFormParams));
  parse_params(req.body, const_cast<httplib::Request&>(req).params);
}

std::string_view query_string(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

void parse_params(std::string_view text, std::multimap<std::string, std::string>& out) {
  while (!text.empty()) {
    const size_t amp = text.find('&');
    const std::string_view item = text.substr(0, amp);
    if (!item.empty()) {
      const size_t eq = item.find('=');
      std::string name(item.substr(0, eq)), value(eq == std::string_view::npos ? "" : item.substr(eq + 1));
      out.emplace(httplib::detail::decode_url(name, true), httplib::detail::decode_url(value, true));
    }
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
  }
}

void Routes::add(const char* method, const std::string& pattern) {
  routes_.emplace_back(method, std::regex(pattern));
}

void Routes::get(const std::string& pattern, Handler h) {
  add("GET", pattern);
  add("HEAD", pattern);
  s_.Get(pattern, std::move(h));
}

void Routes::post(const std::string& pattern, Handler h) {
  add("POST", pattern);
  s_.Post(pattern, std::move(h));
}

void Routes::del(const std::string& pattern, Handler h) {
  add("DELETE", pattern);
  s_.Delete(pattern, std::move(h));
}

std::string Routes::allowed(const std::string& path) const {
  std::vector<std::string_view> methods;
  for (auto& [m, re] : routes_)
    if (std::find(methods.begin(), methods.end(), m) == methods.end() && std::regex_match(path, re))
      methods.push_back(m);
  std::string list;
  for (auto m : methods) list += fmt::format("{}{}", list.empty() ? "" : ", ", m);
  return list;
}

const std::string& instance_id() {
  static const std::string id = [] {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}", rd(), rd());
  }();
  return id;
}

namespace {
thread_local std::string t_via;  // the X-TM-Via of the request this thread serves
}

std::string via_chain() { return t_via.empty() ? instance_id() : t_via + ", " + instance_id(); }

std::string via_loop(std::string_view chain) {
  std::vector<std::string_view> ids;
  for (size_t at = 0; at <= chain.size();) {
    size_t end = std::min(chain.find(',', at), chain.size());
    std::string_view id = chain.substr(at, end - at);
    while (!id.empty() && id.front() == ' ') id.remove_prefix(1);
    while (!id.empty() && id.back() == ' ') id.remove_suffix(1);
    if (!id.empty()) ids.push_back(id);
    at = end + 1;
  }
  auto mine = std::find(ids.begin(), ids.end(), instance_id());
  if (mine != ids.end() && mine + 1 == ids.end())
    return "loop: this tm frontend is one of its own workers (its listen address is in its worker list): "
           "remove it from the list";
  if (mine != ids.end())
    return fmt::format(
        "loop: this request came back to this tm frontend through {} other front-end(s) (X-TM-Via {}): "
        "front-ends list each other as workers; list tm serve workers only",
        ids.end() - mine - 1, chain);
  if (ids.size() >= kMaxViaHops)
    return fmt::format(
        "loop: this request has passed {} tm front-ends (X-TM-Via {}), at most {} are followed: front-ends "
        "list each other as workers; list tm serve workers only",
        ids.size(), chain, kMaxViaHops);
  return {};
}

void install_common_handlers(httplib::Server& s, const std::string& token, std::atomic<uint64_t>& requests,
                             time_t write_timeout_s, const Routes& routes) {
  HttpLimits limits;
  limits.max_connections = connections_within_fd_limit(limits.max_connections);
  install_connection_limits(s, limits);
  s.set_write_timeout(write_timeout_s);
  // An answer is written in pieces (headers, then chunks): with Nagle's algorithm a small last
  // piece waits for the client's delayed ACK, 40 ms on Linux, ten times a one-connection query.
  s.set_tcp_nodelay(true);
  s.set_pre_routing_handler([token, &requests, limits](const httplib::Request& req, httplib::Response& res) {
    requests++;
    // Limits first: a body is refused before the token is looked at.
    if (check_request_limits(req, res, limits)) return httplib::Server::HandlerResponse::Handled;
    t_via = req.get_header_value(kViaHeader);
    if (auto loop = via_loop(t_via); !loop.empty()) {
      json_error(res, 508, loop);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (cross_origin(req)) {
      json_error(res, 403,
                 fmt::format("cross-origin request refused: Origin {} is not this server (Host {}); the API "
                             "answers its own web page and clients that are not browsers",
                             req.get_header_value("Origin"), req.get_header_value("Host")));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (token.empty() && !loopback_name(req.get_header_value("Host"))) {
      json_error(
          res, 403,
          fmt::format("Host {} refused: a server without a token answers loopback names only "
                      "(localhost, 127.0.0.1, [::1]); another name reaching it is a web page whose DNS "
                      "answer was switched (DNS rebinding). Give the server a token to use other names",
                      req.get_header_value("Host")));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (token.empty() || req.path == "/health" || is_web_page(req.path) || is_ticket_download(req))
      return httplib::Server::HandlerResponse::Unhandled;
    std::string auth = req.get_header_value("Authorization");
    if (!bearer_matches(auth, token)) {
      res.set_header("WWW-Authenticate", "Bearer");
      json_error(res, 401, auth.empty() ? "missing bearer token" : "wrong bearer token");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_error_handler([&routes](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string allow;
    if (res.status == 404 && !(allow = routes.allowed(req.path)).empty()) {
      res.set_header("Allow", allow);
      json_error(res, 405,
                 fmt::format("method {} not allowed for {} (it takes: {})", req.method, req.path, allow));
    } else if (res.status == 404)
      json_error(res, 404, fmt::format("no such endpoint: {} {}", req.method, req.path));
    else if (res.status == 414)  // (httplib answers it before it parses the request: no path)
      json_error(res, 414,
                 fmt::format("request URI too long: the request line is limited to {} bytes; send the "
                             "parameters in a POST body instead (a form or JSON, up to {} bytes): POST "
                             "/api/v1/query, /api/v1/count, /api/v1/explain and /api/v1/download take "
                             "the parameters of their GET, /api/v1/flows and /api/v1/subscribe too (a "
                             "form body)",
                             kMaxRequestLine, HttpLimits{}.max_body_bytes));
    else if (res.status == 416)  // (by httplib, before routing: a Range it cannot read)
      json_error(res, 416, "Range: not a byte range httplib can read (answers come whole: leave Range out)");
    else if (res.status == 400)  // (by httplib, which reads no further: routes' 400s have a body)
      json_error(
          res, 400,
          fmt::format("malformed request: httplib could not read its request line or headers (HTTP/1.0 "
                      "or 1.1, a method in capitals, lines ending in CRLF, each at most {} bytes)",
                      kMaxRequestLine));
    else
      json_error(res, res.status, fmt::format("HTTP {}", res.status));
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ServiceError& e) {
      json_error(res, e.status, e.what(), e.detail.is_object() ? e.detail : nlohmann::json::object());
    } catch (const nlohmann::json::exception& e) {
      // A JSON body of the wrong shape (a route that did not check a member's type).
      json_error(res, 400, fmt::format("body: {}", e.what()));
    } catch (const std::invalid_argument& e) {
      // std::sto* on a parameter a route did not check (param_u64 says which one).
      json_error(res, 400, fmt::format("a number in the request is not valid ({})", e.what()));
    } catch (const std::out_of_range& e) {
      json_error(res, 400, fmt::format("a number in the request is out of range ({})", e.what()));
    } catch (const std::exception& e) {
      json_error(res, 500, e.what());
    } catch (...) {
      json_error(res, 500, "internal error");
    }
  });
}

}  // namespace tmach::server
