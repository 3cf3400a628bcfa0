// TLS on the API's listening socket: the httplib server tm serve and tm frontend answer with,
// an httplib::SSLServer over OpenSSL when TLS is configured (server/listen.h, TlsFiles).
// Everything else (connection limits, deadlines, body caps: http_limits.h) is the same: the
// TLS handshake runs on the connection's thread under the header deadline.
#pragma once

#include <memory>
#include <string>

#include "server/listen.h"

namespace httplib {
class Server;
}

namespace tmach::server {

// A plain httplib::Server, or with `tls.on()` an SSLServer with its certificate chain and key
// loaded (TLS 1.2 or later), and with tls.client_ca clients required to present a certificate
// that CA signed. Throws std::runtime_error "<what>: <why>" naming the file at fault (cannot
// read it, not PEM, the key does not match the certificate, expired).
std::unique_ptr<httplib::Server> make_http_server(const TlsFiles& tls);

// Checks the files as make_http_server would, without a server (tm serve checks them before
// it opens capture). Throws as make_http_server.
void check_tls_files(const TlsFiles& tls);

}  // namespace tmach::server
