#include "server/tls_client.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace tmach::server {
namespace {

// OpenSSL's functions tm's client calls, looked up in libssl (and libcrypto, which it loads)
// when first needed. Macros such as SSL_set_tlsext_host_name expand to SSL_ctrl and are
// called through it: `tm` does not link OpenSSL, so a direct call would not link.
// clang-format off
#define TM_SSL_FUNCTIONS(X)                                                                     \
  X(TLS_client_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_set_options) X(SSL_CTX_ctrl)   \
  X(SSL_CTX_set_default_verify_paths) X(SSL_CTX_load_verify_locations)                          \
  X(SSL_CTX_use_certificate_chain_file) X(SSL_CTX_use_PrivateKey_file)                          \
  X(SSL_CTX_check_private_key) X(SSL_CTX_set_verify) X(SSL_new) X(SSL_free) X(SSL_set_fd)       \
  X(SSL_set1_host) X(SSL_ctrl) X(SSL_get0_param) X(SSL_connect) X(SSL_read) X(SSL_write)        \
  X(SSL_get_error) X(SSL_get_verify_result) X(SSL_pending) X(X509_verify_cert_error_string)     \
  X(ERR_peek_last_error) X(ERR_reason_error_string) X(ERR_clear_error)                          \
  X(X509_VERIFY_PARAM_set1_ip_asc) X(SSL_CTX_set_default_passwd_cb)                             \
  X(SSL_CTX_set_default_passwd_cb_userdata)
// clang-format on

#define TM_STR2(x) #x
#define TM_STR(x) TM_STR2(x)

struct Ssl {
#define TM_FIELD(f) decltype(&::f) f = nullptr;
  TM_SSL_FUNCTIONS(TM_FIELD)
#undef TM_FIELD
  std::string error;  // why OpenSSL could not be loaded
};

const Ssl& ssl() {
  static Ssl s;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* lib = "libssl.so." TM_STR(OPENSSL_VERSION_MAJOR);
    void* h = ::dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      s.error = std::string("cannot load OpenSSL (") + lib + ", Debian package libssl3): " + ::dlerror();
      return;
    }
#define TM_LOOKUP(f)                                      \
  s.f = reinterpret_cast<decltype(&::f)>(::dlsym(h, #f)); \
  if (!s.f && s.error.empty()) s.error = std::string("OpenSSL lacks ") + #f + " (" + lib + ")";
    TM_SSL_FUNCTIONS(TM_LOOKUP)
#undef TM_LOOKUP
  });
  if (!s.error.empty()) throw std::runtime_error(s.error);
  return s;
}

// OpenSSL's last error reason ("wrong version number"), its queue cleared; or `def`.
std::string reason(const Ssl& L, const std::string& def) {
  unsigned long e = L.ERR_peek_last_error();
  std::string r;
  if (e) {
    const char* why = L.ERR_reason_error_string(e);
    if (why) r = why;
  }
  L.ERR_clear_error();
  return r.empty() ? def : r;
}

// What a failed read, write or handshake says, with what to check for the usual causes.
std::string failure(const Ssl& L, SSL* s, int rc, const char* op) {
  int err = L.SSL_get_error(s, rc);
  // A blocking socket wants more only when its SO_RCVTIMEO / SO_SNDTIMEO ran out.
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    L.ERR_clear_error();
    return std::string(op) + ": no answer in time";
  }
  if (err == SSL_ERROR_SYSCALL || (err == SSL_ERROR_SSL && L.ERR_peek_last_error() == 0)) {
    L.ERR_clear_error();
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::string(op) + ": no answer in time";
    if (errno == 0) return std::string(op) + ": the server closed the connection";
    return std::string(op) + ": " + std::strerror(errno);
  }
  std::string why = reason(L, "TLS error " + std::to_string(err));
  std::string hint;
  if (why.find("certificate required") != std::string::npos ||
      why.find("handshake failure") != std::string::npos ||
      why.find("bad certificate") != std::string::npos || why.find("unknown ca") != std::string::npos)
    hint = " (the server requires a client certificate its CA signed: give --cert FILE --key FILE)";
  else if (why.find("wrong version number") != std::string::npos ||
           why.find("packet length too long") != std::string::npos)
    hint = " (is it an https:// server? plain http:// servers do not speak TLS)";
  return std::string(op) + ": the server refused TLS: " + why + hint;
}

// OpenSSL writes to the socket with write(2): a server that closed its end would raise
// SIGPIPE and end tm. While one is alive, SIGPIPE is blocked on this thread, and one it
// raised is taken back before it is unblocked (plain sockets use MSG_NOSIGNAL instead).
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (!was_pending_) {
      timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

}  // namespace

