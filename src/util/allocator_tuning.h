// Allocator settings for the recording process.
#pragma once

namespace tmach::util {

// The recorder's threads allocate and free tens of MB at every segment seal (the index log,
// the postings, flow-record blocks). glibc's defaults hand such blocks back to the kernel
// (mmap'd blocks above a threshold, heap tops above another), and the next segment takes them
// again — every page faulted and zeroed anew, on the thread that touches it first (often the
// capture thread). Keeping them in the process makes the second segment's memory free; the
// peak is unchanged (it is reached anyway), only its return to the kernel is given up.
// Call once, before the threads start.
void tune_allocator_for_recording();

}  // namespace tmach::util
