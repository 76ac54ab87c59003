#include "im/files_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base/check.h"
#include "storage/format.h"

namespace parley::im {

namespace {

constexpr size_t kMacSize = 32;
constexpr size_t kMaxTokenBytes = 4096;  // a longer text is not one of ours: refused before decoding

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Mac(std::string_view secret, std::string_view payload) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const unsigned char* ok = HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                                 reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), md, &len);
  PARLEY_CHECK(ok != nullptr && len == kMacSize);
  return std::string(reinterpret_cast<const char*>(md), len);
}

// The base64 alphabets: `url` selects RFC 4648 section 5 ('-', '_') over section 4 ('+', '/').
int B64Value(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

// Decodes unpadded base64 of either alphabet. Strict: a length of 1 mod 4 or non-zero trailing bits fail, so
// every byte string has exactly one accepted text.
bool B64Decode(std::string_view text, bool url, std::string* out) {
  if (text.size() % 4 == 1) return false;
  out->clear();
  out->reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = B64Value(c, url);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
}

}  // namespace

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  PARLEY_CHECK(ctx_->md != nullptr);
  Reset();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Reset() { PARLEY_CHECK(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1); }

void Sha256::CopyFrom(const Sha256& other) {
  if (this != &other) PARLEY_CHECK(EVP_MD_CTX_copy_ex(ctx_->md, other.ctx_->md) == 1);
}

void Sha256::Update(std::span<const uint8_t> bytes) {
  if (!bytes.empty()) PARLEY_CHECK(EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size()) == 1);
}

std::string Sha256::Digest() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  PARLEY_CHECK(copy != nullptr && EVP_MD_CTX_copy_ex(copy, ctx_->md) == 1);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  PARLEY_CHECK(EVP_DigestFinal_ex(copy, md, &len) == 1);
  EVP_MD_CTX_free(copy);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string HexEncode(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (char ch : bytes) {
    const auto c = static_cast<uint8_t>(ch);
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  out->reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = HexValue(hex[i]);
    const int lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

bool IsSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string Base64UrlEncode(std::string_view bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : bytes) {
    acc = (acc << 8) | static_cast<uint8_t>(ch);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

bool Base64UrlDecode(std::string_view text, std::string* out) { return B64Decode(text, true, out); }

bool Base64Decode(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  return B64Decode(text.substr(0, text.size() - pad), false, out);
}

std::string SignFileToken(std::string_view secret, const FileToken& t) {
  std::string payload;
  storage::PutU8(&payload, t.kind);
  storage::PutU64(&payload, static_cast<uint64_t>(t.expires_ms < 0 ? 0 : t.expires_ms));
  storage::PutLengthPrefixed(&payload, t.user);
  if (t.kind == FileToken::kUpload) storage::PutLengthPrefixed(&payload, t.file_id);
  return Base64UrlEncode(payload + Mac(secret, payload));
}

TokenCheck VerifyFileToken(std::string_view secret, std::string_view text, int64_t now_ms, FileToken* out) {
  std::string raw;
  if (text.empty() || text.size() > kMaxTokenBytes || !Base64UrlDecode(text, &raw) || raw.size() <= kMacSize)
    return TokenCheck::kInvalid;
  const std::string_view payload = std::string_view(raw).substr(0, raw.size() - kMacSize);
  const std::string mac = Mac(secret, payload);
  if (CRYPTO_memcmp(mac.data(), raw.data() + payload.size(), kMacSize) != 0) return TokenCheck::kInvalid;

  // Signed by us: the payload is well-formed unless the format changed. Decode it defensively all the same.
  std::string_view in = payload;
  uint8_t kind = 0;
  uint64_t expires = 0;
  std::string_view user, file_id;
  if (!storage::GetU8(&in, &kind) || !storage::GetU64(&in, &expires) || !storage::GetLengthPrefixed(&in, &user))
    return TokenCheck::kInvalid;
  if (kind == FileToken::kUpload) {
    if (!storage::GetLengthPrefixed(&in, &file_id)) return TokenCheck::kInvalid;
  } else if (kind != FileToken::kAccess) {
    return TokenCheck::kInvalid;
  }
  if (!in.empty() || expires > static_cast<uint64_t>(INT64_MAX)) return TokenCheck::kInvalid;
  out->kind = static_cast<FileToken::Kind>(kind);
  out->expires_ms = static_cast<int64_t>(expires);
  out->user = std::string(user);
  out->file_id = std::string(file_id);
  return now_ms >= out->expires_ms ? TokenCheck::kExpired : TokenCheck::kOk;
}

bool RandomBytes(std::span<uint8_t> out) { return RAND_bytes(out.data(), static_cast<int>(out.size())) == 1; }

}  // namespace parley::im
