#include "server/service.h"

namespace tmach::server {
namespace {

// A one-step call made when the stream runs.
class LazyStream : public Stream {
 public:
  using Call = std::function<std::string(const ByteSink&, const Warn&)>;
  explicit LazyStream(Call c) : call_(std::move(c)) {}
  std::string run(const ByteSink& out, const Warn& warn, const StopCheck& stop) override {
    return call_(
        [&](const char* d, size_t n) {
          if (std::string why = stop(); !why.empty()) throw Cancelled(why);
          out(d, n);
        },
        warn);
  }

 private:
  Call call_;
};

}  // namespace

void throw_for_status(int status, const std::string& m, nlohmann::json detail) {
  switch (status) {
    case 400:
      throw BadRequest(m, std::move(detail));
    case 404:
      throw NotFound(m, std::move(detail));
    case 409:
      throw Conflict(m, std::move(detail));
    case 503:
      throw Unavailable(m, std::move(detail));
    default:
      throw ServiceError(status, m, std::move(detail));
  }
}

std::unique_ptr<Stream> Service::open_query(const QueryRequest& q) {
  return std::make_unique<LazyStream>([this, q](const ByteSink& o, const Warn& w) { return query(q, o, w); });
}

std::unique_ptr<Stream> Service::open_flows(const FlowRequest& q) {
  return std::make_unique<LazyStream>([this, q](const ByteSink& o, const Warn& w) { return flows(q, o, w); });
}

}  // namespace tmach::server