TlsClient::TlsClient(int fd, const std::string& host, const TlsClientFiles& f) {
  const Ssl& L = ssl();
  L.ERR_clear_error();
  SSL_CTX* ctx = L.SSL_CTX_new(L.TLS_client_method());
  if (!ctx) throw std::runtime_error("cannot set up TLS: " + reason(L, "out of memory"));
  ctx_ = ctx;
  auto fail = [&](const std::string& why) {
    L.ERR_clear_error();
    if (ssl_) L.SSL_free(static_cast<SSL*>(ssl_));
    L.SSL_CTX_free(ctx);
    ssl_ = ctx_ = nullptr;
    throw std::runtime_error(why);
  };
  // An answer's length is checked by its framing (Content-Length, chunks): a close without
  // TLS's close_notify is the end of the stream, as over plain TCP.
  L.SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  L.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, nullptr);
  L.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (f.ca.empty()) {
    if (L.SSL_CTX_set_default_verify_paths(ctx) != 1) fail("cannot load the system's CA certificates");
  } else if (L.SSL_CTX_load_verify_locations(ctx, f.ca.c_str(), nullptr) != 1) {
    fail("--ca: cannot load " + f.ca + ": " + reason(L, "not a PEM CA certificate"));
  }
  if (f.cert.empty() != f.key.empty()) fail("a client certificate needs both --cert and --key");
  if (!f.cert.empty()) {
    if (L.SSL_CTX_use_certificate_chain_file(ctx, f.cert.c_str()) != 1)
      fail("--cert: cannot load " + f.cert + ": " + reason(L, "not a PEM certificate"));
    // An encrypted key: no pass phrase (OpenSSL's own callback asked on the terminal).
    bool encrypted = false;
    L.SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void* asked) {
      *static_cast<bool*>(asked) = true;
      return 0;
    });
    L.SSL_CTX_set_default_passwd_cb_userdata(ctx, &encrypted);
    const int loaded = L.SSL_CTX_use_PrivateKey_file(ctx, f.key.c_str(), SSL_FILETYPE_PEM);
    L.SSL_CTX_set_default_passwd_cb(ctx, nullptr);
    L.SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    if (loaded != 1 && encrypted)
      fail("--key: " + f.key +
           " is encrypted (a pass phrase protects it), and tm asks for none: give it decrypted");
    if (loaded != 1) {
      std::string why = reason(L, "not a PEM private key");
      if (why.find("mismatch") != std::string::npos)
        fail("--key: the key in " + f.key + " does not match the certificate in " + f.cert);
      fail("--key: cannot load " + f.key + ": " + why);
    }
    if (L.SSL_CTX_check_private_key(ctx) != 1)
      fail("--key: the key in " + f.key + " does not match the certificate in " + f.cert);
  }
  SSL* s = L.SSL_new(ctx);
  if (!s) fail("cannot set up TLS: " + reason(L, "out of memory"));
  ssl_ = s;
  L.SSL_set_fd(s, fd);
  unsigned char addr[16];
  bool ip = inet_pton(AF_INET, host.c_str(), addr) == 1 || inet_pton(AF_INET6, host.c_str(), addr) == 1;
  if (ip) {
    if (L.X509_VERIFY_PARAM_set1_ip_asc(L.SSL_get0_param(s), host.c_str()) != 1)
      fail("cannot verify the address " + host);
  } else {
    L.SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str()));
    if (L.SSL_set1_host(s, host.c_str()) != 1) fail("cannot verify the host name " + host);
  }
  errno = 0;
  int rc;
  {
    NoSigpipe guard;
    rc = L.SSL_connect(s);
  }
  if (rc != 1) {
    long v = L.SSL_get_verify_result(s);
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
      fail("the server's TLS certificate is not for " + host +
           " (its names and addresses do not include it)");
    if (v != X509_V_OK)
      fail(std::string("the server's TLS certificate is not trusted: ") + L.X509_verify_cert_error_string(v) +
           (f.ca.empty() ? " (give --ca FILE: the CA that signed it)"
                         : " (not signed by the CA in " + f.ca + ")"));
    fail(failure(L, s, rc, "TLS handshake"));
  }
}

TlsClient::~TlsClient() {
  if (!ssl_) return;
  const Ssl& L = ssl();
  L.SSL_free(static_cast<SSL*>(ssl_));
  L.SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

size_t TlsClient::pending() const {
  int n = ssl().SSL_pending(static_cast<SSL*>(ssl_));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t TlsClient::read(char* buf, size_t n) {
  const Ssl& L = ssl();
  SSL* s = static_cast<SSL*>(ssl_);
  NoSigpipe guard;
  for (;;) {
    errno = 0;
    int r = L.SSL_read(s, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (r > 0) return static_cast<size_t>(r);
    int err = L.SSL_get_error(s, r);
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err == SSL_ERROR_SYSCALL && errno == 0) return 0;  // closed without close_notify
    if (err == SSL_ERROR_SYSCALL && errno == EINTR) continue;
    throw std::runtime_error(failure(L, s, r, "receive"));
  }
}

void TlsClient::write(const char* p, size_t n) {
  const Ssl& L = ssl();
  SSL* s = static_cast<SSL*>(ssl_);
  NoSigpipe guard;
  while (n > 0) {
    errno = 0;
    int r = L.SSL_write(s, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (L.SSL_get_error(s, r) == SSL_ERROR_SYSCALL && errno == EINTR) continue;
    std::string why = failure(L, s, r, "send");
    // A server that ended the connection may have said why first (a TLS alert: "certificate
    // required"): that is the better message.
    char b;
    errno = 0;
    int rr = L.SSL_read(s, &b, 1);
    if (rr <= 0 && L.SSL_get_error(s, rr) == SSL_ERROR_SSL) why = failure(L, s, rr, "send");
    throw std::runtime_error(why);
  }
}

}  // namespace tmach::server
