// Community ID v1 against the published vectors (Zeek's and the spec's baseline), and the
// SHA-1 / base64 underneath against FIPS 180 and RFC 4648.
#include <gtest/gtest.h>

#include <cstring>
#include <iostream>
#include <string>

#include "packet/community_id.h"
#include "test_addr.h"
#include "util/sha1.h"

namespace {

using tmach::packet::community_id_v1;
using tmach::packet::CommunityTuple;

std::string hex(const std::array<uint8_t, 20>& h) {
  std::string o;
  for (uint8_t b : h) {
    static const char* d = "0123456789abcdef";
    o += d[b >> 4];
    o += d[b & 15];
  }
  return o;
}

CommunityTuple tuple(const char* a, uint16_t pa, const char* b, uint16_t pb, uint8_t proto) {
  return CommunityTuple{tmtest::A(a), tmtest::A(b), proto, pa, pb};
}

// Both implementations: the portable one, and the SHA instructions' where the CPU has them.
TEST(Sha1, Fips180Vectors) {
  for (const bool hw : {false, true}) {
    SCOPED_TRACE(hw ? "SHA instructions" : "portable");
    if (hw && !tmach::util::Sha1::hardware()) std::cerr << "(this CPU has no SHA instructions)\n";
    auto sha1 = [hw](const std::string& m) {
      tmach::util::Sha1 s(hw);
      s.update(m.data(), m.size());
      return hex(s.finish());
    };
    EXPECT_EQ(sha1(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(sha1("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(sha1("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
                   "mnopqrsmnopq"
                   "rstnopqrstu"),
              "a49b2446a02c645bf419f995b67091253a04a259");
    // A million 'a' fed in uneven pieces: exercises the block carry-over.
    tmach::util::Sha1 s(hw);
    std::string a(999, 'a');
    size_t left = 1000000;
    while (left) {
      size_t n = std::min(left, a.size());
      s.update(a.data(), n);
      left -= n;
    }
    EXPECT_EQ(hex(s.finish()), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  }
}

// Every length from 0 to 300 bytes (each padding case: the length in the last block or in one
// of its own) of varied bytes, the two implementations alike.
TEST(Sha1, HardwareAndPortableAgree) {
  if (!tmach::util::Sha1::hardware()) GTEST_SKIP() << "this CPU has no SHA instructions";
  std::string m;
  uint32_t x = 12345;
  for (size_t n = 0; n <= 300; ++n) {
    tmach::util::Sha1 h(true), p(false);
    h.update(m.data(), m.size());
    p.update(m.data(), m.size());
    ASSERT_EQ(hex(h.finish()), hex(p.finish())) << n << " bytes";
    x = x * 1103515245u + 12345u;
    m += static_cast<char>(x >> 16);
  }
}

TEST(Base64, Rfc4648Vectors) {
  auto b = [](const char* s) { return tmach::util::base64(reinterpret_cast<const uint8_t*>(s), strlen(s)); };
  EXPECT_EQ(b(""), "");
  EXPECT_EQ(b("f"), "Zg==");
  EXPECT_EQ(b("fo"), "Zm8=");
  EXPECT_EQ(b("foo"), "Zm9v");
  EXPECT_EQ(b("foob"), "Zm9vYg==");
  EXPECT_EQ(b("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b("foobar"), "Zm9vYmFy");
}

TEST(CommunityId, PublishedVectorsSeed0) {
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 1122, "5.6.7.8", 3344, 6)), "1:wCb3OG7yAFWelaUydu0D+125CLM=");
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 1122, "5.6.7.8", 3344, 17)), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=");
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 8, "5.6.7.8", 0, 1)), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=");
  EXPECT_EQ(community_id_v1(tuple("fe80:1:203:405:607:809:a0b:c0d", 128,
                                  "fe80:1011:1213:1415:1617:1819:1a1b:1c1d", 0, 58)),
            "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=");
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 1122, "5.6.7.8", 3344, 132)),
            "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=");  // SCTP
  // A protocol without ports (RSVP): addresses and protocol only.
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 0, "5.6.7.8", 0, 46)), "1:ikv3kmf89luf73WPz1jOs49S768=");
}

