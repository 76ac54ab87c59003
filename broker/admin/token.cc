#include "broker/admin/token.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace parley::admin {

Result<std::string> LoadOrCreateToken(const std::string& path, bool create) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT || !create) return Status::Error("admin token file " + path + ": " + std::strerror(errno));
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return Status::Error("admin token: the random generator failed");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string token;
    for (unsigned char b : raw) {
      token += kHex[b >> 4];
      token += kHex[b & 15];
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Status::Error("cannot create the admin token file " + path + ": " + std::strerror(errno));
    const std::string line = token + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      return Status::Error("cannot write the admin token file " + path);
    }
    return token;
  }
  if ((st.st_mode & 077) != 0)
    return Status::Error("admin token file " + path + " may be read by other users (chmod 600 it)");
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\r')) token.pop_back();
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.erase(token.begin());
  if (token.size() < 16) return Status::Error("admin token file " + path + ": the token must be at least 16 characters");
  return token;
}

}  // namespace parley::admin
