// Live capture on Linux AF_PACKET sockets with a TPACKET_V3 ring (blocks of packets mapped into
// memory, handed back to the kernel block by block), as Stenographer and Arkime read.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>

#include "capture/source.h"

namespace tmach::capture {

// Empty when `opts` can be read through AF_PACKET directly; otherwise why not (the interface is
// not Ethernet, a capture filter is set, not Linux, ...). Throws SourceError when the interface
// cannot be looked up and `opts.method` asks for AF_PACKET.
std::string afpacket_unusable(const LiveOptions& opts);

// Opens `opts.interface` on a TPACKET_V3 ring. Throws SourceError naming the interface, the
// system call and errno.
std::unique_ptr<PacketSource> open_afpacket_source(const LiveOptions& opts);

// Joins packet socket `fd` (bound to `interface`) to PACKET_FANOUT group `group`, or to a new
// group with an id of the kernel's choosing (kNewFanoutGroup). On Ethernet and loopback the
// group spreads packets by their IP address pair (PACKET_FANOUT_CBPF, fanout_program.h: every
// packet of a connection, its fragments included, on one socket); on other interfaces by the
// kernel's flow hash (PACKET_FANOUT_HASH: a fragment is hashed without ports). A kernel before
// 4.3 (no PACKET_FANOUT_CBPF: EINVAL, and PACKET_FANOUT_DATA unknown) gets the flow hash on
// Ethernet too, with a warning once per interface. Returns the group's id. Also used on
// libpcap's socket. Throws SourceError.
int join_fanout(int fd, const std::string& interface, int group);
// Tests: the setsockopt(2) join_fanout calls (nullptr: the system's), to answer as an older
// kernel does.
using SetsockoptFn = int (*)(int fd, int level, int name, const void* value, socklen_t len);
void set_fanout_setsockopt_for_test(SetsockoptFn fn);

// Waits up to `timeout_ms` for capture socket `fd` (of `interface`) to have something to read.
// Throws SourceError when the socket is not open, and (kAfPacket: tm's own AF_PACKET socket)
// when it has an error other than ENETDOWN; kInterfaceDown: ENETDOWN (the interface went down,
// or away: the caller tells which), the error read and so cleared. A libpcap handle's socket
// (kLibpcap) has its errors read by libpcap. kNoErrorPending: poll() returned at once with
// nothing to read and no error (POLLERR for the socket's error queue, or POLLHUP): an AF_PACKET
// socket's error queue was read, and the call still took `timeout_ms`, so a caller that calls
// again at once does not spin. With `warned` (the source's flag), kNoErrorPending is logged as
// a warning the first time (*warned false), and *warned set.
enum class SocketWait { kReadable, kTimedOut, kNoErrorPending, kInterfaceDown };
enum class SocketOwner { kAfPacket, kLibpcap };
SocketWait wait_capture_socket(int fd, int timeout_ms, const std::string& interface,
                               SocketOwner owner = SocketOwner::kAfPacket, bool* warned = nullptr);

}  // namespace tmach::capture
