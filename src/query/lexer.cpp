#include "query/lexer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace tmach::query::lex {
namespace {

struct KeywordEntry {
  const char* word;
  Tok kind;
  Kw kw;
};

// Every keyword of libpcap's scanner.l. The ones tm plans map to their own Kw; the rest
// are kUnplanned, which makes the parser hand the whole filter to libpcap.
constexpr KeywordEntry kKeywords[] = {
    {"and", Tok::kAnd, Kw::kNone},
    {"or", Tok::kOr, Kw::kNone},
    {"not", Tok::kNot, Kw::kNone},
    {"src", Tok::kKeyword, Kw::kSrc},
    {"dst", Tok::kKeyword, Kw::kDst},
    {"host", Tok::kKeyword, Kw::kHost},
    {"net", Tok::kKeyword, Kw::kNet},
    {"mask", Tok::kKeyword, Kw::kMask},
    {"port", Tok::kKeyword, Kw::kPort},
    {"portrange", Tok::kKeyword, Kw::kPortRange},
    {"proto", Tok::kKeyword, Kw::kProto},
    {"ip", Tok::kKeyword, Kw::kIp},
    {"ip6", Tok::kKeyword, Kw::kIp6},
    {"arp", Tok::kKeyword, Kw::kArp},
    {"rarp", Tok::kKeyword, Kw::kRarp},
    {"tcp", Tok::kKeyword, Kw::kTcp},
    {"udp", Tok::kKeyword, Kw::kUdp},
    {"sctp", Tok::kKeyword, Kw::kSctp},
    {"icmp", Tok::kKeyword, Kw::kIcmp},
    {"icmp6", Tok::kKeyword, Kw::kIcmp6},
    {"igmp", Tok::kKeyword, Kw::kIgmp},
    {"esp", Tok::kKeyword, Kw::kEsp},
    {"ah", Tok::kKeyword, Kw::kAh},
    {"vlan", Tok::kKeyword, Kw::kVlan},
    // tm's own (not libpcap keywords): layers, tunnels, IPsec SPIs.
    {"inner", Tok::kKeyword, Kw::kInner},
    {"outer", Tok::kKeyword, Kw::kOuter},
    {"tunnel", Tok::kKeyword, Kw::kTunnel},
    {"spi", Tok::kKeyword, Kw::kSpi},
};

constexpr const char* kUnplannedWords[] = {
    // link-layer and other protocol qualifiers
    "link",
    "ether",
    "ppp",
    "slip",
    "fddi",
    "tr",
    "wlan",
    "igrp",
    "pim",
    "vrrp",
    "carp",
    "radio",
    "atalk",
    "aarp",
    "decnet",
    "lat",
    "sca",
    "moprc",
    "mopdl",
    "iso",
    "esis",
    "es-is",
    "isis",
    "is-is",
    "l1",
    "l2",
    "iih",
    "lsp",
    "snp",
    "csnp",
    "psnp",
    "clnp",
    "stp",
    "ipx",
    "netbeui",
    // other qualifiers and primitives
    "protochain",
    "gateway",
    "type",
    "subtype",
    "direction",
    "dir",
    "address1",
    "addr1",
    "address2",
    "addr2",
    "address3",
    "addr3",
    "address4",
    "addr4",
    "ra",
    "ta",
    "less",
    "greater",
    "byte",
    "broadcast",
    "multicast",
    "len",
    "length",
    "inbound",
    "outbound",
    "ifindex",
    "mpls",
    "pppoed",
    "pppoes",
    "batadv",
    "lane",
    "llc",
    "metac",
    "bcc",
    "oam",
    "oamf4",
    "oamf4ec",
    "oamf4sc",
    "sc",
    "ilmic",
    "vpi",
    "vci",
    "connectmsg",
    "metaconnect",
    "on",
    "ifname",
    "rset",
    "ruleset",
    "rnr",
    "rulenum",
    "srnr",
    "subrulenum",
    "reason",
    "action",
    "fisu",
    "lssu",
    "lsu",
    "msu",
    "hfisu",
    "hlssu",
    "hmsu",
    "sio",
    "opc",
    "dpc",
    "sls",
    "hsio",
    "hopc",
    "hdpc",
    "hsls",
    // named constants for packet-data expressions (scanner.l returns them as NUM)
    "icmptype",
    "icmpcode",
    "icmp-echoreply",
    "icmp-unreach",
    "icmp-sourcequench",
    "icmp-redirect",
    "icmp-echo",
    "icmp-routeradvert",
    "icmp-routersolicit",
    "icmp-timxceed",
    "icmp-paramprob",
    "icmp-tstamp",
    "icmp-tstampreply",
    "icmp-ireq",
    "icmp-ireqreply",
    "icmp-maskreq",
    "icmp-maskreply",
    "icmp6type",
    "icmp6code",
    "icmp6-destinationunreach",
    "icmp6-packettoobig",
    "icmp6-timeexceeded",
    "icmp6-parameterproblem",
    "icmp6-echo",
    "icmp6-echoreply",
    "icmp6-multicastlistenerquery",
    "icmp6-multicastlistenerreportv1",
    "icmp6-multicastlistenerdone",
    "icmp6-routersolicit",
    "icmp6-routeradvert",
    "icmp6-neighborsolicit",
    "icmp6-neighboradvert",
    "icmp6-redirect",
    "icmp6-routerrenum",
    "icmp6-nodeinformationquery",
    "icmp6-nodeinformationresponse",
    "icmp6-ineighbordiscoverysolicit",
    "icmp6-ineighbordiscoveryadvert",
    "icmp6-multicastlistenerreportv2",
    "icmp6-homeagentdiscoveryrequest",
    "icmp6-homeagentdiscoveryreply",
    "icmp6-mobileprefixsolicit",
    "icmp6-mobileprefixadvert",
    "icmp6-certpathsolicit",
    "icmp6-certpathadvert",
    "icmp6-multicastrouteradvert",
    "icmp6-multicastroutersolicit",
    "icmp6-multicastrouterterm",
    "tcpflags",
    "tcp-fin",
    "tcp-syn",
    "tcp-rst",
    "tcp-push",
    "tcp-ack",
    "tcp-urg",
    "tcp-ece",
    "tcp-cwr",
};

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Length of libpcap's ID pattern [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])? at i.
size_t id_len(std::string_view s, size_t i) {
  if (i >= s.size() || !is_alnum(s[i])) return 0;
  size_t j = i + 1;
  while (j < s.size() && (is_alnum(s[j]) || s[j] == '-' || s[j] == '_' || s[j] == '.')) ++j;
  while (j > i + 1 && (s[j - 1] == '-' || s[j - 1] == '_')) --j;
  return j - i;
}

// Length of N = [0-9]+ | 0[xX][0-9A-Fa-f]+ at i.
size_t num_len(std::string_view s, size_t i) {
  if (i >= s.size() || !is_digit(s[i])) return 0;
  if (s[i] == '0' && i + 2 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X') && is_hex(s[i + 2])) {
    size_t j = i + 2;
    while (j < s.size() && is_hex(s[j])) ++j;
    return j - i;
  }
  size_t j = i;
  while (j < s.size() && is_digit(s[j])) ++j;
  return j - i;
}

// Length of N.N, N.N.N or N.N.N.N at i (0 if fewer than two parts).
size_t hid_len(std::string_view s, size_t i) {
  size_t n = num_len(s, i);
  if (n == 0) return 0;
  size_t end = i + n;
  int parts = 1;
  while (parts < 4 && end < s.size() && s[end] == '.') {
    size_t m = num_len(s, end + 1);
    if (m == 0) break;
    end += 1 + m;
    ++parts;
  }
  return parts >= 2 ? end - i : 0;
}

// Length of a valid IPv6 literal at i: the longest prefix of the run of [0-9A-Fa-f:.]
// that contains ':' and parses as IPv6.
size_t v6_len(std::string_view s, size_t i) {
  size_t j = i;
  while (j < s.size() && (is_hex(s[j]) || s[j] == ':' || s[j] == '.') && j - i < 64) ++j;
  for (size_t len = j - i; len >= 2; --len) {
    std::string cand(s.substr(i, len));
    if (cand.find(':') == std::string::npos) break;
    unsigned char buf[16];
    if (inet_pton(AF_INET6, cand.c_str(), buf) == 1) return len;
  }
  return 0;
}

// Length of B<sep>B<sep>B<sep>B<sep>B<sep>B (B = 1-2 hex digits) at i.
size_t mac_sep_len(std::string_view s, size_t i, char sep) {
  size_t j = i;
  for (int g = 0; g < 6; ++g) {
    if (g > 0) {
      if (j >= s.size() || s[j] != sep) return 0;
      ++j;
    }
    if (j >= s.size() || !is_hex(s[j])) return 0;
    ++j;
    if (j < s.size() && is_hex(s[j])) ++j;
  }
  return j - i;
}

// libpcap's MAC pattern: colon, dash or dot separated bytes, xxxx.xxxx.xxxx, or 12 hex digits.
size_t mac_len(std::string_view s, size_t i) {
  size_t best = 0;
  for (char sep : {':', '-', '.'}) best = std::max(best, mac_sep_len(s, i, sep));
  auto hex_run = [&](size_t at, size_t n) {
    for (size_t k = 0; k < n; ++k)
      if (at + k >= s.size() || !is_hex(s[at + k])) return false;
    return true;
  };
  if (hex_run(i, 4) && i + 4 < s.size() && s[i + 4] == '.' && hex_run(i + 5, 4) && i + 9 < s.size() &&
      s[i + 9] == '.' && hex_run(i + 10, 4))
    best = std::max<size_t>(best, 14);
  if (hex_run(i, 12)) best = std::max<size_t>(best, 12);
  return best;
}

// libpcap's stoulen(): hex with 0x, octal with a leading 0, else decimal; 32 bits.
bool parse_number(std::string_view t, uint32_t* out, std::string* err) {
  uint64_t n = 0;
  if (t.size() >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    for (size_t k = 2; k < t.size(); ++k) {
      char c = t[k];
      unsigned d =
          is_digit(c) ? unsigned(c - '0') : unsigned(std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
      n = n * 16 + d;
      if (n > 0xffffffffu) {
        *err = "number " + std::string(t) + " overflows 32 bits";
        return false;
      }
    }
  } else if (t.size() >= 1 && t[0] == '0') {
    for (size_t k = 1; k < t.size(); ++k) {
      if (t[k] > '7') {
        *err = "number " + std::string(t) + " contains non-octal digit";
        return false;
      }
      n = n * 8 + unsigned(t[k] - '0');
      if (n > 0xffffffffu) {
        *err = "number " + std::string(t) + " overflows 32 bits";
        return false;
      }
    }
  } else {
    for (char c : t) {
      n = n * 10 + unsigned(c - '0');
      if (n > 0xffffffffu) {
        *err = "number " + std::string(t) + " overflows 32 bits";
        return false;
      }
    }
  }
  *out = static_cast<uint32_t>(n);
  return true;
}

bool is_unplanned_word(std::string_view w) {
  for (const char* u : kUnplannedWords)
    if (w == u) return true;
  return false;
}

const KeywordEntry* find_keyword(std::string_view w) {
  for (const auto& k : kKeywords)
    if (w == k.word) return &k;
  return nullptr;
}

}  // namespace

LexResult tokenize(std::string_view s) {
  LexResult r;
  auto fail = [&](size_t pos, std::string msg) {
    r.ok = false;
    r.error = std::move(msg);
    r.error_pos = pos;
    r.toks.clear();
    return r;
  };
  auto push = [&](Tok kind, size_t pos, size_t len) {
    Token t;
    t.kind = kind;
    t.pos = pos;
    t.text = std::string(s.substr(pos, len));
    r.toks.push_back(std::move(t));
    return &r.toks.back();
  };

  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '\\') {  // "\word": an identifier even if the word is a keyword (ip proto \tcp)
      size_t j = i + 1;
      while (j < s.size() && !std::strchr(" !()\n\t", s[j])) ++j;
      if (j == i + 1) return fail(i, "stray '\\'");
      Token* t = push(Tok::kId, i, j - i);
      t->text.erase(0, 1);
      t->escaped = true;
      i = j;
      continue;
    }
    if (i + 1 < s.size()) {
      std::string_view two = s.substr(i, 2);
      if (two == "&&" || two == "||") {
        push(two == "&&" ? Tok::kAnd : Tok::kOr, i, 2);
        i += 2;
        continue;
      }
      if (two == ">=" || two == "<=" || two == "!=" || two == "==" || two == "<<" || two == ">>") {
        push(Tok::kOp, i, 2);
        i += 2;
        continue;
      }
    }
    if (c == '(' || c == ')' || c == '!' || c == '/') {
      push(c == '(' ? Tok::kLParen : c == ')' ? Tok::kRParen : c == '!' ? Tok::kNot : Tok::kSlash, i, 1);
      ++i;
      continue;
    }
    if (std::strchr("+-*:[]<>&|^=%", c)) {
      // ':' may start an IPv6 literal ("::1").
      if (c != ':' || v6_len(s, i) == 0) {
        push(Tok::kOp, i, 1);
        ++i;
        continue;
      }
    }
    if (c == '$') {  // ARCnet address
      if (i + 1 < s.size() && is_hex(s[i + 1])) {
        size_t len = (i + 2 < s.size() && is_hex(s[i + 2])) ? 3 : 2;
        push(Tok::kAid, i, len);
        i += len;
        continue;
      }
      return fail(i, "illegal character '$'");
    }
    if (!is_alnum(c) && c != ':') {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
        return fail(i, "illegal character in filter");
      return fail(i, std::string("illegal character '") + c + "'");
    }

