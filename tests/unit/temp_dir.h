// A fresh directory under /tmp for one test, removed with everything in it afterwards.
#pragma once

#include <stdlib.h>

#include <filesystem>

struct TempDir {
  std::filesystem::path p;
  TempDir() {
    char tmpl[] = "/tmp/tm-unit-XXXXXX";
    p = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(p); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};
