#include "server/http_client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "server/tls_client.h"

namespace tmach::server {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// One connected socket, closed at the end.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Connects within t.connect_ms, trying every address the name resolves to.
void connect_to(Fd& s, const HostPort& to, const std::string& where, const HttpTimeouts& t) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(to.port);
  int rc = ::getaddrinfo(to.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw HttpError("cannot connect to " + where + ": " + ::gai_strerror(rc));
  std::string why = "no address";
  auto deadline = Clock::now() + std::chrono::milliseconds(t.connect_ms);
  for (addrinfo* a = res; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n;
      while ((n = ::poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof err;
      if (n == 0)
        err = ETIMEDOUT;
      else if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    }
    if (err == 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      s.fd = fd;
      ::freeaddrinfo(res);
      return;
    }
    ::close(fd);
    if (err == ETIMEDOUT) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", t.connect_ms / 1000.0);
      why = std::string("no answer within ") + secs + " s";
    } else {
      why = std::strerror(err);
    }
    if (ms_left(deadline) == 0) break;
  }
  ::freeaddrinfo(res);
  throw HttpError("cannot connect to " + where + ": " + why);
}

// The answer as a stream: a buffer refilled from the socket, each wait bounded by read_ms.
class Reader {
 public:
  Reader(int fd, TlsClient* tls, const std::string& where, int read_ms)
      : fd_(fd), tls_(tls), where_(where), read_ms_(read_ms) {}

  size_t avail() const { return end_ - pos_; }
  const char* data() const { return buf_ + pos_; }
  void consume(size_t n) { pos_ += n; }
  void set_read_ms(int ms) { read_ms_ = ms; }

