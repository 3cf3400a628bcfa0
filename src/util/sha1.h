// SHA-1 (FIPS 180-4) and standard base64 (RFC 4648, with padding): what the Community ID
// flow hash needs, without loading a crypto library at every start of tm.
// SHA-1 is used here as a well-known fingerprint, never for security.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace tmach::util {

class Sha1 {
 public:
  Sha1() noexcept;
  // With `hardware` false, the portable code even where the CPU has SHA instructions (tests
  // compare the two).
  explicit Sha1(bool hardware) noexcept : Sha1() { use_hardware_ = hardware && Sha1::hardware(); }
  void update(const void* data, size_t n) noexcept;
  std::array<uint8_t, 20> finish() noexcept;  // the object is spent afterwards
  // The CPU has the x86 SHA extensions, which every Sha1 uses unless told not to.
  static bool hardware() noexcept;

 private:
  void block(const uint8_t* p) noexcept;
  void block_portable(const uint8_t* p) noexcept;
  bool use_hardware_ = hardware();
  uint32_t h_[5];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

std::array<uint8_t, 20> sha1(const void* data, size_t n) noexcept;
std::string base64(const uint8_t* data, size_t n);

}  // namespace tmach::util
