#include "im/ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <random>

#include "storage/format.h"

namespace parley::im {

namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

// 32 hex digits (128 bits) of sha256(tag, parts...): length-prefixed parts, so ("ab","c") != ("a","bc").
std::string HashId(std::string_view tag, std::string_view a, std::string_view b) {
  std::string in = storage::KeyBuilder().Str(tag).Str(a).Str(b).Release();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), md, &len, EVP_sha256(), nullptr);
  return Hex(md, 16);
}

}  // namespace

std::string DirectConvId(std::string_view a, std::string_view b) {
  if (b < a) std::swap(a, b);
  return "d_" + HashId("direct", a, b);
}

std::string GroupIdFor(std::string_view creator, std::string_view client_msg_id) {
  return "g_" + HashId("group", creator, client_msg_id);
}

std::string RandomGroupId() {
  unsigned char r[16];
  if (RAND_bytes(r, sizeof(r)) != 1) {
    std::random_device rd;  // OpenSSL's generator failed (never seen): fall back to the OS's
    for (unsigned char& c : r) c = static_cast<unsigned char>(rd());
  }
  return "g_" + Hex(r, sizeof(r));
}

}  // namespace parley::im
