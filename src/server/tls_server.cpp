#include "server/tls_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace tmach::server {
namespace {

// OpenSSL's last error reason ("no start line", "key values mismatch"), queue cleared.
std::string ssl_reason() {
  unsigned long e = ERR_peek_last_error();
  std::string r;
  if (e) {
    const char* why = ERR_reason_error_string(e);
    r = why ? why : fmt::format("OpenSSL error {:#x}", e);
  }
  ERR_clear_error();
  return r.empty() ? "unknown OpenSSL error" : r;
}

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  ERR_clear_error();
  throw std::runtime_error(fmt::format("{}: {}", what, why));
}

void readable(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  if (!f) fail(what, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
}

// OpenSSL's pass phrase callback for an encrypted key: none given (OpenSSL's own asked on the
// terminal, and a daemon started from one waited there; without a terminal the key was called
// "not a PEM private key"). `asked` says it was called: the key is encrypted.
int no_pass_phrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return 0;
}

// Loads the files into `ctx`; throws naming the one at fault.
void setup(SSL_CTX* ctx, const TlsFiles& t) {
  if (t.key.empty()) fail(t.key_what, fmt::format("missing: {} needs its private key", t.cert_what));
  readable(t.cert, t.cert_what);
  readable(t.key, t.key_what);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, t.cert.c_str()) != 1)
    fail(t.cert_what, fmt::format("{} is not a PEM certificate ({})", t.cert, ssl_reason()));
  if (X509* x = SSL_CTX_get0_certificate(ctx); x && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
    fail(t.cert_what, fmt::format("the certificate in {} has expired", t.cert));
  bool encrypted = false;
  SSL_CTX_set_default_passwd_cb(ctx, no_pass_phrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &encrypted);
  const int loaded = SSL_CTX_use_PrivateKey_file(ctx, t.key.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_set_default_passwd_cb(ctx, nullptr);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  if (loaded != 1 && encrypted)
    fail(t.key_what, fmt::format("{} is encrypted (a pass phrase protects it), and tm asks for none: give it "
                                 "decrypted, readable by tm only (openssl pkey -in {} -out KEY)",
                                 t.key, t.key));
  if (loaded != 1) {
    std::string why = ssl_reason();
    if (why.find("mismatch") == std::string::npos)
      fail(t.key_what, fmt::format("{} is not a PEM private key ({})", t.key, why));
    fail(t.key_what, fmt::format("the key in {} does not match the certificate in {}", t.key, t.cert));
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    fail(t.key_what, fmt::format("the key in {} does not match the certificate in {}", t.key, t.cert));
  if (!t.client_ca.empty()) {
    readable(t.client_ca, t.client_ca_what);
    if (SSL_CTX_load_verify_locations(ctx, t.client_ca.c_str(), nullptr) != 1)
      fail(t.client_ca_what, fmt::format("{} holds no PEM CA certificate ({})", t.client_ca, ssl_reason()));
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(t.client_ca.c_str());
    if (!names) fail(t.client_ca_what, fmt::format("{} holds no PEM CA certificate", t.client_ca));
    SSL_CTX_set_client_CA_list(ctx, names);
    // Mutual TLS: a client without a certificate this CA signed ends in the handshake.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
}

}  // namespace

void check_tls_files(const TlsFiles& tls) {
  if (!tls.on()) {
    if (!tls.key.empty()) fail(tls.key_what, fmt::format("given without {}", tls.cert_what));
    if (!tls.client_ca.empty()) fail(tls.client_ca_what, fmt::format("given without {}", tls.cert_what));
    return;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) fail(tls.cert_what, "cannot set up TLS: " + ssl_reason());
  try {
    setup(ctx, tls);
  } catch (...) {
    SSL_CTX_free(ctx);
    throw;
  }
  SSL_CTX_free(ctx);
}

std::unique_ptr<httplib::Server> make_http_server(const TlsFiles& tls) {
  if (!tls.on()) {
    check_tls_files(tls);
    return std::make_unique<httplib::Server>();
  }
  std::string error;
  auto s = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    try {
      setup(&ctx, tls);
      return true;
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
  });
  if (!s->is_valid()) throw std::runtime_error(error.empty() ? "cannot set up TLS: " + ssl_reason() : error);
  return s;
}

}  // namespace tmach::server
