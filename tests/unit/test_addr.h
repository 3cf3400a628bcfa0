// An IPv4 or IPv6 address from its text, for unit tests (a bad one fails the test).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>

#include "packet/packet_info.h"

namespace tmtest {

inline tmach::packet::IpAddr A(const char* s) {
  uint8_t b[16];
  if (inet_pton(AF_INET, s, b) == 1) return tmach::packet::IpAddr::v4(b);
  EXPECT_EQ(inet_pton(AF_INET6, s, b), 1) << s;
  return tmach::packet::IpAddr::v6(b);
}

}  // namespace tmtest
