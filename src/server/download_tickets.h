// One-time download tickets (POST /api/v1/download, GET /api/v1/download/TICKET): the web page
// asks for a ticket with the token in its Authorization header, then lets the browser fetch the
// answer itself (streamed to disk, never held in the page) by a URL that holds the ticket, not
// the token. A ticket is 128 random bits (getrandom), bound to the one packet query it was
// issued for, good for one download within its lifetime (60 s by default), kept in memory only,
// at most `capacity` at once. DESIGN.md ("Download tickets") has the reasoning.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "server/service.h"

namespace tmach::server {

class DownloadTickets {
 public:
  using Clock = std::chrono::steady_clock;
  // `now` is the clock (tests give their own).
  explicit DownloadTickets(Clock::duration ttl = std::chrono::seconds(60), size_t capacity = 256,
                           std::function<Clock::time_point()> now = Clock::now);

  // A new ticket (32 lower-case hex digits) for `q`. Unavailable (503) when `capacity` tickets
  // are still waiting for their download; std::runtime_error when the system has no randomness.
  std::string issue(QueryRequest q);
  // The request of `ticket`, which is used up by this call (unless `use` is false: a HEAD, as
  // link previewers and download managers send, asks what the download would be). NotFound
  // (404) for a ticket never issued (or long forgotten), ServiceError 410 for one already used
  // or expired.
  QueryRequest redeem(const std::string& ticket, bool use = true);
  // Makes a redeemed ticket good again when its answer could not start (503: the store busy,
  // every worker down; nothing was downloaded), until it expires as before.
  void give_back(const std::string& ticket);
  // Tickets issued and neither used nor expired.
  size_t pending();
  Clock::duration ttl() const { return ttl_; }

 private:
  struct Entry {
    std::string ticket;
    QueryRequest q;
    Clock::time_point expires;
    bool used = false;
  };
  // Drops what is long expired; with `make_room`, used and expired ones until there is room. mu_ held.
  void forget_old(Clock::time_point now, bool make_room);
  Clock::duration ttl_;
  size_t capacity_;
  std::function<Clock::time_point()> now_;
  std::mutex mu_;
  std::vector<Entry> entries_;  // mu_: oldest first; used and expired ones kept a while to say so
};

}  // namespace tmach::server
