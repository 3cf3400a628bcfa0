// toml++'s implementation, compiled once here; every other file includes toml++ with
// TOML_HEADER_ONLY=0 (set by CMakeLists.txt) and sees declarations only.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
