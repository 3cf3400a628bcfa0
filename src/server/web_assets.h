// The web page's files (src/server/web/, and the charting library taken from npm at build
// time), embedded into the program by the build (cmake/embed_web.cmake generates the table):
// tm-daemon reads no file to serve them.
#pragma once

#include <cstddef>
#include <string_view>

namespace tmach::server {

struct WebAsset {
  const char* name;  // "index.html", "app.js", "uPlot.iife.min.js"
  const char* type;  // Content-Type
  const unsigned char* data;
  size_t size;
  const char* etag;  // "\"<sha256 prefix>\""
};

// The file of that name, or null.
const WebAsset* find_web_asset(std::string_view name);

}  // namespace tmach::server
