// TLS for tm's own HTTP client (http_client.h): `tm ... --server https://HOST:PORT`. OpenSSL
// is loaded (dlopen) only when a command talks to an https:// server, so that `tm` starts
// without mapping libssl and libcrypto (a few thousand relocations at every start:
// docs/DESIGN.md, "Two executables"); tm-daemon links it through cpp-httplib.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace tmach::server {

// What the client checks the server with, and shows it: `ca` a PEM file of the CA(s) that
// signed the server's certificate (empty: the system's CAs), `cert`/`key` a client
// certificate for servers that require one (mutual TLS).
struct TlsClientFiles {
  std::string ca, cert, key;
};

// One TLS connection over a connected, blocking socket (which the caller keeps and closes).
class TlsClient {
 public:
  // Loads OpenSSL, shakes hands and verifies the server's certificate: signed by `f.ca` (or
  // the system's CAs), valid now, for `host` (a name, or an IP address). Throws
  // std::runtime_error with why, naming what to check: "the server's TLS certificate is not
  // trusted: self-signed certificate in certificate chain (give --ca FILE ...)".
  TlsClient(int fd, const std::string& host, const TlsClientFiles& f);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // Bytes already decrypted and waiting: read() returns them without the socket.
  size_t pending() const;
  // Up to n bytes; 0 at the end of the stream. Throws std::runtime_error: "receive: ..."
  // (a timeout of the socket's SO_RCVTIMEO says "no answer in time").
  size_t read(char* buf, size_t n);
  // All of it; throws std::runtime_error "send: ...".
  void write(const char* p, size_t n);

 private:
  void* ctx_ = nullptr;  // SSL_CTX
  void* ssl_ = nullptr;  // SSL
};

}  // namespace tmach::server
