#include "broker/auth/password_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>

#include "base/check.h"
#include "broker/auth/auth_util.h"

namespace parley::broker::auth {
namespace {

// A password file is a few lines per user; anything this large is a mistake (or /dev/zero).
constexpr size_t kMaxFileBytes = 64u << 20;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Splits "$a$b$c" into the fields after each '$'. Returns the number of fields, or 0 if `s` does not start
// with '$' or has more than `max` fields.
size_t SplitDollar(std::string_view s, std::string_view* fields, size_t max) {
  if (s.empty() || s[0] != '$') return 0;
  s.remove_prefix(1);
  size_t n = 0;
  while (true) {
    if (n == max) return 0;
    const size_t d = s.find('$');
    fields[n++] = s.substr(0, d);
    if (d == std::string_view::npos) return n;
    s.remove_prefix(d + 1);
  }
}

Status LineError(std::string_view source, int line, std::string_view what) {
  std::string msg(source);
  msg += ':';
  msg += std::to_string(line);
  msg += ": ";
  msg += what;
  return Status::Error(std::move(msg));
}

}  // namespace

Result<std::unique_ptr<PasswordFile>> PasswordFile::Load(const std::string& path, AuthDecision unknown_user) {
  Result<std::string> text = ReadSmallFile(path, kMaxFileBytes);
  if (!text.ok()) return text.status();
  return Parse(*text, path, unknown_user);
}

Result<std::unique_ptr<PasswordFile>> PasswordFile::Parse(std::string_view text, std::string_view source_name,
                                                          AuthDecision unknown_user) {
  std::unique_ptr<PasswordFile> file(new PasswordFile(unknown_user));
  Status st = ForEachLine(text, [&](int number, std::string_view raw) -> Status {
    const std::string_view line = TrimBlanks(raw);
    if (line.empty() || line[0] == '#') return Status::Ok();
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return LineError(source_name, number, "expected \"username:hash\"");
    const std::string_view user = TrimBlanks(line.substr(0, colon));
    if (user.empty()) return LineError(source_name, number, "empty user name");
    if (user.find('\0') != std::string_view::npos) return LineError(source_name, number, "NUL in user name");
    Entry entry;
    entry.line = number;
    if (Status parsed = ParseLine(TrimBlanks(line.substr(colon + 1)), &entry); !parsed.ok()) {
      return LineError(source_name, number, parsed.message());
    }
    auto [it, inserted] = file->users_.try_emplace(std::string(user), std::move(entry));
    if (!inserted) {
      return LineError(source_name, number,
                       "duplicate user name (first defined at line " + std::to_string(it->second.line) + ")");
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return file;
}

// Parses the hash field. Messages describe the problem only: the field's content is secret-adjacent.
Status PasswordFile::ParseLine(std::string_view field, Entry* entry) {
  std::string_view f[5];
  const size_t n = SplitDollar(field, f, 5);
  if (n == 0)
    return Status::Error(
        "password is not a \"$6$\" or \"$7$\" hash (plain-text passwords are not supported)");
  std::string_view salt_b64;
  std::string_view hash_b64;
  if (f[0] == "7" && n == 4) {
    entry->scheme = Scheme::kPbkdf2Sha512;
    int iterations = 0;
    const auto [end, ec] = std::from_chars(f[1].data(), f[1].data() + f[1].size(), iterations);
    if (ec != std::errc() || end != f[1].data() + f[1].size() || iterations < 1 ||
        iterations > kMaxIterations) {
      return Status::Error("invalid iteration count (expected 1.." + std::to_string(kMaxIterations) + ")");
    }
    entry->iterations = iterations;
    salt_b64 = f[2];
    hash_b64 = f[3];
  } else if (f[0] == "6" && n == 3) {
    entry->scheme = Scheme::kSha512;
    salt_b64 = f[1];
    hash_b64 = f[2];
  } else if (f[0] == "6" || f[0] == "7") {
    return Status::Error("wrong number of '$' fields for hash type $" + std::string(f[0]) + "$");
  } else {
    return Status::Error("unsupported hash type (expected $6$ or $7$)");
  }
  std::optional<std::string> salt = Base64Decode(salt_b64);
  if (!salt || salt->empty()) return Status::Error("salt is not valid base64");
  std::optional<std::string> hash = Base64Decode(hash_b64);
  if (!hash || hash->size() != kHashBytes) return Status::Error("hash is not 64 bytes of base64");
  entry->salt = std::move(*salt);
  std::copy(hash->begin(), hash->end(), reinterpret_cast<char*>(entry->hash.data()));
  return Status::Ok();
}

bool PasswordFile::Verify(const Entry& entry, std::string_view password) {
  // OpenSSL wants a non-null pointer even for zero bytes.
  const char* pw = password.empty() ? "" : password.data();
  std::array<uint8_t, kHashBytes> got{};
  bool ok = false;
  if (entry.scheme == Scheme::kPbkdf2Sha512) {
    ok = PKCS5_PBKDF2_HMAC(pw, static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(entry.salt.data()),
                           static_cast<int>(entry.salt.size()), entry.iterations, EVP_sha512(),
                           static_cast<int>(got.size()), got.data()) == 1;
  } else {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    unsigned int len = 0;
    ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha512(), nullptr) == 1 &&
         EVP_DigestUpdate(ctx.get(), pw, password.size()) == 1 &&
         EVP_DigestUpdate(ctx.get(), entry.salt.data(), entry.salt.size()) == 1 &&
         EVP_DigestFinal_ex(ctx.get(), got.data(), &len) == 1 && len == got.size();
  }
  if (!ok) {
    PARLEY_BUG("OpenSSL hashing failed during password check");
    return false;
  }
  return CRYPTO_memcmp(got.data(), entry.hash.data(), got.size()) == 0;
}

std::string PasswordFile::HashPassword(std::string_view password, int iterations) {
  PARLEY_CHECK(iterations >= 1);
  unsigned char salt[kSaltBytes];
  PARLEY_CHECK(RAND_bytes(salt, sizeof salt) == 1);
  std::array<uint8_t, kHashBytes> hash{};
  const char* pw = password.empty() ? "" : password.data();
  PARLEY_CHECK(PKCS5_PBKDF2_HMAC(pw, static_cast<int>(password.size()), salt, sizeof salt, iterations,
                                 EVP_sha512(), static_cast<int>(hash.size()), hash.data()) == 1);
  std::string out = "$7$" + std::to_string(iterations) + "$";
  out += Base64Encode(std::string_view(reinterpret_cast<const char*>(salt), sizeof salt));
  out += '$';
  out += Base64Encode(std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
  return out;
}

AuthDecision PasswordFile::Authenticate(const ConnectInfo& info, Grant&) const {
  if (!info.username) return AuthDecision::kNoOpinion;
  const auto it = users_.find(*info.username);
  if (it == users_.end()) {
    // Spend what a real check costs, so response time does not tell which user names exist.
    static const Entry kDummy = [] {
      Entry e;
      e.iterations = kDefaultIterations;
      e.salt = "parley-dummy";
      return e;
    }();
    (void)Verify(kDummy, info.password.value_or(std::string_view()));
    return unknown_user_;
  }
  if (!info.password) return AuthDecision::kDeny;
  return Verify(it->second, *info.password) ? AuthDecision::kAllow : AuthDecision::kDeny;
}

}  // namespace parley::broker::auth
