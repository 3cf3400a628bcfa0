// pread(2) until `n` bytes are read, the file ends, or an error other than EINTR.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace tmach::util {

// The bytes read (fewer than `n` only at the end of the file), or -1 with errno set.
ssize_t pread_full(int fd, void* dst, size_t n, uint64_t off);

}  // namespace tmach::util
