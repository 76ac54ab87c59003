// Helpers for storage tests: temp dirs, hashing a dir's files, and child processes that run a helper
// test case of this same binary (a fresh exec, not a bare fork, so RocksDB's threads and in-process lock
// table start clean in the child).
#pragma once

#include "tests/unit/temp_dir.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "storage/mem_store.h"
#include "storage/rocks_store.h"
#include "storage/store.h"

namespace parley::storage::testing {

// Keep test output to warnings and errors (stores log an info line per open).
inline const bool kQuietLogs = (spdlog::set_level(spdlog::level::warn), true);

// The shared temporary directory (tests/unit/temp_dir.h), named parley-storage-*.
class TempDir : public parley::testing::TempDir {
 public:
  TempDir() : parley::testing::TempDir("storage") {}
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  REQUIRE(out.good());
}

// name -> FNV-1a hash of the contents (and size), for every file in `dir`.
inline std::map<std::string, std::string> HashDir(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string data = ReadFile(e.path().string());
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
    out[e.path().filename().string()] = std::to_string(data.size()) + ":" + std::to_string(h);
  }
  return out;
}

// Unwraps an open result, failing the test with its status otherwise.
template <typename T>
std::unique_ptr<T> Must(Result<std::unique_ptr<T>> r) {
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(r).value();
}

inline std::optional<std::string> MustGet(Store& s, FamilyId f, std::string_view key,
                                          const Snapshot* snap = nullptr) {
  auto r = s.Get(f, key, snap);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return r.value();
}

// Every (key, value) of a family, in order.
inline std::vector<std::pair<std::string, std::string>> Dump(Store& s, FamilyId f,
                                                             const Snapshot* snap = nullptr) {
  IteratorOptions o;
  o.snapshot = snap;
  auto it = s.NewIterator(f, o);
  std::vector<std::pair<std::string, std::string>> out;
  for (it->SeekToFirst(); it->Valid(); it->Next())
    out.emplace_back(std::string(it->key()), std::string(it->value()));
  REQUIRE(it->status().ok());
  return out;
}

// ---- Child processes
// --------------------------------------------------------------------------------------- A helper test case
// is marked doctest::skip() and reads its argument from PARLEY_STORAGE_HELPER_ARG; it reports to the parent
// by writing lines to the fd in PARLEY_STORAGE_HELPER_FD.
inline constexpr const char* kHelperArgEnv = "PARLEY_STORAGE_HELPER_ARG";
inline constexpr const char* kHelperFdEnv = "PARLEY_STORAGE_HELPER_FD";

inline int HelperFd() {
  const char* fd = std::getenv(kHelperFdEnv);
  return fd ? std::atoi(fd) : -1;
}
inline std::string HelperArg() {
  const char* a = std::getenv(kHelperArgEnv);
  return a ? a : "";
}
inline void HelperSay(const std::string& line) {
  const std::string l = line + "\n";
  [[maybe_unused]] ssize_t n = ::write(HelperFd(), l.data(), l.size());
}

class Child {
 public:
  // Runs the helper test case `test_case` with `arg` in a new process; with `uid` >= 0, as that user.
  Child(const std::string& test_case, const std::string& arg, int uid = -1) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    const std::string filter = "--test-case=" + test_case;
    const std::string env_arg = std::string(kHelperArgEnv) + "=" + arg;
    const std::string env_fd = std::string(kHelperFdEnv) + "=" + std::to_string(fds[1]);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      if (std::strncmp(*e, "PARLEY_STORAGE_HELPER", 21) != 0) env_strings.emplace_back(*e);
    }
    env_strings.push_back(env_arg);
    env_strings.push_back(env_fd);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", a0 = "storage_tests", a1 = "--no-skip", a2 = filter;
    char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(fds[0]);
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      if (uid >= 0 && (::setgid(uid) != 0 || ::setuid(uid) != 0)) ::_exit(42);
      ::execve(exe.c_str(), argv, envp.data());
      ::_exit(43);
    }
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    Kill();
    if (fd_ >= 0) ::close(fd_);
  }

  pid_t pid() const { return pid_; }

  // The next line the child wrote, or nullopt at EOF or after `timeout`.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // SIGKILL and reap. Returns the wait status.
  int Kill() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGKILL);
    return Wait();
  }
  int Wait() {
    if (pid_ <= 0) return status_;
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int status_ = 0;
  std::string buf_;
};

}  // namespace parley::storage::testing
