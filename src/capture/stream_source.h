// Capture files read with read() by tm itself: pcapng files, and anything that is not a
// regular file (stdin, a pipe) in either format, classic pcap or pcapng.
#pragma once

#include <memory>
#include <string>

#include "capture/source.h"

namespace tmach::capture {

// Reads the capture on `fd` (taken over: closed by the source), called `name` in messages.
// A regular file is checked up to its first packet here: one of which nothing can be read
// (damaged, or packets of interfaces no block defines) throws SourceError before anything
// else is done. A stream's header is read here (this blocks until it comes); a stream that
// ends without a readable packet but with unreadable parts throws from next_batch(). Every
// unreadable part is skipped, counted and named with its byte offset in warning() (one line
// each, at most 10, then a total). On a stream, a batch holding packets is handed out once
// no more bytes came for `idle_wait_ms` (or 100 ms after its first packet), and stop() ends a
// wait for input at once.
std::unique_ptr<PacketSource> open_stream_source(int fd, std::string name, int idle_wait_ms = 20);

}  // namespace tmach::capture
