// The link types the decoder fuzz target feeds, chosen by an input's first byte. One place,
// so the fuzz target and the seed extractor (extract_seeds.py reads this file) agree.
#pragma once

#include <cstdint>

namespace tmach::fuzz {

// Every case of packet::decode()'s switch, plus one it does not know (147, a user DLT)
// so the "stored, never refused" path is exercised too. New ones go at the end: a seed names
// its link type by index.
inline constexpr uint32_t kLinkTypes[] = {
    1, 0, 108, 9, 50, 101, 12, 14, 228, 229, 104, 113, 276, 239, 105, 127, 242, 147, 10,
};
inline constexpr unsigned kLinkTypeCount = sizeof(kLinkTypes) / sizeof(kLinkTypes[0]);

}  // namespace tmach::fuzz
