// The HTTP client as `tm` links it: absent. main() hands every command given --server to
// tm-http before it runs (cli/http_handover.h), so these are never reached; they exist so that
// tm query/flows/stats link without cpp-httplib, and fail loudly if that rule is ever broken.
#include <stdexcept>

#include "server/client.h"

namespace tmach::server {

namespace {
[[noreturn]] void absent() {
  throw std::logic_error(
      "internal error: an HTTP request in tm, which links no HTTP (it should have run in tm-http)");
}
}  // namespace

ClientResult api_get(const ClientOptions&, const std::string&, const Params&, std::FILE*) { absent(); }
ClientResult api_get(const ClientOptions&, const std::string&, const Params&,
                     const std::function<bool(const char*, size_t)>&) {
  absent();
}
ClientResult api_post(const ClientOptions&, const std::string&, const std::string&) { absent(); }
ClientResult api_delete(const ClientOptions&, const std::string&) { absent(); }

}  // namespace tmach::server
