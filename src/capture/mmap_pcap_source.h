// Classic pcap files read through mmap: no read() and no copy per packet.
#pragma once

#include <memory>
#include <string>

#include "capture/source.h"

namespace tmach::capture {

// Returns null when `path` is not a classic pcap file (e.g. pcapng), so the caller can
// fall back to libpcap. Throws SourceError when the file cannot be opened or mapped.
std::unique_ptr<PacketSource> open_mmap_pcap(const std::string& path);

}  // namespace tmach::capture
