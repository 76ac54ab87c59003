// PasswordFile: an Authenticator backed by a mosquitto_passwd-format file (docs/authentication.md).
//
//   # comment
//   alice:$7$101$<salt base64>$<hash base64>   PBKDF2-HMAC-SHA512, <iterations> rounds (mosquitto >= 2.0)
//   bob:$6$<salt base64>$<hash base64>         SHA-512(password || salt) (mosquitto <= 1.6)
//
// Immutable once loaded: every const method may be called from any thread at the same time. To reload, load
// a new object and swap the pointer the broker holds; the old one stays valid while callers still use it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"
#include "broker/api/auth.h"

namespace parley::broker::auth {

class PasswordFile final : public Authenticator {
 public:
  // mosquitto_passwd's defaults: 101 PBKDF2 iterations, a 12-byte salt.
  static constexpr int kDefaultIterations = 101;
  static constexpr size_t kSaltBytes = 12;
  // Entries with more iterations are refused at load: each CONNECT pays for them on a loop thread.
  static constexpr int kMaxIterations = 10'000'000;

  // Reads and parses `path`. `unknown_user` is the answer for a user name the file does not list: kDeny when
  // the file is the only authority (the default), kNoOpinion to let a later provider decide.
  // Errors name "path:line" and never quote hash material. Startup / reload thread.
  static Result<std::unique_ptr<PasswordFile>> Load(const std::string& path,
                                                    AuthDecision unknown_user = AuthDecision::kDeny);
  // As Load, from text already in memory; `source_name` is used in error messages. For tests and tools.
  static Result<std::unique_ptr<PasswordFile>> Parse(std::string_view text, std::string_view source_name,
                                                     AuthDecision unknown_user = AuthDecision::kDeny);

  // Returns the part after "username:" of a password-file line for `password` (any bytes): "$7$<iterations>$"
  // + base64(12 random bytes) + "$" + base64(PBKDF2-HMAC-SHA512, 64 bytes). Readable by mosquitto >= 2.0.
  // Aborts if the system random generator fails (no safe fallback exists). Any thread. `iterations` >= 1.
  static std::string HashPassword(std::string_view password, int iterations = kDefaultIterations);

  // kNoOpinion without a user name (anonymous access is the broker's policy, not this file's);
  // `unknown_user` for a name not in the file; kDeny for a listed user without or with a wrong password;
  // kAllow otherwise. Constant-time comparison; an unknown name still costs one PBKDF2 run at the default
  // iteration count, so response time does not readily reveal which names exist. CPU only, no I/O.
  // Any thread.
  AuthDecision Authenticate(const ConnectInfo& info, Grant& grant) const override;

  size_t user_count() const { return users_.size(); }
  bool HasUser(std::string_view username) const { return users_.find(username) != users_.end(); }

 private:
  enum class Scheme : uint8_t { kSha512, kPbkdf2Sha512 };
  static constexpr size_t kHashBytes = 64;  // SHA-512 output; mosquitto accepts no other length

  struct Entry {
    Scheme scheme = Scheme::kPbkdf2Sha512;
    int iterations = 0;  // kPbkdf2Sha512 only
    std::string salt;
    std::array<uint8_t, kHashBytes> hash{};
    int line = 0;  // where it was defined, for duplicate diagnostics
  };

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  explicit PasswordFile(AuthDecision unknown_user) : unknown_user_(unknown_user) {}
  static Status ParseLine(std::string_view line, Entry* entry);
  static bool Verify(const Entry& entry, std::string_view password);

  const AuthDecision unknown_user_;
  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> users_;
};

}  // namespace parley::broker::auth
