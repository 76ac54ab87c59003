// A fresh directory under $TMPDIR (default /tmp) for one test, removed with its contents at scope exit. Shared
// by every unit-test binary (header only; needs doctest and the standard library, nothing of ours).
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace parley::testing {

class TempDir {
 public:
  // `tag` names the test area in the directory name (e.g. "storage" -> /tmp/parley-storage-XXXXXX).
  explicit TempDir(std::string_view tag = "test") {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/parley-" + std::string(tag) + "-XXXXXX";
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` (which may contain '/') inside the directory.
  std::string Sub(std::string_view name) const { return path_ + "/" + std::string(name); }
  // Writes `contents` to Sub(name), creating parent directories; returns the path.
  std::string Write(std::string_view name, std::string_view contents) const {
    const std::string p = Sub(name);
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream out(p, std::ios::binary);
    out << contents;
    REQUIRE(out.good());
    return p;
  }

 private:
  std::string path_;
};

}  // namespace parley::testing
