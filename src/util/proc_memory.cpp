#include "util/proc_memory.h"

#include <cstdio>
#include <cstring>

namespace tmach::util {

ProcessMemory process_memory() {
  ProcessMemory m;
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return m;
  char line[256];
  while (std::fgets(line, sizeof(line), f)) {
    unsigned long long kb = 0;
    char name[64];
    if (std::sscanf(line, "%63[^:]: %llu kB", name, &kb) != 2) continue;
    const uint64_t b = static_cast<uint64_t>(kb) << 10;
    if (!std::strcmp(name, "VmHWM"))
      m.peak_rss = b;
    else if (!std::strcmp(name, "VmRSS"))
      m.rss = b;
    else if (!std::strcmp(name, "RssAnon"))
      m.rss_anon = b;
    else if (!std::strcmp(name, "RssFile"))
      m.rss_file = b;
    else if (!std::strcmp(name, "RssShmem"))
      m.rss_shmem = b;
  }
  std::fclose(f);
  return m;
}

}  // namespace tmach::util