    // A word: flex's longest match among libpcap's rules, ties going to the rule listed
    // first (keywords, MAC, number, dotted IPv4, IPv6, identifier).
    size_t idl = id_len(s, i);
    std::string_view word = s.substr(i, idl);
    const KeywordEntry* kwe = idl ? find_keyword(word) : nullptr;
    bool unplanned = idl && !kwe && is_unplanned_word(word);
    size_t macl = mac_len(s, i), numl = num_len(s, i), hidl = hid_len(s, i), v6l = v6_len(s, i);

    size_t best = idl;
    int kind = 6;  // 0 keyword, 1 mac, 2 num, 3 hid, 4 v6, 5 unplanned word, 6 id
    if (kwe) kind = 0;
    if (unplanned) kind = 5;
    auto consider = [&](size_t len, int k) {
      if (len > best || (len == best && len > 0 && k < kind)) {
        best = len;
        kind = k;
      }
    };
    consider(macl, 1);
    consider(numl, 2);
    consider(hidl, 3);
    consider(v6l, 4);
    if (best == 0) return fail(i, std::string("illegal character '") + c + "'");

    Token* t = nullptr;
    switch (kind) {
      case 0:
        t = push(kwe->kind, i, best);
        t->kw = kwe->kw;
        break;
      case 1:
        push(Tok::kEid, i, best);
        break;
      case 2: {
        t = push(Tok::kNum, i, best);
        std::string err;
        if (!parse_number(t->text, &t->num, &err)) return fail(i, err);
        break;
      }
      case 3:
        push(Tok::kHid, i, best);
        break;
      case 4:
        push(Tok::kHid6, i, best);
        break;
      case 5:
        t = push(Tok::kKeyword, i, best);
        t->kw = Kw::kUnplanned;
        break;
      default:
        push(Tok::kId, i, best);
        break;
    }
    i += best;
  }
  Token end;
  end.kind = Tok::kEnd;
  end.pos = s.size();
  r.toks.push_back(end);
  return r;
}

}  // namespace tmach::query::lex
