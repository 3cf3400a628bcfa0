#include "server/rate_history.h"

#include <pthread.h>

#include <algorithm>

#include "util/timespec.h"

namespace tmach::server {

RateHistory::RateHistory(Sampler sample, std::chrono::milliseconds interval, size_t capacity)
    : sampler_(std::move(sample)), interval_(interval), capacity_(capacity ? capacity : 1) {
  thread_ = std::thread([this] { loop(); });
}

RateHistory::~RateHistory() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RateHistory::loop() {
  pthread_setname_np(pthread_self(), "tm-history");
  std::unique_lock lk(mu_);
  while (!stop_) {
    lk.unlock();
    sample_now();
    lk.lock();
    cv_.wait_for(lk, wait_after(util::now_ns(), interval_), [this] { return stop_; });
  }
}

std::chrono::nanoseconds RateHistory::wait_after(uint64_t now_ns, std::chrono::milliseconds interval) {
  const auto i = static_cast<uint64_t>(std::max<int64_t>(1, std::chrono::nanoseconds(interval).count()));
  uint64_t w = i - now_ns % i;
  if (w < i / 10) w += i;  // (the first sample, taken at the start, just before a tick)
  return std::chrono::nanoseconds(w);
}

void RateHistory::sample_now() {
  std::lock_guard sl(sample_mu_);
  nlohmann::json cur = sampler_();
  uint64_t now = util::now_ns();
  if (prev_ns_ && now > prev_ns_ && cur.is_object() && prev_.is_object()) {
    double dt = static_cast<double>(now - prev_ns_) / 1e9;
    auto num = [](const nlohmann::json& o, const std::string& key) -> uint64_t {
      if (!o.is_object()) return 0;
      auto it = o.find(key);
      if (it == o.end() || !it->is_number_integer()) return 0;
      return it->is_number_unsigned() ? it->get<uint64_t>()
                                      : static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
    };
    auto rate = [&](const nlohmann::json& a, const nlohmann::json& b, const std::string& key) {
      uint64_t x = num(a, key), y = num(b, key);
      return x >= y ? static_cast<double>(x - y) / dt : 0.0;  // a counter never goes back; if it did: 0
    };
    nlohmann::json s{{"t_ns", now}, {"classes", nlohmann::json::object()}};
    static const nlohmann::json kNone = nlohmann::json::object();
    auto member = [](const nlohmann::json& o, const std::string& key) -> const nlohmann::json& {
      if (!o.is_object()) return kNone;
      auto it = o.find(key);
      return it != o.end() ? *it : kNone;
    };
    const nlohmann::json& before = member(prev_, "classes");
    for (auto& [name, c] : member(cur, "classes").items()) {
      const nlohmann::json& p = member(before, name);
      s["classes"][name] = {
          {"seen_pps", rate(c, p, "seen_packets")},       {"seen_bps", rate(c, p, "seen_bytes")},
          {"stored_pps", rate(c, p, "stored_packets")},   {"stored_bps", rate(c, p, "stored_bytes")},
          {"cut_pps", rate(c, p, "cut_packets")},         {"cut_bps", rate(c, p, "cut_bytes")},
          {"dropped_pps", rate(c, p, "dropped_packets")}, {"ring_used", num(c, "ring_used")}};
    }
    s["kernel_dropped_pps"] = rate(cur, prev_, "kernel_dropped");
    std::lock_guard lk(mu_);
    ring_.push_back(std::move(s));
    while (ring_.size() > capacity_) ring_.pop_front();
  }
  prev_ = std::move(cur);
  prev_ns_ = now;
}

nlohmann::json RateHistory::json() const {
  std::lock_guard lk(mu_);
  nlohmann::json j{{"interval_s", std::chrono::duration<double>(interval_).count()},
                   {"capacity", capacity_},
                   {"samples", nlohmann::json::array()}};
  for (auto& s : ring_) j["samples"].push_back(s);
  return j;
}

}  // namespace tmach::server
