// The classic BPF program that spreads an Ethernet interface's packets over the sockets of a
// PACKET_FANOUT group (PACKET_FANOUT_CBPF): what it returns, modulo the group's size, is the
// socket that gets the packet.
//
// It hashes the IP layer's two addresses, unordered (an XOR of them, then mixed), and nothing
// else: every packet between two hosts goes to one socket, both directions of a connection and
// every IP fragment of its datagrams with them. The kernel's own flow hash (PACKET_FANOUT_HASH)
// covers the ports of an unfragmented packet but not of a fragment (the first one included), so
// a connection whose datagrams are sometimes fragmented was split between two capture threads,
// each counting its part against the cutoff and leaving a flow record of its own.
//
// Looked through: up to two VLAN tags left in the frame (802.1Q, 802.1ad, 0x9100; a tag the
// kernel took out of the frame is not there to skip), PPPoE sessions (PPP protocol IPv4 or
// IPv6), and up to four MPLS labels (the IP version from the first nibble after the bottom
// label). The addresses are the outermost IP layer's: tm's connection of a tunnelled packet is
// its innermost flow, and a tunnel's packets share their outer addresses. Anything else (ARP,
// other EtherTypes, MPLS without IP right behind, a frame cut before its addresses) returns 0:
// the first socket.
#pragma once

#include <cstdint>
#include <vector>

namespace tmach::capture {

// One classic BPF instruction, laid out as the kernel's struct sock_filter and libpcap's
// struct bpf_insn are (neither header is needed by who includes this one).
struct BpfInstruction {
  uint16_t code;
  uint8_t jt, jf;
  uint32_t k;
};

// Where the data it sees starts depends on the packet's direction, which it asks the kernel
// (ancillary loads): a received packet's data starts at its network header (after the
// link-layer header and any VLAN tag the kernel took out; the type is the skb's protocol), a
// sent one's at its link-layer header. An interpreter without the ancillary loads (libpcap's,
// for tests) must be given their values.
inline constexpr uint32_t kAncillaryProtocol = 0xfffff000u;    // SKF_AD_OFF + SKF_AD_PROTOCOL
inline constexpr uint32_t kAncillaryPacketType = 0xfffff004u;  // SKF_AD_OFF + SKF_AD_PKTTYPE
inline constexpr uint32_t kPacketOutgoing = 4;                 // PACKET_OUTGOING

std::vector<BpfInstruction> host_pair_fanout_program();

}  // namespace tmach::capture
