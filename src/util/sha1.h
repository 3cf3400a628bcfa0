// SHA-1 (FIPS 180-4) and standard base64 (RFC 4648, with padding): what the Community ID
// flow hash needs, without loading a crypto library at every start of tm.
// SHA-1 is used here as a well-known fingerprint, never for security.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tmach::util {

class Sha1 {
 public:
  Sha1() noexcept;
  void update(const void* data, size_t n) noexcept;
  std::array<uint8_t, 20> finish() noexcept;  // the object is spent afterwards

 private:
  void block(const uint8_t* p) noexcept;
  uint32_t h_[5];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

std::array<uint8_t, 20> sha1(const void* data, size_t n) noexcept;
std::string base64(const uint8_t* data, size_t n);

}  // namespace tmach::util