TEST(CommunityId, PublishedVectorsSeed1) {
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 1122, "5.6.7.8", 3344, 6), 1), "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=");
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 1122, "5.6.7.8", 3344, 17), 1),
            "1:OShq+iKDAMVouh/4bMxB9Sz4amw=");
  EXPECT_EQ(community_id_v1(tuple("1.2.3.4", 8, "5.6.7.8", 0, 1), 1), "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=");
  EXPECT_EQ(community_id_v1(tuple("fe80:1:203:405:607:809:a0b:c0d", 128,
                                  "fe80:1011:1213:1415:1617:1819:1a1b:1c1d", 129, 58),
                            1),
            "1:IO27GQzPuCtNnwFvjWALMHu5tJE=");
}

TEST(CommunityId, BothDirectionsHashTheSame) {
  EXPECT_EQ(community_id_v1(tuple("5.6.7.8", 3344, "1.2.3.4", 1122, 6)), "1:wCb3OG7yAFWelaUydu0D+125CLM=");
  EXPECT_EQ(community_id_v1(tuple("5.6.7.8", 3344, "1.2.3.4", 1122, 17)), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=");
  // The echo reply names the same flow as the request.
  EXPECT_EQ(community_id_v1(tuple("5.6.7.8", 0, "1.2.3.4", 0, 1)), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=");
  EXPECT_EQ(community_id_v1(tuple("fe80:1011:1213:1415:1617:1819:1a1b:1c1d", 129,
                                  "fe80:1:203:405:607:809:a0b:c0d", 0, 58)),
            "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=");
  // Same address on both sides: ordered by port.
  EXPECT_EQ(community_id_v1(tuple("10.0.0.1", 80, "10.0.0.1", 5000, 6)),
            community_id_v1(tuple("10.0.0.1", 5000, "10.0.0.1", 80, 6)));
  // A one-way ICMP type (destination unreachable) is not reordered: the two directions differ.
  EXPECT_NE(community_id_v1(tuple("1.2.3.4", 3, "5.6.7.8", 1, 1)),
            community_id_v1(tuple("5.6.7.8", 3, "1.2.3.4", 1, 1)));
}

TEST(CommunityId, Syntax) {
  EXPECT_TRUE(tmach::packet::is_community_id("1:wCb3OG7yAFWelaUydu0D+125CLM="));
  EXPECT_FALSE(tmach::packet::is_community_id("1:wCb3OG7yAFWelaUydu0D+125CLM"));
  EXPECT_FALSE(tmach::packet::is_community_id("2:wCb3OG7yAFWelaUydu0D+125CLM="));
  EXPECT_FALSE(tmach::packet::is_community_id("1:wCb3OG7yAFWelaUydu0D-125CLM="));
  EXPECT_FALSE(tmach::packet::is_community_id(""));
}

// The hex form (Zeek's and Suricata's base64 option off) is the same 20 bytes: taken in the
// base64 form tm writes and compares.
TEST(CommunityId, HexFormIsTheBase64Form) {
  using tmach::packet::community_id_base64;
  const std::string b64 = "1:wCb3OG7yAFWelaUydu0D+125CLM=";
  EXPECT_EQ(community_id_base64(b64), b64);
  EXPECT_EQ(community_id_base64("1:c026f7386ef200559e95a53276ed03fb5db908b3"), b64);
  EXPECT_EQ(community_id_base64("1:C026F7386EF200559E95A53276ED03FB5DB908B3"), b64);
  EXPECT_FALSE(community_id_base64("1:c026f7386ef200559e95a53276ed03fb5db908b"));   // 39 digits
  EXPECT_FALSE(community_id_base64("1:c026f7386ef200559e95a53276ed03fb5db908bg"));  // not hex
  EXPECT_FALSE(community_id_base64("2:c026f7386ef200559e95a53276ed03fb5db908b3"));  // version 2
  EXPECT_FALSE(community_id_base64(""));
}

}  // namespace