  // Reads more; false at the end of the stream.
  bool fill() {
    if (pos_ == end_) pos_ = end_ = 0;
    if (end_ == sizeof buf_) {
      std::memmove(buf_, buf_ + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    for (;;) {
      if (!tls_ || tls_->pending() == 0) {
        pollfd p{fd_, POLLIN, 0};
        int n = ::poll(&p, 1, read_ms_);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(std::string("poll: ") + std::strerror(errno));
        if (n == 0)
          fail(fmt::format(
              "nothing received for {:g} s (a hung server? a client's --timeout sets how long to wait)",
              read_ms_ / 1000.0));
      }
      if (tls_) {
        size_t r = 0;
        try {
          r = tls_->read(buf_ + end_, sizeof buf_ - end_);
        } catch (const std::runtime_error& e) {
          fail(e.what());
        }
        end_ += r;
        return r > 0;
      }
      ssize_t r = ::recv(fd_, buf_ + end_, sizeof buf_ - end_, 0);
      got_ |= r > 0;
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(std::string("receive: ") + std::strerror(errno));
      end_ += static_cast<size_t>(r);
      return r > 0;
    }
  }

  // One line without its CRLF (or LF); throws at the end of the stream (`in` says in what).
  std::string line(const char* in) {
    for (;;) {
      const char* nl = static_cast<const char*>(std::memchr(data(), '\n', avail()));
      if (nl) {
        std::string s(data(), nl);
        consume(static_cast<size_t>(nl - data()) + 1);
        if (!s.empty() && s.back() == '\r') s.pop_back();
        return s;
      }
      if (avail() >= kMaxLine) fail(std::string("a line of more than 16 KiB in ") + in);
      if (!fill())
        fail(std::string("the connection closed in ") + in +
             (got_ || tls_ ? "" : " (nothing was answered: an https:// server? then give https://)"));
    }
  }

  [[noreturn]] void fail(const std::string& what) const { throw HttpError(where_ + ": " + what); }

 private:
  static constexpr size_t kMaxLine = 16 << 10;
  int fd_;
  TlsClient* tls_;    // null: plain HTTP
  bool got_ = false;  // a byte was received
  const std::string& where_;
  int read_ms_;
  char buf_[64 << 10];
  size_t pos_ = 0, end_ = 0;
};

void send_all(int fd, TlsClient* tls, const std::string& s, const std::string& where) {
  if (tls) {
    try {
      tls->write(s.data(), s.size());
    } catch (const std::runtime_error& e) {
      throw HttpError(where + ": " + e.what());
    }
    return;
  }
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw HttpError(where + ": send: " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
}

// Hands up to `n` bytes of the body (n = SIZE_MAX: until the end of the stream) to `body`.
// Returns false when the sink stopped; throws when the stream ends first (unless n = SIZE_MAX).
bool pass_body(Reader& rd, uint64_t n, const BodySink& body, const char* where) {
  while (n > 0) {
    if (rd.avail() == 0 && !rd.fill()) {
      if (n == UINT64_MAX) return true;
      rd.fail(std::string("the connection closed ") + where);
    }
    size_t k = rd.avail() < n ? rd.avail() : static_cast<size_t>(n);
    const char* p = rd.data();
    rd.consume(k);
    if (n != UINT64_MAX) n -= k;
    if (body && !body(p, k)) return false;
  }
  return true;
}

// The chunked body: each chunk's size line, its data, CRLF; the last chunk (0), trailers.
bool pass_chunked(Reader& rd, const BodySink& body) {
  const char* ended = "the chunked body, before its last chunk";
  for (;;) {
    std::string sz = rd.line(ended);
    sz = trim(sz.substr(0, sz.find(';')));  // chunk extensions ignored
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(sz.c_str(), &end, 16);
    if (sz.empty() || *end || errno || !std::isxdigit(static_cast<unsigned char>(sz[0])))
      rd.fail("malformed chunk size '" + sz + "'");
    if (n == 0) break;
    if (!pass_body(rd, n, body, "within a chunk")) return false;
    if (!rd.line(ended).empty()) rd.fail("malformed chunk (no CRLF after its data)");
  }
  while (!rd.line(ended).empty()) {
  }  // trailers
  return true;
}

}  // namespace

std::string HttpResponse::header(std::string name) const {
  auto it = headers.find(lower(std::move(name)));
  return it == headers.end() ? std::string() : it->second;
}

std::string host_port_text(const HostPort& hp) {
  bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string form_body(const std::multimap<std::string, std::string>& params) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  auto put = [&](const std::string& s) {
    for (unsigned char c : s) {
      if (c == ' ') {
        out += '+';
      } else if (c > 0x20 && c < 0x7f && c != '%' && c != '&' && c != '=' && c != '+' && c != '#') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  };
  for (auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    put(k);
    out += '=';
    put(v);
  }
  return out;
}

std::string with_query(const std::string& path, const std::multimap<std::string, std::string>& params) {
  std::string t = path;
  char sep = path.find('?') == std::string::npos ? '?' : '&';
  for (auto& [k, v] : params) {
    t += sep;
    t += url_encode(k) + "=" + url_encode(v);
    sep = '&';
  }
  return t;
}

bool is_https_url(const std::string& url) { return lower(url.substr(0, 8)) == "https://"; }

HostPort parse_http_url(const std::string& url) {
  auto bad = [&] {
    return std::runtime_error("'" + url + "' is not a URL (http://HOST:PORT or https://HOST:PORT)");
  };
  std::string s = url;
  bool https = is_https_url(url);
  if (lower(s.substr(0, 7)) == "http://")
    s = s.substr(7);
  else if (https)
    s = s.substr(8);
  else if (s.find("://") != std::string::npos)
    throw bad();
  if (!s.empty() && s.back() == '/') s.pop_back();
  if (s.empty() || s.find_first_of("/?#@ ") != std::string::npos) throw bad();
  HostPort hp;
  std::string port;
  if (s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close == 1) throw bad();
    hp.host = s.substr(1, close - 1);
    std::string rest = s.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') throw bad();
    if (!rest.empty()) port = rest.substr(1);
    if (!rest.empty() && port.empty()) throw bad();
  } else {
    auto colon = s.find(':');
    hp.host = s.substr(0, colon);
    if (colon != std::string::npos) {
      port = s.substr(colon + 1);
      if (port.empty()) throw bad();
    }
    if (hp.host.empty()) throw bad();
  }
  hp.port = https ? 443 : 80;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw bad();
    hp.port = std::stoi(port);
    if (hp.port < 1 || hp.port > 65535) throw bad();
  }
  return hp;
}

bool http_request(const HostPort& to, const HttpRequest& req, HttpResponse& resp, const BodySink& body,
                  const HttpTimeouts& t, const TlsClientFiles* tls_files,
                  const std::function<void()>& headers_read) {
  const std::string where = host_port_text(to);
  Fd s;
  connect_to(s, to, where, t);
  auto timeout = [&](int opt, int ms) {
    struct timeval tv {
      ms / 1000, (ms % 1000) * 1000
    };
    ::setsockopt(s.fd, SOL_SOCKET, opt, &tv, sizeof tv);
  };
  timeout(SO_SNDTIMEO, t.read_ms);
  std::unique_ptr<TlsClient> tls;
  if (tls_files) {
    // The handshake within the connect time; then each read within read_ms, as over TCP.
    timeout(SO_RCVTIMEO, t.connect_ms);
    try {
      tls = std::make_unique<TlsClient>(s.fd, to.host, *tls_files);
    } catch (const std::runtime_error& e) {
      throw HttpError("cannot connect to " + where + ": " + e.what());
    }
    timeout(SO_RCVTIMEO, t.read_ms);
  }
  std::string head = req.method + " " + req.target + " HTTP/1.1\r\nHost: " + where +
                     "\r\nUser-Agent: tm\r\nAccept: */*\r\nConnection: close\r\n";
  if (!req.bearer_token.empty()) head += "Authorization: Bearer " + req.bearer_token + "\r\n";
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT") {
    if (!req.content_type.empty()) head += "Content-Type: " + req.content_type + "\r\n";
    head += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
  }
  head += "\r\n";
  send_all(s.fd, tls.get(), head + req.body, where);

