// The process's resident memory as the kernel counts it (/proc/self/status).
#pragma once

#include <cstdint>

namespace tmach::util {

struct ProcessMemory {
  uint64_t peak_rss = 0;   // VmHWM: the most resident at once since the start
  uint64_t rss = 0;        // VmRSS: resident now
  uint64_t rss_anon = 0;   // RssAnon: heap, anonymous mappings (buffers, tables)
  uint64_t rss_file = 0;   // RssFile: mapped files (the program, libraries, an input file being read)
  uint64_t rss_shmem = 0;  // RssShmem: shared memory (AF_PACKET rings)
};

// Bytes; zeros where /proc is not readable.
ProcessMemory process_memory();

}  // namespace tmach::util
