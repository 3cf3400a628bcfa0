#include "util/allocator_tuning.h"

#include <malloc.h>

namespace tmach::util {

void tune_allocator_for_recording() {
  // Blocks up to 32 MiB come from the heap rather than from mmap of their own; a heap keeps
  // up to 1 GiB of free memory at its top rather than trimming it.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace tmach::util
