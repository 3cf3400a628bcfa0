#include "util/sha1.h"

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace tmach::util {
namespace {

uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

#if defined(__x86_64__)
// One block with the x86 SHA extensions (SHA-NI: Intel since Goldmont and Ice Lake, AMD since
// Zen), which do four rounds an instruction: a Community ID lookup hashes every flow record
// of the store, and this was half of its time in plain code.
//
// Per group k of four rounds (k = 0..19): the message words W[4k..4k+3] as one vector M_k (the
// first four loaded, then M_k = msg2(msg1(M_k-4, M_k-3) ^ M_k-2, M_k-1)); the group's E is the
// A of the state before group k-1, rotated (nexte adds it to M_k); rnds4 does the rounds with
// the function and constant of round 20 * (k / 5).
#define TM_SHA_TARGET gnu::target("sha,sse4.1,ssse3")

template <int K>
[[TM_SHA_TARGET, gnu::always_inline]] inline void sha_group(__m128i (&m)[4], __m128i& abcd, __m128i& prev) {
  if constexpr (K >= 4)
    m[K & 3] = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(m[K & 3], m[(K + 1) & 3]), m[(K + 2) & 3]),
                                  m[(K + 3) & 3]);
  const __m128i e = _mm_sha1nexte_epu32(prev, m[K & 3]);
  prev = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, e, K / 5);
}

template <int... K>
[[TM_SHA_TARGET, gnu::always_inline]] inline void sha_groups(std::integer_sequence<int, K...>,
                                                             __m128i (&m)[4], __m128i& abcd, __m128i& prev) {
  (sha_group<K + 1>(m, abcd, prev), ...);
}

[[TM_SHA_TARGET]] void block_sha_ni(uint32_t h[5], const uint8_t* p) noexcept {
  const __m128i kBigEndian = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
  __m128i abcd =
      _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0x1b);  // A in lane 3
  const __m128i e0 = _mm_set_epi32(static_cast<int>(h[4]), 0, 0, 0);
  const __m128i abcd0 = abcd;
  __m128i m[4];
  for (int i = 0; i < 4; ++i)
    m[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)), kBigEndian);
  __m128i prev = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e0, m[0]), 0);  // group 0: E is the state's own
  sha_groups(std::make_integer_sequence<int, 19>{}, m, abcd, prev);
  const __m128i e = _mm_sha1nexte_epu32(prev, e0);
  abcd = _mm_add_epi32(abcd, abcd0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm_shuffle_epi32(abcd, 0x1b));
  h[4] = static_cast<uint32_t>(_mm_extract_epi32(e, 3));
}
#undef TM_SHA_TARGET

bool have_sha_ni() noexcept {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return false;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
}
#endif

}  // namespace

Sha1::Sha1() noexcept : h_{0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u}, buf_{} {}

bool Sha1::hardware() noexcept {
#if defined(__x86_64__)
  static const bool yes = have_sha_ni();
  return yes;
#else
  return false;
#endif
}

void Sha1::block(const uint8_t* p) noexcept {
#if defined(__x86_64__)
  if (use_hardware_) return block_sha_ni(h_, p);
#endif
  block_portable(p);
}

void Sha1::block_portable(const uint8_t* p) noexcept {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i)
    w[i] =
        uint32_t{p[4 * i]} << 24 | uint32_t{p[4 * i + 1]} << 16 | uint32_t{p[4 * i + 2]} << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999u;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = t;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
}

void Sha1::update(const void* data, size_t n) noexcept {
  auto* p = static_cast<const uint8_t*>(data);
  total_ += n;
  while (n > 0) {
    size_t take = std::min(n, sizeof buf_ - used_);
    std::memcpy(buf_ + used_, p, take);
    used_ += take;
    p += take;
    n -= take;
    if (used_ == sizeof buf_) {
      block(buf_);
      used_ = 0;
    }
  }
}

std::array<uint8_t, 20> Sha1::finish() noexcept {
  const uint64_t bits = total_ * 8;
  buf_[used_++] = 0x80;
  if (used_ > 56) {  // no room for the length: a block of padding of its own
    std::memset(buf_ + used_, 0, sizeof buf_ - used_);
    block(buf_);
    used_ = 0;
  }
  std::memset(buf_ + used_, 0, 56 - used_);
  for (int i = 0; i < 8; ++i) buf_[56 + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  block(buf_);
  used_ = 0;
  std::array<uint8_t, 20> out;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(h_[i] >> (24 - 8 * j));
  return out;
}

std::array<uint8_t, 20> sha1(const void* data, size_t n) noexcept {
  Sha1 s;
  s.update(data, n);
  return s.finish();
}

std::string base64(const uint8_t* data, size_t n) {
  static constexpr char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  o.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = uint32_t{data[i]} << 16 | uint32_t{data[i + 1]} << 8 | data[i + 2];
    for (int s = 18; s >= 0; s -= 6) o += kAlpha[(v >> s) & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    o += kAlpha[(v >> 18) & 63];
    o += kAlpha[(v >> 12) & 63];
    o += "==";
  } else if (n - i == 2) {
    uint32_t v = uint32_t{data[i]} << 16 | uint32_t{data[i + 1]} << 8;
    o += kAlpha[(v >> 18) & 63];
    o += kAlpha[(v >> 12) & 63];
    o += kAlpha[(v >> 6) & 63];
    o += '=';
  }
  return o;
}

}  // namespace tmach::util
