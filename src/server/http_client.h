// A small HTTP/1.1 client over POSIX sockets: how tm's commands talk to a running tm serve or
// tm frontend (tm query/flows/stats --server, class, connections, subscribe). No HTTP library,
// so that `tm` starts without loading one (docs/DESIGN.md, "Two executables"). HTTP or HTTPS
// (tls_client.h), one request per connection (Connection: close); the answer's body is handed over as it
// arrives, whatever its framing (Content-Length, chunked, or until the server closes).
#pragma once

#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "server/listen.h"
#include "server/tls_client.h"

namespace tmach::server {

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query string, already encoded (with_query)
  std::string body;          // sent with Content-Length when not empty, or for POST/PUT
  std::string content_type;  // of the body
  std::string bearer_token;  // Authorization: Bearer, when not empty
};

struct HttpResponse {
  int status = 0;  // 0 until the status line is read
  std::string reason;
  std::multimap<std::string, std::string> headers;  // names in lower case
  // The first value of header `name` (any case), or "".
  std::string header(std::string name) const;
};

struct HttpTimeouts {
  int connect_ms = 10'000;
  // Each wait for more of the answer: a server that sends nothing for this long is taken for
  // hung (a stopped process still accepts connections). A tm server cuts a query at its
  // --query-timeout (300 s by default), so its answers never pause that long.
  int read_ms = 600'000;
  // Each wait for more of the body once the headers are in (-1: read_ms): a subscription's
  // next packet may not come for long.
  int body_ms = -1;
};

// The transport failed: "cannot connect to HOST:PORT: ...", or after connecting
// "HOST:PORT: ..." (a send or receive error, a timeout, a malformed answer, or a body that
// ended before its length or last chunk: never a silently short answer).
struct HttpError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Receives the body as it arrives; returns false to stop reading.
using BodySink = std::function<bool(const char* data, size_t n)>;

// Connects to `to` (a name or an address, IPv4 or IPv6), sends `req`, reads the status line
// and headers into `resp` (complete before the first call of `body`), then the decoded body
// into `body` (may be null: the body is read and dropped). Returns true when the whole body
// was read, false when `body` returned false (the connection is closed then). Throws
// HttpError; an exception thrown by `body` passes through.
// With `tls` (an https:// URL), over TLS: the server's certificate verified (tls_client.h);
// a failed handshake or verification is "cannot connect to HOST:PORT: <why>".
// `headers_read`, when set, is called once the status line and headers are in `resp`, before
// any of the body is waited for (a subscription's may not come for long).
bool http_request(const HostPort& to, const HttpRequest& req, HttpResponse& resp, const BodySink& body,
                  const HttpTimeouts& t = {}, const TlsClientFiles* tls = nullptr,
                  const std::function<void()>& headers_read = {});

// Percent-encoding of a query component (all but A-Z a-z 0-9 - . _ ~).
std::string url_encode(const std::string& s);
// A form body (application/x-www-form-urlencoded) of the parameters: a space is '+', and only
// what a form's syntax needs is percent-encoded ('%', '&', '=', '+', '#', control and
// non-ASCII bytes), so that a long filter is about its own size, not up to three times it
// (url_encode's %20 for every space) and past a server's body limit.
std::string form_body(const std::multimap<std::string, std::string>& params);
// path?k=v&... with keys and values encoded; `path` alone when there are none.
std::string with_query(const std::string& path, const std::multimap<std::string, std::string>& params);
// "http://HOST:PORT" or "https://HOST:PORT" (the scheme optional: http; a trailing '/'
// allowed, IPv6 in brackets, port 80 or 443 when absent). Throws std::runtime_error
// "'URL' is not a URL (http://HOST:PORT or https://HOST:PORT)".
HostPort parse_http_url(const std::string& url);
// Whether `url` starts with https:// (any case).
bool is_https_url(const std::string& url);
// "HOST:PORT", IPv6 in brackets.
std::string host_port_text(const HostPort& hp);

}  // namespace tmach::server
