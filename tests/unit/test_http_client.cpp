// The HTTP/1.1 client of tm's commands (server/http_client.h, server/client.h): against a
// scripted socket server (exact bytes: framings, truncation, errors) and against cpp-httplib's
// server, which tm serve and tm frontend run.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include "server/client.h"
#include "server/http_client.h"

namespace tmach::server {
namespace {

ClientOptions client_at(const std::string& url) {
  ClientOptions c;
  c.url = url;
  return c;
}

// Accepts one connection on loopback, reads the request (headers and a Content-Length body),
// then runs `answer` with the socket and the request's bytes.
class ScriptedServer {
 public:
  using Answer = std::function<void(int fd, const std::string& request)>;
  explicit ScriptedServer(Answer answer, bool v6 = false) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0 && ::listen(fd_, 4) == 0 &&
          ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (!ok_) return;
    thread_ = std::thread([this, answer] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      size_t want = std::string::npos;
      while (want == std::string::npos || req.size() < want) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        auto end = req.find("\r\n\r\n");
        if (want == std::string::npos && end != std::string::npos) {
          want = end + 4;
          auto cl = req.find("Content-Length: ");
          if (cl != std::string::npos && cl < end) want += std::stoul(req.substr(cl + 16));
        }
      }
      request_ = req;
      answer(c, req);
      ::close(c);
    });
  }
  ~ScriptedServer() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  int port() const { return port_; }
  // The request as received (once the answer is done).
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  int fd_ = -1, port_ = 0;
  bool ok_ = false;
  std::thread thread_;
  std::string request_;
};

void put(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size()));
}

HostPort local(int port) { return {"127.0.0.1", port}; }

// The body collected, and how the request ended.
struct Got {
  std::string body;
  int pieces = 0;
  bool complete = false;
  HttpResponse resp;
};

Got fetch(int port, HttpRequest req = {}, HttpTimeouts t = {}) {
  Got g;
  g.complete = http_request(
      local(port), req, g.resp,
      [&](const char* p, size_t n) {
        g.body.append(p, n);
        g.pieces++;
        return true;
      },
      t);
  return g;
}

