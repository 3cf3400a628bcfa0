// Tokenizer for tcpdump filter text, following libpcap's scanner.l: the same token
// classes (numbers, dotted IPv4, IPv6, MAC, identifiers, keywords, operators) chosen by
// the same longest-match rule, so that a word means here what it means to tcpdump.
// Internal to the query parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tmach::query::lex {

enum class Tok : uint8_t {
  kEnd,      // end of input; pos is the input length
  kNum,      // number: decimal, 0x hex or 0-prefixed octal; value in `num`
  kHid,      // dotted IPv4 form of 2 to 4 parts ("10.0.0", "10.0.0.1")
  kHid6,     // IPv6 literal (validated)
  kEid,      // Ethernet address (only meaningful after `ether`)
  kAid,      // ARCnet address "$xx" (only meaningful after `link`)
  kId,       // anything else word-like: a name, "1-1024", or a backslash-escaped word
  kKeyword,  // a libpcap keyword other than and/or/not; `kw` says which
  kAnd,      // and &&
  kOr,       // or ||
  kNot,      // not !
  kLParen,
  kRParen,
  kSlash,  // '/' (CIDR)
  kOp,     // any other operator: [ ] : < > = == != <= >= & | + - * % ^ << >>
};

enum class Kw : uint8_t {
  kNone,
  kSrc,
  kDst,
  kHost,
  kNet,
  kMask,
  kPort,
  kPortRange,
  kProto,
  kIp,
  kIp6,
  kArp,
  kRarp,
  kTcp,
  kUdp,
  kSctp,
  kIcmp,
  kIcmp6,
  kIgmp,
  kEsp,
  kAh,
  kVlan,
  kInner,      // tm: inner host ... (innermost IP layer only)
  kOuter,      // tm: outer host ... (outermost IP layer only)
  kTunnel,     // tm: tunnel [kind [id]]
  kSpi,        // tm: spi N (ESP/AH)
  kUnplanned,  // a libpcap keyword (or named constant such as tcp-syn) tm does not plan
};

struct Token {
  Tok kind = Tok::kEnd;
  Kw kw = Kw::kNone;
  size_t pos = 0;        // byte offset in the input
  std::string text;      // the token's text (without the backslash for escaped ids)
  uint32_t num = 0;      // kNum
  bool escaped = false;  // kId written as "\word"
};

struct LexResult {
  bool ok = true;
  std::vector<Token> toks;  // ends with one kEnd token when ok
  std::string error;        // when !ok
  size_t error_pos = 0;
};

LexResult tokenize(std::string_view text);

}  // namespace tmach::query::lex
