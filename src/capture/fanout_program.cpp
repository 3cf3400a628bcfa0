#include "capture/fanout_program.h"

#include <pcap/pcap.h>  // (bpf.h with the types it needs)

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace tmach::capture {
namespace {

// A little assembler: instructions in order, jumps to named labels resolved at the end
// (classic BPF jumps forward only, conditional ones by at most 255 instructions).
class Asm {
 public:
  void op(uint16_t code, uint32_t k = 0) { code_.push_back(BPF_STMT(code, k)); }
  // A conditional jump: to `yes` when the test holds, else to `no` ("" = the next instruction).
  void jump(uint16_t code, uint32_t k, const std::string& yes, const std::string& no = "") {
    fix_.push_back({code_.size(), yes, no});
    code_.push_back(BPF_JUMP(code, k, 0, 0));
  }
  void go(const std::string& to) {  // unconditional
    fix_.push_back({code_.size(), to, ""});
    code_.push_back(BPF_STMT(BPF_JMP | BPF_JA, 0));
  }
  void label(const std::string& name) { at_[name] = code_.size(); }

  std::vector<BpfInstruction> finish() {
    for (const auto& f : fix_) {
      bpf_insn& i = code_[f.at];
      auto offset = [&](const std::string& to) -> uint32_t {
        if (to.empty()) return 0;
        const size_t target = at_.at(to);
        if (target <= f.at) throw std::logic_error("fanout program: backward jump to " + to);
        return static_cast<uint32_t>(target - f.at - 1);
      };
      if (BPF_OP(i.code) == BPF_JA) {
        i.k = offset(f.yes);
      } else {
        const uint32_t jt = offset(f.yes), jf = offset(f.no);
        if (jt > 255 || jf > 255) throw std::logic_error("fanout program: conditional jump too far");
        i.jt = static_cast<u_char>(jt);
        i.jf = static_cast<u_char>(jf);
      }
    }
    std::vector<BpfInstruction> out;
    for (const bpf_insn& i : code_) out.push_back({i.code, i.jt, i.jf, i.k});
    return out;
  }

 private:
  struct Fix {
    size_t at;
    std::string yes, no;
  };
  std::vector<bpf_insn> code_;
  std::vector<Fix> fix_;
  std::map<std::string, size_t> at_;
};

constexpr uint32_t kGolden = 0x9e3779b1u;  // the multiplier of Fibonacci hashing

// A = A ^ (A >> 16), with M[3] as scratch (X is lost).
void fold(Asm& a) {
  a.op(BPF_ST, 3);
  a.op(BPF_ALU | BPF_RSH | BPF_K, 16);
  a.op(BPF_LDX | BPF_MEM, 3);
  a.op(BPF_ALU | BPF_XOR | BPF_X);
}

// A = the `size` (BPF_B, BPF_H) bytes at X + at; then X += by (M[2] as scratch).
void load_and_skip(Asm& a, uint16_t size, uint32_t at, uint32_t by) {
  a.op(BPF_LD | size | BPF_IND, at);
  a.op(BPF_ST, 2);
  a.op(BPF_MISC | BPF_TXA);
  a.op(BPF_ALU | BPF_ADD | BPF_K, by);
  a.op(BPF_MISC | BPF_TAX);
  a.op(BPF_LD | BPF_MEM, 2);
}

}  // namespace

std::vector<BpfInstruction> host_pair_fanout_program() {
  // A holds a type (EtherType, or PPP protocol as an EtherType), X the offset where what it
  // types starts: every load is at a non-negative offset from the data's start, which the
  // kernel reads wherever the bytes are (a load relative to the link-layer header, SKF_LL_OFF,
  // reads only the skb's linear part: a driver that leaves the IP header in a page fragment
  // would have had every such packet on the first socket). Scratch: M[0] the layer's offset,
  // M[1] the XOR so far, M[2], M[3] temporaries.
  Asm a;
  a.op(BPF_LD | BPF_W | BPF_ABS, kAncillaryPacketType);
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, kPacketOutgoing, "", "received");
  // Sent by this host: the data starts at the link-layer header.
  a.op(BPF_LDX | BPF_IMM, 14);
  a.op(BPF_LD | BPF_H | BPF_ABS, 12);
  a.go("type");
  // Received: the data starts after the link-layer header (and after a VLAN tag the kernel took
  // out of it); the type is the skb's protocol.
  a.label("received");
  a.op(BPF_LDX | BPF_IMM, 0);
  a.op(BPF_LD | BPF_W | BPF_ABS, kAncillaryProtocol);

  a.label("type");
  for (int tag = 0; tag < 2; ++tag) {  // up to two VLAN tags left in the data
    const std::string in = "tag" + std::to_string(tag), out = "type" + std::to_string(tag);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x8100, in);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x88a8, in);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x9100, in, out);
    a.label(in);  // the tag at X: TCI, then the type of what follows
    load_and_skip(a, BPF_H, 2, 4);
    a.label(out);
  }
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, "v4");
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, "v6");
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x8864, "pppoe");
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x8847, "mpls");
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x8848, "mpls");
  a.op(BPF_RET | BPF_K, 0);

  // PPPoE session at X: 6 bytes of header, the 2-byte PPP protocol, then the IP layer.
  a.label("pppoe");
  load_and_skip(a, BPF_H, 6, 8);
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0021, "v4");
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0057, "v6");
  a.op(BPF_RET | BPF_K, 0);

  // MPLS labels of 4 bytes from X; the bottom one has bit 0 of its third byte set.
  a.label("mpls");
  for (int k = 0; k < 4; ++k) {
    load_and_skip(a, BPF_B, 2, 4);  // (the label's third byte)
    a.jump(BPF_JMP | BPF_JSET | BPF_K, 1, "ipver", k == 3 ? "none" : "");
  }
  a.label("none");
  a.op(BPF_RET | BPF_K, 0);
  a.label("ipver");  // after the bottom label, at X: the IP version
  a.op(BPF_LD | BPF_B | BPF_IND, 0);
  a.op(BPF_ALU | BPF_RSH | BPF_K, 4);
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 4, "v4");
  a.jump(BPF_JMP | BPF_JEQ | BPF_K, 6, "v6");
  a.op(BPF_RET | BPF_K, 0);

  // IPv4 at X: source at +12, destination at +16.
  a.label("v4");
  a.op(BPF_LD | BPF_W | BPF_IND, 12);
  a.op(BPF_ST, 1);
  a.op(BPF_LD | BPF_W | BPF_IND, 16);
  a.op(BPF_LDX | BPF_MEM, 1);
  a.op(BPF_ALU | BPF_XOR | BPF_X);
  a.go("mix");

  // IPv6 at X: source at +8, destination at +24, four words each.
  a.label("v6");
  a.op(BPF_MISC | BPF_TXA);
  a.op(BPF_ST, 0);
  a.op(BPF_LD | BPF_IMM, 0);
  a.op(BPF_ST, 1);
  for (uint32_t w = 0; w < 4; ++w) {
    a.op(BPF_LDX | BPF_MEM, 0);
    a.op(BPF_LD | BPF_W | BPF_IND, 8 + 4 * w);
    a.op(BPF_ST, 2);
    a.op(BPF_LD | BPF_W | BPF_IND, 24 + 4 * w);
    a.op(BPF_LDX | BPF_MEM, 2);
    a.op(BPF_ALU | BPF_XOR | BPF_X);
    a.op(BPF_LDX | BPF_MEM, 1);
    a.op(BPF_ALU | BPF_XOR | BPF_X);
    a.op(BPF_ST, 1);
  }

  // The XOR of the two addresses, mixed so that the low bits (the kernel takes the result
  // modulo the group's size) depend on all of its bits: a product's bit i depends on the
  // factor's bits 0..i only, so the high half is folded in before and after.
  a.label("mix");
  fold(a);
  a.op(BPF_ALU | BPF_MUL | BPF_K, kGolden);
  fold(a);
  a.op(BPF_RET | BPF_A);
  return a.finish();
}

}  // namespace tmach::capture
