#include "util/crc32.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tmach::util {
namespace {
// Slicing-by-8: eight tables let the loop consume 8 bytes per step (about 4x the classic
// byte-at-a-time loop). The portable path, and the tail of the carry-less one.
using Tables = std::array<std::array<uint32_t, 256>, 8>;
constexpr Tables make_tables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  return t;
}
constexpr Tables kT = make_tables();

// On the raw (pre-inverted) register.
uint32_t crc32_tables(const uint8_t* p, size_t len, uint32_t crc) {
  while (len >= 8) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + 4, 4);
    a ^= crc;
    crc = kT[7][a & 0xff] ^ kT[6][(a >> 8) & 0xff] ^ kT[5][(a >> 16) & 0xff] ^ kT[4][a >> 24] ^
          kT[3][b & 0xff] ^ kT[2][(b >> 8) & 0xff] ^ kT[1][(b >> 16) & 0xff] ^ kT[0][b >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = kT[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// Carry-less multiplication folding (Intel, "Fast CRC Computation for Generic Polynomials
// Using PCLMULQDQ", 2009; the bit-reflected constants of zlib/Chromium's crc32_simd): four
// 128-bit lanes fold 64 bytes per step, then one lane, then a Barrett reduction. About 5x
// the tables on this machine; a query checks the CRC of every index piece it reads.
// `len` >= 16 and a multiple of 16; `crc` is the raw register. Below 64 bytes one lane from
// the start: the sidecar checksums a bitmap blob each, mostly a few dozen bytes, where the
// tables' 8-byte steps cost more than one fold per 16 bytes and the fixed reduction.
__attribute__((target("pclmul,sse4.1"))) uint32_t crc32_clmul(const uint8_t* buf, size_t len, uint32_t crc) {
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};
  auto load = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8;
  if (len < 64) {
    x1 = _mm_xor_si128(load(buf), _mm_cvtsi32_si128(static_cast<int>(crc)));
    x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
    buf += 16;
    len -= 16;
    goto one_lane;
  }
  x1 = load(buf);
  x2 = load(buf + 16);
  x3 = load(buf + 32);
  x4 = load(buf + 48);
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(crc)));
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  buf += 64;
  len -= 64;
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), load(buf));
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), load(buf + 16));
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), load(buf + 32));
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), load(buf + 48));
    buf += 64;
    len -= 64;
  }
  // Fold the four lanes into one.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  for (__m128i next : {x2, x3, x4}) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, next), x5);
  }
one_lane:
  while (len >= 16) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, load(buf)), x5);
    buf += 16;
    len -= 16;
  }
  // 128 -> 64 bits.
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_srli_si128(x1, 8);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, x3);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  // Barrett reduction to 32 bits.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2 = _mm_and_si128(x1, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
  x2 = _mm_and_si128(x2, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}

bool have_clmul() {
  static const bool yes = [] {
    __builtin_cpu_init();  // (may run before the constructor that would do it)
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  return yes;
}
#endif
}  // namespace

uint32_t crc32_portable(const void* data, size_t len, uint32_t crc) {
  return ~crc32_tables(static_cast<const uint8_t*>(data), len, ~crc);
}

namespace {
// Polynomial arithmetic modulo the CRC's (bit-reflected, as the register: x^0 is the top
// bit), after zlib 1.2.12's crc32_combine: A's register is carried over B's length by
// multiplying it by x^(8 len_b), the power taken from squares x^(2^k).
constexpr uint32_t kPoly = 0xEDB88320u;
uint32_t mult_mod_p(uint32_t a, uint32_t b) {
  uint32_t m = uint32_t{1} << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}
std::array<uint32_t, 32> make_x2n() {  // x^(2^k) mod P
  std::array<uint32_t, 32> t{};
  uint32_t p = uint32_t{1} << 30;  // x^1
  t[0] = p;
  for (size_t k = 1; k < t.size(); ++k) t[k] = p = mult_mod_p(p, p);
  return t;
}
}  // namespace

uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  static const std::array<uint32_t, 32> x2n = make_x2n();
  uint32_t p = uint32_t{1} << 31;                // x^0
  for (unsigned k = 3; len_b; len_b >>= 1, ++k)  // x^(8 len_b): bit i of len_b is x^(2^(i+3))
    if (len_b & 1) p = mult_mod_p(x2n[k & 31], p);
  return mult_mod_p(p, crc_a) ^ crc_b;
}

uint32_t crc32(const void* data, size_t len, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (len >= 16 && have_clmul()) {
    size_t chunk = len & ~size_t{15};
    crc = crc32_clmul(p, chunk, crc);
    p += chunk;
    len -= chunk;
  }
#endif
  return ~crc32_tables(p, len, crc);
}
}  // namespace tmach::util