  Reader rd(s.fd, tls.get(), where, t.read_ms);
  const char* in_head = "the status line or headers";
  for (;;) {  // interim answers (1xx) are skipped
    resp = HttpResponse{};
    std::string status = rd.line(in_head);
    // HTTP/1.x SP 3DIGIT [SP reason]
    if (status.size() < 12 || status.compare(0, 7, "HTTP/1.") != 0 || status[8] != ' ' ||
        !std::isdigit(static_cast<unsigned char>(status[9])) ||
        !std::isdigit(static_cast<unsigned char>(status[10])) ||
        !std::isdigit(static_cast<unsigned char>(status[11])) || (status.size() > 12 && status[12] != ' '))
      rd.fail("not an HTTP answer: '" + status.substr(0, 80) + "'");
    resp.status = std::stoi(status.substr(9, 3));
    resp.reason = status.size() > 13 ? status.substr(13) : "";
    size_t total = 0;
    for (std::string h; !(h = rd.line(in_head)).empty();) {
      if ((total += h.size()) > (256u << 10)) rd.fail("headers of more than 256 KiB");
      auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0)
        rd.fail("malformed header line '" + h.substr(0, 80) + "'");
      resp.headers.emplace(lower(h.substr(0, colon)), trim(h.substr(colon + 1)));
    }
    if (resp.status >= 200) break;
    if (resp.status == 101) rd.fail("the server switched protocols");
  }
  if (headers_read) headers_read();
  if (t.body_ms >= 0) {
    rd.set_read_ms(t.body_ms);
    if (tls) timeout(SO_RCVTIMEO, t.body_ms);
  }
  if (req.method == "HEAD" || resp.status == 204 || resp.status == 304) return true;
  std::string te = lower(resp.header("transfer-encoding"));
  if (!te.empty() && te != "identity") {
    if (te != "chunked") rd.fail("unsupported transfer encoding '" + te + "'");
    return pass_chunked(rd, body);
  }
  std::string cl = resp.header("content-length");
  if (!cl.empty()) {
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(cl.c_str(), &end, 10);
    if (*end || errno || !std::isdigit(static_cast<unsigned char>(cl[0])) || n == UINT64_MAX)
      rd.fail("malformed Content-Length '" + cl + "'");
    return pass_body(rd, n, body, "before the Content-Length was read");
  }
  return pass_body(rd, UINT64_MAX, body, "");
}

}  // namespace tmach::server
