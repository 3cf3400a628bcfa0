// How a cluster splits traffic between its workers: a symmetric hash of a packet, modulo
// the number of workers. Both directions of a connection get the same hash, so they meet
// at the same worker, which can then apply the connection cutoff on its own.
//
// Which layer: the OUTERMOST IP header (ip[0]). That is what packet brokers and NIC/RSS
// hashing look at, so a cluster fed by such hardware can describe its split with the same
// words; every packet of one tm connection (innermost 5-tuple + tunnel path) carries the
// same outer address pair, so with `pair` a connection never spans two workers.
//
// Schemes:
//  - kPair:   the sorted pair of outer addresses.
//  - kFiveTuple: the sorted pair of outer addresses, the sorted pair of outer ports and the
//    outer protocol. Fragments (first ones too), tunnelled packets and packets without ports
//    hash with ports and protocol 0: a later fragment has no ports, and a later IPv6
//    fragment's protocol is whatever header follows its fragment header; a tunnel's outer
//    ports vary per flow and its outer protocol says nothing of what a query pins inside. A
//    query for one 5-tuple therefore asks the worker of the 5-tuple and the worker of the
//    pair alone (often the same one). A connection with some fragmented packets is thus split
//    between those two workers (each applies the cutoff and writes a flow record for its
//    part): use `pair` where that matters.
// Frames without IP: ARP/RARP by the sorted pair of its sender/target protocol addresses
// (so `host A and host B`, which matches ARP between A and B, finds them at the pair's
// worker), other frames with Ethernet addresses by the sorted MAC pair, anything else
// (undecodable, unknown link types) goes to worker 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "capture/source.h"
#include "packet/packet_info.h"

namespace tmach::cluster {

enum class Scheme : uint8_t { kPair, kFiveTuple };

// "pair" / "5tuple" (also "5-tuple", "five-tuple"); nullopt otherwise.
std::optional<Scheme> parse_scheme(const std::string& s);
const char* scheme_name(Scheme s);

// The symmetric hash of two addresses, two ports and a protocol: the addresses are sorted,
// and so are the ports, so swapping either pair (both directions of a connection) gives the
// same value. Ports and protocol 0 for `pair`. A fixed function of the bytes (no seed), so
// every process, version and machine agrees.
uint64_t flow_hash(const packet::IpAddr& a, const packet::IpAddr& b, uint16_t port_a, uint16_t port_b,
                   uint8_t proto);

// The hash of a decoded frame under `scheme` (see above). `frame` is the frame's bytes
// (for the MAC pair of non-IP frames).
uint64_t packet_hash(Scheme scheme, const packet::PacketInfo& p, const uint8_t* frame, uint32_t caplen);

// The worker (0..workers-1) a frame belongs to.
inline uint32_t worker_of(uint64_t hash, uint32_t workers) {
  return workers ? static_cast<uint32_t>(hash % workers) : 0;
}

// Keeps this worker's share of a packet stream (files; live workers share a PACKET_FANOUT group
// instead, cmdline/options.h): every process of an N-worker split reads
// all packets, decodes each one once more (the cost of splitting in user space; AF_PACKET
// fanout would have the kernel do it, and would need this same hash to agree with the
// front-end's worker selection), and keeps those whose hash mod N is its id.
class ShareFilter {
 public:
  ShareFilter(uint32_t worker_id, uint32_t workers, Scheme scheme);
  // Moves the packets of this worker's share to the front of `pkts`; returns their number.
  size_t keep(capture::RawPacket* pkts, size_t n);

  uint32_t worker_id() const { return id_; }
  uint32_t workers() const { return n_; }
  Scheme scheme() const { return scheme_; }
  uint64_t kept_packets() const { return kept_; }
  uint64_t other_packets() const { return other_; }  // left to the other workers
  uint64_t other_bytes() const { return other_bytes_; }

 private:
  uint32_t id_, n_;
  Scheme scheme_;
  uint64_t kept_ = 0, other_ = 0, other_bytes_ = 0;
  packet::PacketInfo info_;
};

}  // namespace tmach::cluster
