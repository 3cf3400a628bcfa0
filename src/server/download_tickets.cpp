#include "server/download_tickets.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tmach::server {
namespace {

// Compares without an early exit: how long a lookup takes says nothing about a ticket's digits.
bool same(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

std::string random_hex(size_t bytes) {
  unsigned char buf[32];
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(buf + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("download ticket: getrandom: {}", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes; ++i) {
    s += hex[buf[i] >> 4];
    s += hex[buf[i] & 15];
  }
  return s;
}

}  // namespace

DownloadTickets::DownloadTickets(Clock::duration ttl, size_t capacity, std::function<Clock::time_point()> now)
    : ttl_(ttl), capacity_(capacity ? capacity : 1), now_(std::move(now)) {}

// Used and expired tickets are remembered for ten lifetimes (to answer "already used" /
// "expired" rather than "unknown"), and only while there is room.
void DownloadTickets::forget_old(Clock::time_point now, bool make_room) {
  std::erase_if(entries_, [&](const Entry& e) { return now >= e.expires + 10 * ttl_; });
  while (make_room && entries_.size() >= capacity_) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& e) { return e.used || now >= e.expires; });
    if (it == entries_.end()) break;
    entries_.erase(it);
  }
}

std::string DownloadTickets::issue(QueryRequest q) {
  std::string t = random_hex(16);
  std::lock_guard lk(mu_);
  auto now = now_();
  forget_old(now, true);
  if (entries_.size() >= capacity_)
    throw Unavailable(
        fmt::format("too many download tickets waiting to be used (limit {}); try again later", capacity_));
  entries_.push_back(Entry{t, std::move(q), now + ttl_, false});
  return t;
}

QueryRequest DownloadTickets::redeem(const std::string& ticket, bool use) {
  std::lock_guard lk(mu_);
  auto now = now_();
  forget_old(now, false);
  Entry* hit = nullptr;
  for (auto& e : entries_)  // every entry compared: no early exit
    if (same(e.ticket, ticket)) hit = &e;
  if (!hit) throw NotFound("no such download ticket (ask POST /api/v1/download for one)");
  if (hit->used)
    throw ServiceError(410, "this download ticket was used already (a ticket is good for one download)");
  if (now >= hit->expires)
    throw ServiceError(410, fmt::format("this download ticket expired (a ticket lasts {} s)",
                                        std::chrono::duration_cast<std::chrono::seconds>(ttl_).count()));
  hit->used = use;
  return hit->q;  // (kept: give_back may make it good again)
}

void DownloadTickets::give_back(const std::string& ticket) {
  std::lock_guard lk(mu_);
  Entry* hit = nullptr;
  for (auto& e : entries_)
    if (same(e.ticket, ticket)) hit = &e;
  if (hit) hit->used = false;
}

size_t DownloadTickets::pending() {
  std::lock_guard lk(mu_);
  auto now = now_();
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(),
                                           [&](const Entry& e) { return !e.used && now < e.expires; }));
}

}  // namespace tmach::server