TEST(HttpClient, ContentLengthBodyStatusHeadersAndTheRequestSent) {
  ScriptedServer srv([](int fd, const std::string&) {
    put(fd,
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-TM-Query-Id: 7\r\nContent-Length: "
        "11\r\n\r\n");
    put(fd, "{\"ok\":true}and-garbage-after-the-length");
  });
  ASSERT_TRUE(srv.ok());
  HttpRequest req;
  req.method = "POST";
  req.target = with_query("/api/v1/classes", {{"filter", "host 10.0.0.1 and port 80"}, {"a&b", "c=d/é"}});
  req.body = "{\"host\":\"10.0.0.1\"}";
  req.content_type = "application/json";
  req.bearer_token = "s3cret";
  Got g = fetch(srv.port(), req);
  EXPECT_TRUE(g.complete);
  EXPECT_EQ(g.resp.status, 201);
  EXPECT_EQ(g.resp.reason, "Created");
  EXPECT_EQ(g.resp.header("x-tm-query-id"), "7");
  EXPECT_EQ(g.resp.header("X-TM-Query-Id"), "7");
  EXPECT_EQ(g.resp.header("Content-Type"), "application/json");
  EXPECT_EQ(g.body, "{\"ok\":true}");
  std::string r = srv.request();
  EXPECT_EQ(r.substr(0, r.find("\r\n")),
            "POST /api/v1/classes?a%26b=c%3Dd%2F%C3%A9&filter=host%2010.0.0.1%20and%20port%2080 HTTP/1.1");
  EXPECT_NE(r.find("\r\nHost: 127.0.0.1:" + std::to_string(srv.port()) + "\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nAuthorization: Bearer s3cret\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), req.body);
}

TEST(HttpClient, ChunkedBodyIsDecodedAndDeliveredAsItArrives) {
  std::promise<void> first_seen;
  auto seen = first_seen.get_future();
  ScriptedServer srv([&](int fd, const std::string&) {
    put(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n");
    // The client must have handed over the first chunk before the rest exists.
    ASSERT_EQ(seen.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    put(fd, "1");
    put(fd, "1\r\n, world, and");  // 0x11 bytes, the size line in two pieces
    put(fd, " more\r\n0\r\nX-Trailer: t\r\n\r\n");
  });
  ASSERT_TRUE(srv.ok());
  HttpResponse resp;
  std::string body;
  bool told = false;
  bool complete = http_request(local(srv.port()), {}, resp, [&](const char* p, size_t n) {
    body.append(p, n);
    if (!told) first_seen.set_value();
    told = true;
    return true;
  });
  EXPECT_TRUE(complete);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(body, "hello, world, and more");
}

TEST(HttpClient, BodyUntilCloseWithoutLengthOrChunks) {
  ScriptedServer srv([](int fd, const std::string&) {
    put(fd, "HTTP/1.0 200 OK\r\n\r\n");
    put(fd, std::string(200000, 'x'));
  });
  ASSERT_TRUE(srv.ok());
  Got g = fetch(srv.port());
  EXPECT_TRUE(g.complete);
  EXPECT_EQ(g.body, std::string(200000, 'x'));
}

TEST(HttpClient, ATruncatedChunkedBodyIsAnErrorNeverAShortAnswer) {
  for (const char* cut : {"5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n", "5\r\nhello"}) {
    ScriptedServer srv([&](int fd, const std::string&) {
      put(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      put(fd, cut);
    });
    ASSERT_TRUE(srv.ok());
    try {
      fetch(srv.port());
      FAIL() << "a chunked body cut after '" << cut << "' was accepted";
    } catch (const HttpError& e) {
      EXPECT_NE(
          std::string(e.what()).find("127.0.0.1:" + std::to_string(srv.port()) + ": the connection closed"),
          std::string::npos)
          << e.what();
    }
  }
}

TEST(HttpClient, ATruncatedContentLengthBodyIsAnError) {
  ScriptedServer srv(
      [](int fd, const std::string&) { put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"); });
  ASSERT_TRUE(srv.ok());
  try {
    fetch(srv.port());
    FAIL() << "5 of 100 bytes accepted";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("closed before the Content-Length was read"), std::string::npos)
        << e.what();
  }
}

TEST(HttpClient, MalformedAnswersAreErrors) {
  for (const char* bad : {"SSH-2.0-OpenSSH_9.2\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", ""}) {
    ScriptedServer srv([&](int fd, const std::string&) { put(fd, bad); });
    ASSERT_TRUE(srv.ok());
    EXPECT_THROW(fetch(srv.port()), HttpError) << bad;
  }
}

TEST(HttpClient, InterimAnswersAreSkippedAndNoBodyAfter204) {
  ScriptedServer srv([](int fd, const std::string&) {
    put(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
  });
  ASSERT_TRUE(srv.ok());
  Got g = fetch(srv.port());
  EXPECT_EQ(g.resp.status, 204);
  EXPECT_EQ(g.resp.header("x-a"), "1");
  EXPECT_EQ(g.pieces, 0);
}

TEST(HttpClient, ASinkThatStopsEndsTheRequest) {
  ScriptedServer srv([](int fd, const std::string&) {
    put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
    ::usleep(50000);
    ::send(fd, "56789", 5, MSG_NOSIGNAL);
  });
  ASSERT_TRUE(srv.ok());
  HttpResponse resp;
  bool complete = http_request(local(srv.port()), {}, resp, [](const char*, size_t) { return false; });
  EXPECT_FALSE(complete);
  EXPECT_EQ(resp.status, 200);
}

TEST(HttpClient, ConnectFailureNamesTheAddress) {
  int port;
  {
    ScriptedServer srv([](int, const std::string&) {});
    ASSERT_TRUE(srv.ok());
    port = srv.port();
    // Connect once so that the server's thread ends; the port is closed afterwards.
    HttpResponse r;
    EXPECT_THROW(http_request(local(port), {}, r, nullptr), HttpError);
  }
  try {
    fetch(port);
    FAIL() << "connected to a closed port";
  } catch (const HttpError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
  }
  try {
    HttpResponse r;
    http_request({"no-such-host.invalid", 80}, {}, r, nullptr);
    FAIL() << "resolved .invalid";
  } catch (const HttpError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot connect to no-such-host.invalid:80: ", 0), 0u) << e.what();
  }
}

TEST(HttpClient, ReadTimeout) {
  std::promise<void> done;
  auto wait = done.get_future();
  ScriptedServer srv([&](int fd, const std::string&) {
    put(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    wait.wait_for(std::chrono::seconds(10));
  });
  ASSERT_TRUE(srv.ok());
  HttpTimeouts t;
  t.read_ms = 200;
  try {
    fetch(srv.port(), {}, t);
    FAIL() << "no timeout";
  } catch (const HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("nothing received for 0.2 s"), std::string::npos) << e.what();
  }
  done.set_value();
}

TEST(HttpClient, ABodyMayPauseLongerThanTheAnswerTakesToBegin) {
  // (A subscription: its answer begins at once, its packets may not come for long.)
  ScriptedServer srv([&](int fd, const std::string&) {
    put(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    put(fd, "3\r\ndef\r\n0\r\n\r\n");
  });
  ASSERT_TRUE(srv.ok());
  HttpTimeouts t;
  t.read_ms = 1000;  // (the pause is longer: only body_ms lets it through)
  t.body_ms = 10000;
  EXPECT_EQ(fetch(srv.port(), {}, t).body, "abcdef");
}

TEST(HttpClient, Ipv6Loopback) {
  ScriptedServer srv(
      [](int fd, const std::string&) { put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6"); }, true);
  if (!srv.ok()) GTEST_SKIP() << "no IPv6 loopback";
  HttpResponse resp;
  std::string body;
  http_request(parse_http_url("http://[::1]:" + std::to_string(srv.port())), {}, resp,
               [&](const char* p, size_t n) {
                 body.append(p, n);
                 return true;
               });
  EXPECT_EQ(body, "v6");
  EXPECT_NE(srv.request().find("\r\nHost: [::1]:" + std::to_string(srv.port()) + "\r\n"), std::string::npos);
}

TEST(HttpClient, Urls) {
  auto u = parse_http_url("http://127.0.0.1:8910");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8910);
  u = parse_http_url("HTTP://w1.example:9/");
  EXPECT_EQ(u.host, "w1.example");
  EXPECT_EQ(u.port, 9);
  u = parse_http_url("[2001:db8::1]:8910");
  EXPECT_EQ(u.host, "2001:db8::1");
  EXPECT_EQ(u.port, 8910);
  EXPECT_EQ(parse_http_url("localhost").port, 80);
  EXPECT_FALSE(is_https_url("http://h:1"));
  EXPECT_TRUE(is_https_url("HTTPS://h:1"));
  u = parse_http_url("https://w1.example:8443/");
  EXPECT_EQ(u.host, "w1.example");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(parse_http_url("https://[::1]").port, 443);
  for (const char* bad :
       {"", "https://", "https://h:1/x", "ftp://h", "http://", "http://h:", "http://h:0", "http://h:99999",
        "http://h:8x", "http://h:1/api", "http://[::1", "http://[::1]x", "http://u@h:1"}) {
    try {
      parse_http_url(bad);
      FAIL() << bad << " accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()),
                std::string("'") + bad + "' is not a URL (http://HOST:PORT or https://HOST:PORT)");
    }
  }
  EXPECT_EQ(url_encode("a b+c/~_.-"), "a%20b%2Bc%2F~_.-");
  EXPECT_EQ(with_query("/p", {}), "/p");
  EXPECT_EQ(with_query("/p?x=1", {{"y", "2"}}), "/p?x=1&y=2");
}

// server/client.h over the same client: status, errors as the CLI prints them.
TEST(ApiClient, ErrorsReadAsTheServersMessage) {
  {
    ScriptedServer srv([](int fd, const std::string&) {
      std::string b = "{\"error\":\"too many queries (limit 8); try again later\"}\n";
      put(fd,
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b);
    });
    ASSERT_TRUE(srv.ok());
    std::string got;
    auto r = api_get(client_at("http://127.0.0.1:" + std::to_string(srv.port())), "/api/v1/query",
                     {{"filter", "tcp"}}, [&](const char* p, size_t n) {
                       got.append(p, n);
                       return true;
                     });
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.error, "server answered 503: too many queries (limit 8); try again later");
    EXPECT_EQ(got, "");  // an error's body never reaches the answer's sink
  }
  {
    ScriptedServer srv([](int fd, const std::string&) {
      std::string b = "{\"error\":\"syntax error at 'x'\"}";
      put(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b);
    });
    ASSERT_TRUE(srv.ok());
    auto r =
        api_get(client_at("http://127.0.0.1:" + std::to_string(srv.port())), "/api/v1/query", {}, nullptr);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.error, "syntax error at 'x'");  // the user's own mistake: printed alone
  }
  {
    ScriptedServer srv([](int fd, const std::string&) {
      put(fd, "HTTP/1.1 200 OK\r\nX-TM-Query-Id: q7\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npcap\r\n");
    });
    ASSERT_TRUE(srv.ok());
    std::string got;
    auto r = api_get(client_at("http://127.0.0.1:" + std::to_string(srv.port())), "/api/v1/query", {},
                     [&](const char* p, size_t n) {
                       got.append(p, n);
                       return true;
                     });
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.error.rfind("the server ended the answer early", 0), 0u) << r.error;
    EXPECT_EQ(got, "pcap");
    EXPECT_EQ(r.header("X-TM-Query-Id"), "q7");  // a tm frontend's: what went missing
  }
  EXPECT_THROW(api_get(client_at("not a url"), "/", {}, nullptr), std::runtime_error);
}

// Against cpp-httplib's server (what tm serve and tm frontend run): a streamed (chunked)
// answer, a fixed one, the token.
TEST(ApiClient, AgainstHttplibServer) {
  httplib::Server s;
  s.Get("/stream", [](const httplib::Request& req, httplib::Response& res) {
    int n = std::stoi(req.get_param_value("n"));
    res.set_chunked_content_provider("application/octet-stream", [n](size_t, httplib::DataSink& sink) {
      for (int i = 0; i < n; ++i) {
        std::string piece(1000 + i, static_cast<char>('a' + i % 26));
        if (!sink.write(piece.data(), piece.size())) return false;
      }
      sink.done();
      return true;
    });
  });
  s.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.get_header_value("Authorization") + "|" + req.get_param_value("q") + "|" + req.body,
                    "text/plain");
  });
  int port = s.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t([&] { s.listen_after_bind(); });
  while (!s.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ClientOptions c = client_at("http://127.0.0.1:" + std::to_string(port));
  std::string got;
  auto r = api_get(c, "/stream", {{"n", "300"}}, [&](const char* p, size_t n) {
    got.append(p, n);
    return true;
  });
  std::string want;
  for (int i = 0; i < 300; ++i) want += std::string(1000 + i, static_cast<char>('a' + i % 26));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(got, want);
  HttpRequest req;
  req.method = "POST";
  req.target = with_query("/echo", {{"q", "host ::1 and port 80"}});
  req.body = "payload";
  req.bearer_token = "tok";
  Got g;
  http_request(local(port), req, g.resp, [&](const char* p, size_t n) {
    g.body.append(p, n);
    return true;
  });
  EXPECT_EQ(g.resp.status, 200);
  EXPECT_EQ(g.body, "Bearer tok|host ::1 and port 80|payload");
  auto missing = api_get(c, "/nowhere", {}, nullptr);
  EXPECT_EQ(missing.status, 404);
  s.stop();
  t.join();
}

}  // namespace
}  // namespace tmach::server
