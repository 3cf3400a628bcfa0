#include "server/http_common.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>

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
  if (p.format != "json" && p.format != "csv" && p.format != "text")
    throw BadRequest("format: json, csv or text");
  if (p.by != "bytes" && p.by != "packets" && p.by != "duration")
    throw BadRequest("by: bytes, packets or duration");
  if (!top.empty()) {
    char* end = nullptr;
    p.top = std::strtoull(top.c_str(), &end, 10);
    if (*end || top[0] == '-') throw BadRequest("top: a number");
  }
  return p;
}

void json_error(httplib::Response& res, int status, const std::string& msg, nlohmann::json extra) {
  res.status = status;
  extra["error"] = msg;
  res.set_content(extra.dump() + "\n", kJsonType);
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
  return req.has_param(name) ? req.get_param_value(name) : std::string();
}

bool flag_param(const httplib::Request& req, const char* name) {
  std::string v = param(req, name);
  return v == "1" || v == "true" || v == "yes";
}

void install_common_handlers(httplib::Server& s, const std::string& token, std::atomic<uint64_t>& requests,
                             time_t write_timeout_s) {
  s.set_read_timeout(30);
  s.set_write_timeout(write_timeout_s);
  // An answer is written in pieces (headers, then chunks): with Nagle's algorithm a small last
  // piece waits for the client's delayed ACK, 40 ms on Linux, ten times a one-connection query.
  s.set_tcp_nodelay(true);
  s.set_payload_max_length(1 << 20);
  s.set_pre_routing_handler([token, &requests](const httplib::Request& req, httplib::Response& res) {
    requests++;
    if (token.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    std::string auth = req.get_header_value("Authorization");
    if (!const_time_equal(auth, "Bearer " + token)) {
      res.set_header("WWW-Authenticate", "Bearer");
      json_error(res, 401, auth.empty() ? "missing bearer token" : "wrong bearer token");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      json_error(res, 404, fmt::format("no such endpoint: {} {}", req.method, req.path));
    else
      json_error(res, res.status, fmt::format("HTTP {}", res.status));
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ServiceError& e) {
      json_error(res, e.status, e.what(), e.detail.is_object() ? e.detail : nlohmann::json::object());
    } catch (const std::exception& e) {
      json_error(res, 500, e.what());
    } catch (...) {
      json_error(res, 500, "internal error");
    }
  });
}

}  // namespace tmach::server
