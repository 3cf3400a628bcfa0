// The API's address rules, shared by tm serve, tm frontend and the clients: HOST:PORT
// parsing, the loopback rule (a security rule: off loopback, a bearer token is required) and
// token files. No HTTP library: the command line and configuration use these too.
#pragma once

#include <string>

namespace tmach::server {

struct HostPort {
  std::string host;  // without the brackets of "[::1]:8910"
  int port = 0;
};

// "HOST:PORT" or "[IPV6]:PORT". Throws std::runtime_error "<what>: expected HOST:PORT" or
// "<what>: bad port '<port>' in <text>: ...".
// The port is 0 to 65535, digits only (0: the system picks a free port; say which with
// format_host_port once bound).
HostPort parse_host_port(const std::string& text, const std::string& what);
// "HOST:PORT", or "[HOST]:PORT" for an IPv6 address.
std::string format_host_port(const std::string& host, int port);

// TLS on the API's listening socket (tm serve, tm frontend): PEM files. No TLS when `cert`
// is empty. With `client_ca`, clients must present a certificate that CA signed (mutual
// TLS). The *_what labels name each file's origin in errors ("--tls-cert", or
// "tm.toml:12: server.tls_cert").
struct TlsFiles {
  std::string cert, key, client_ca;
  std::string cert_what = "--tls-cert", key_what = "--tls-key", client_ca_what = "--tls-client-ca";
  bool on() const { return !cert.empty(); }
};

// localhost, ::1 and 127.0.0.0/8.
bool is_loopback(const std::string& host);

// The loopback rule: an API listening on `listen` (as the user wrote it) off loopback must
// have a token. Throws "<what> <listen> is not a loopback address: give <give>".
void require_token_off_loopback(const std::string& listen, const std::string& token, const std::string& what,
                                const std::string& give);

// The first line of `path`, trailing white space removed. Throws "<what>: cannot read
// <path>" or "<what>: <path> is empty".
std::string read_token_file(const std::string& path, const std::string& what);

}  // namespace tmach::server
