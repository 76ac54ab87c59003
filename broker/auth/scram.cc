#include "broker/auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <unordered_map>
#include <vector>

#include "base/check.h"
#include "broker/auth/auth_util.h"

namespace parley::broker::auth {

// ------------------------------------------------------------------ RFC 5802 section 3 functions

namespace scram {
namespace {

const unsigned char* Bytes(std::string_view s) {
  // OpenSSL wants non-null pointers even for zero bytes.
  return reinterpret_cast<const unsigned char*>(s.empty() ? "" : s.data());
}

Key Hmac(std::string_view key, std::string_view data) {
  Key out{};
  unsigned int len = 0;
  PARLEY_CHECK(HMAC(EVP_sha256(), Bytes(key), static_cast<int>(key.size()), Bytes(data), data.size(),
                    out.data(), &len) != nullptr &&
               len == kKeyBytes);
  return out;
}

Key Hmac(const Key& key, std::string_view data) {
  return Hmac(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), data);
}

Key Hash(const Key& data) {
  Key out{};
  unsigned int len = 0;
  PARLEY_CHECK(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1 &&
               len == kKeyBytes);
  return out;
}

}  // namespace

Secrets DeriveSecrets(std::string_view password, std::string_view salt, int iterations) {
  PARLEY_CHECK(iterations >= 1);
  Secrets s;
  PARLEY_CHECK(PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(Bytes(password)),
                                 static_cast<int>(password.size()), Bytes(salt),
                                 static_cast<int>(salt.size()), iterations, EVP_sha256(),
                                 static_cast<int>(kKeyBytes), s.salted_password.data()) == 1);
  s.client_key = Hmac(s.salted_password, "Client Key");
  s.stored_key = Hash(s.client_key);
  s.server_key = Hmac(s.salted_password, "Server Key");
  return s;
}

Key ClientProof(const Secrets& secrets, std::string_view auth_message) {
  Key proof = Hmac(secrets.stored_key, auth_message);
  for (size_t i = 0; i < kKeyBytes; ++i) proof[i] ^= secrets.client_key[i];
  return proof;
}

Key ServerSignature(const Key& server_key, std::string_view auth_message) {
  return Hmac(server_key, auth_message);
}

bool VerifyClientProof(const Key& stored_key, std::string_view auth_message, std::string_view proof) {
  if (proof.size() != kKeyBytes) return false;
  Key client_key = Hmac(stored_key, auth_message);  // ClientSignature, then ClientKey in place
  for (size_t i = 0; i < kKeyBytes; ++i) client_key[i] ^= static_cast<uint8_t>(proof[i]);
  const Key candidate = Hash(client_key);
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return CRYPTO_memcmp(candidate.data(), stored_key.data(), kKeyBytes) == 0;
}

}  // namespace scram

// ------------------------------------------------------------------ verifiers and the credential file

namespace {

constexpr std::string_view kVerifierPrefix = "SCRAM-SHA-256$";
constexpr size_t kMaxFileBytes = 64u << 20;
constexpr size_t kMaxSaltBytes = 256;
constexpr size_t kServerNonceBytes = 18;  // 24 base64 characters, as PostgreSQL and GNU SASL

std::string_view AsView(const scram::Key& k) {
  return std::string_view(reinterpret_cast<const char*>(k.data()), k.size());
}

Status LineError(std::string_view source, int line, std::string_view what) {
  std::string msg(source);
  msg += ':';
  msg += std::to_string(line);
  msg += ": ";
  msg += what;
  return Status::Error(std::move(msg));
}

// Printable ASCII, the user names SASLprep maps to themselves (see scram.h).
bool IsValidUsername(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

// RFC 5802 "printable": %x21-2B / %x2D-7E (visible ASCII except ',').
bool IsPrintable(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7E && c != ','; });
}

// saslname: "=2C" stands for ',' and "=3D" for '='; any other '=' is malformed.
bool UnescapeSaslName(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out->push_back(in[i]);
      continue;
    }
    const std::string_view esc = in.substr(i + 1, 2);
    if (esc == "2C") {
      out->push_back(',');
    } else if (esc == "3D") {
      out->push_back('=');
    } else {
      return false;
    }
    i += 2;
  }
  return IsValidUsername(*out);
}

std::vector<std::string_view> SplitCommas(std::string_view s) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t c = s.find(',');
    parts.push_back(s.substr(0, c));
    if (c == std::string_view::npos) return parts;
    s.remove_prefix(c + 1);
  }
}

// attr-val = ALPHA "=" value, value non-empty (RFC 5802 section 7, "extensions").
bool IsExtension(std::string_view a) {
  const char c = a.empty() ? '\0' : a[0];
  return a.size() >= 3 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) && a[1] == '=';
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string VerifierText(const scram::Secrets& s, std::string_view salt, int iterations) {
  std::string out(kVerifierPrefix);
  out += std::to_string(iterations);
  out += ':';
  out += Base64Encode(salt);
  out += '$';
  out += Base64Encode(AsView(s.stored_key));
  out += ':';
  out += Base64Encode(AsView(s.server_key));
  return out;
}

// Key for the fake salts and keys of unknown users: random, once per process (RFC 5802 section 9 asks that a
// name always gets the same salt; a restart changes it, which an observer who watches one name across a
// restart can notice).
const scram::Key& ProcessKey() {
  static const scram::Key key = [] {
    scram::Key k{};
    PARLEY_CHECK(RAND_bytes(k.data(), static_cast<int>(k.size())) == 1);
    return k;
  }();
  return key;
}

// `n` bytes derived from the process key, `label` and `name` (HMAC in counter mode).
std::string Derive(std::string_view label, std::string_view name, size_t n) {
  std::string out;
  for (uint8_t block = 0; out.size() < n; ++block) {
    std::string input(label);
    input += static_cast<char>(block);
    input += name;
    const scram::Key k = scram::Hmac(ProcessKey(), input);
    out.append(AsView(k).substr(0, std::min(scram::kKeyBytes, n - out.size())));
  }
  return out;
}

}  // namespace

std::string MakeScramVerifier(std::string_view password, int iterations) {
  unsigned char salt[ScramAuthenticator::kDefaultSaltBytes];
  PARLEY_CHECK(RAND_bytes(salt, sizeof salt) == 1);
  return MakeScramVerifier(password, std::string_view(reinterpret_cast<const char*>(salt), sizeof salt),
                           iterations);
}

std::string MakeScramVerifier(std::string_view password, std::string_view salt, int iterations) {
  // A programming error in a tool, not client input: the result would be refused at load.
  PARLEY_CHECK(iterations >= ScramAuthenticator::kMinIterations &&
               iterations <= ScramAuthenticator::kMaxIterations);
  PARLEY_CHECK(!salt.empty() && salt.size() <= kMaxSaltBytes);
  scram::Secrets s = scram::DeriveSecrets(password, salt, iterations);
  std::string out = VerifierText(s, salt, iterations);
  OPENSSL_cleanse(&s, sizeof s);
  return out;
}

Result<ScramVerifier> ParseScramVerifier(std::string_view text) {
  if (!StartsWith(text, kVerifierPrefix)) {
    return Status::Error(
        "not a SCRAM-SHA-256 verifier (expected \"SCRAM-SHA-256$<iterations>:<salt>$"
        "<StoredKey>:<ServerKey>\"; plain-text passwords are not supported)");
  }
  text.remove_prefix(kVerifierPrefix.size());
  const size_t dollar = text.find('$');
  if (dollar == std::string_view::npos || text.find('$', dollar + 1) != std::string_view::npos) {
    return Status::Error("expected exactly one '$' after the iteration count and salt");
  }
  const std::string_view params = text.substr(0, dollar);
  const std::string_view keys = text.substr(dollar + 1);
  const size_t c1 = params.find(':');
  const size_t c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos ||
      keys.find(':', c2 + 1) != std::string_view::npos) {
    return Status::Error("expected \"<iterations>:<salt>\" and \"<StoredKey>:<ServerKey>\"");
  }
  ScramVerifier v;
  const std::string_view iter = params.substr(0, c1);
  const auto [end, ec] = std::from_chars(iter.data(), iter.data() + iter.size(), v.iterations);
  if (ec != std::errc() || end != iter.data() + iter.size() ||
      v.iterations < ScramAuthenticator::kMinIterations ||
      v.iterations > ScramAuthenticator::kMaxIterations) {
    return Status::Error("invalid iteration count (expected " +
                         std::to_string(ScramAuthenticator::kMinIterations) + ".." +
                         std::to_string(ScramAuthenticator::kMaxIterations) + ")");
  }
  std::optional<std::string> salt = Base64Decode(params.substr(c1 + 1));
  if (!salt || salt->empty() || salt->size() > kMaxSaltBytes) {
    return Status::Error("salt is not 1.." + std::to_string(kMaxSaltBytes) + " bytes of base64");
  }
  v.salt = std::move(*salt);
  std::optional<std::string> stored = Base64Decode(keys.substr(0, c2));
  std::optional<std::string> server = Base64Decode(keys.substr(c2 + 1));
  if (!stored || stored->size() != scram::kKeyBytes || !server || server->size() != scram::kKeyBytes) {
    if (stored) OPENSSL_cleanse(stored->data(), stored->size());
    if (server) OPENSSL_cleanse(server->data(), server->size());
    return Status::Error("StoredKey and ServerKey must each be 32 bytes of base64");
  }
  std::copy(stored->begin(), stored->end(), reinterpret_cast<char*>(v.stored_key.data()));
  std::copy(server->begin(), server->end(), reinterpret_cast<char*>(v.server_key.data()));
  OPENSSL_cleanse(stored->data(), stored->size());
  OPENSSL_cleanse(server->data(), server->size());
  return v;
}

struct ScramAuthenticator::Table {
  struct Entry {
    ScramVerifier verifier;
    int line = 0;  // for duplicate diagnostics
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  ~Table() {
    for (auto& [name, e] : users) {
      OPENSSL_cleanse(e.verifier.stored_key.data(), e.verifier.stored_key.size());
      OPENSSL_cleanse(e.verifier.server_key.data(), e.verifier.server_key.size());
    }
  }

  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> users;
  // What an unknown user is told: the commonest iteration count and salt length in the file.
  int fake_iterations = kMinIterations;
  size_t fake_salt_bytes = kDefaultSaltBytes;
};

Result<std::unique_ptr<ScramAuthenticator>> ScramAuthenticator::Load(const std::string& path) {
  Result<std::string> text = ReadSmallFile(path, kMaxFileBytes);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

Result<std::unique_ptr<ScramAuthenticator>> ScramAuthenticator::Parse(std::string_view text,
                                                                      std::string_view source_name) {
  auto table = std::make_shared<Table>();
  Status st = ForEachLine(text, [&](int number, std::string_view raw) -> Status {
    const std::string_view line = TrimBlanks(raw);
    if (line.empty() || line[0] == '#') return Status::Ok();
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      return LineError(source_name, number, "expected \"username:verifier\"");
    const std::string_view user = TrimBlanks(line.substr(0, colon));
    if (!IsValidUsername(user)) {
      return LineError(source_name, number, "user name must be non-empty printable ASCII (see docs)");
    }
    Result<ScramVerifier> v = ParseScramVerifier(TrimBlanks(line.substr(colon + 1)));
    if (!v.ok()) return LineError(source_name, number, v.status().message());
    auto [it, inserted] = table->users.try_emplace(std::string(user), Table::Entry{std::move(*v), number});
    if (!inserted) {
      return LineError(source_name, number,
                       "duplicate user name (first defined at line " + std::to_string(it->second.line) + ")");
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;

  std::map<int, size_t> iteration_counts;
  std::map<size_t, size_t> salt_lengths;
  for (const auto& [name, e] : table->users) {
    ++iteration_counts[e.verifier.iterations];
    ++salt_lengths[e.verifier.salt.size()];
  }
  auto commonest = [](const auto& counts, auto fallback) {
    auto best = fallback;
    size_t best_n = 0;
    for (const auto& [value, n] : counts) {
      if (n >= best_n) best = value, best_n = n;
    }
    return best;
  };
  table->fake_iterations = commonest(iteration_counts, kMinIterations);
  table->fake_salt_bytes = commonest(salt_lengths, kDefaultSaltBytes);
  return std::unique_ptr<ScramAuthenticator>(new ScramAuthenticator(std::move(table)));
}

ScramAuthenticator::~ScramAuthenticator() = default;

size_t ScramAuthenticator::user_count() const {
  return table_->users.size();
}

bool ScramAuthenticator::HasUser(std::string_view username) const {
  return table_->users.find(username) != table_->users.end();
}

// ------------------------------------------------------------------ the exchange

namespace {

class ScramExchange final : public AuthExchange {
 public:
  ScramExchange(std::shared_ptr<const ScramAuthenticator::Table> table, std::string server_nonce)
      : table_(std::move(table)), server_nonce_(std::move(server_nonce)) {}

  ~ScramExchange() override {
    OPENSSL_cleanse(stored_key_.data(), stored_key_.size());
    OPENSSL_cleanse(server_key_.data(), server_key_.size());
  }

  Step Next(std::string_view data, std::string* reply) override {
    reply->clear();
    const State state = state_;
    state_ = State::kDone;  // any failure below ends the exchange
    if (data.empty() || data.size() > ScramAuthenticator::kMaxMessageBytes ||
        data.find('\0') != std::string_view::npos) {
      return Step::kFailure;
    }
    switch (state) {
      case State::kFirst:
        return First(data, reply);
      case State::kFinal:
        return Final(data, reply);
      case State::kDone:
        break;
    }
    return Step::kFailure;
  }

  const std::string& username() const override { return authenticated_; }

 private:
  enum class State : uint8_t { kFirst, kFinal, kDone };

  // client-first-message = gs2-header client-first-message-bare (RFC 5802 section 7).
  Step First(std::string_view msg, std::string* reply) {
    // gs2-cbind-flag: "n" (client does not support channel binding) or "y" (it does, but thinks we do not:
    // true, we offer no -PLUS mechanism). "p=<name>" asks for a binding we cannot honour: fail.
    if (msg.size() < 2 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') return Step::kFailure;
    const size_t authz_end = msg.find(',', 2);
    if (authz_end == std::string_view::npos) return Step::kFailure;
    const std::string_view authzid = msg.substr(2, authz_end - 2);
    gs2_header_ = std::string(msg.substr(0, authz_end + 1));
    client_first_bare_ = std::string(msg.substr(authz_end + 1));

    const std::vector<std::string_view> attrs = SplitCommas(client_first_bare_);
    // A leading "m=" is a mandatory extension we do not know (RFC 5802 section 5.1): fail.
    if (attrs.size() < 2 || !StartsWith(attrs[0], "n=") || !StartsWith(attrs[1], "r=")) return Step::kFailure;
    if (!UnescapeSaslName(attrs[0].substr(2), &user_)) return Step::kFailure;
    const std::string_view client_nonce = attrs[1].substr(2);
    if (!IsPrintable(client_nonce)) return Step::kFailure;
    for (size_t i = 2; i < attrs.size(); ++i) {
      if (!IsExtension(attrs[i])) return Step::kFailure;  // optional extensions are ignored
    }
    if (!authzid.empty()) {
      std::string name;
      if (!StartsWith(authzid, "a=") || !UnescapeSaslName(authzid.substr(2), &name) || name != user_) {
        return Step::kFailure;  // acting as another identity is not supported
      }
    }

    // RFC 5802 section 9: answer an unknown user as a real one, with a salt that is the same on every
    // attempt, and fail at the proof; its keys make the final step cost what a real one does. The fake
    // values are derived for every user, known or not, so this step takes the same time either way.
    int iterations = table_->fake_iterations;
    std::string salt = Derive("salt", user_, table_->fake_salt_bytes);
    const std::string fake_stored = Derive("stored", user_, scram::kKeyBytes);
    const std::string fake_server = Derive("server", user_, scram::kKeyBytes);
    std::copy(fake_stored.begin(), fake_stored.end(), reinterpret_cast<char*>(stored_key_.data()));
    std::copy(fake_server.begin(), fake_server.end(), reinterpret_cast<char*>(server_key_.data()));
    const auto it = table_->users.find(user_);
    known_ = it != table_->users.end();
    if (known_) {
      const ScramVerifier& v = it->second.verifier;
      iterations = v.iterations;
      salt = v.salt;
      stored_key_ = v.stored_key;
      server_key_ = v.server_key;
    }
    nonce_ = std::string(client_nonce) + server_nonce_;
    server_first_ = "r=" + nonce_ + ",s=" + Base64Encode(salt) + ",i=" + std::to_string(iterations);
    *reply = server_first_;
    state_ = State::kFinal;
    return Step::kContinue;
  }

  // client-final-message = "c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64.
  Step Final(std::string_view msg, std::string* reply) {
    const std::vector<std::string_view> attrs = SplitCommas(msg);
    if (attrs.size() < 3 || !StartsWith(attrs[0], "c=") || !StartsWith(attrs[1], "r=") ||
        !StartsWith(attrs.back(), "p=")) {
      *reply = "e=other-error";
      return Step::kFailure;
    }
    for (size_t i = 2; i + 1 < attrs.size(); ++i) {
      if (!IsExtension(attrs[i])) {
        *reply = "e=other-error";
        return Step::kFailure;
      }
    }
    // Without channel binding, c= carries the gs2 header alone ("biws" for "n,,").
    const std::optional<std::string> cbind = Base64Decode(attrs[0].substr(2));
    if (!cbind || *cbind != gs2_header_) {
      *reply = "e=channel-bindings-dont-match";
      return Step::kFailure;
    }
    if (attrs[1].substr(2) != nonce_) {
      *reply = "e=other-error";
      return Step::kFailure;
    }
    const std::optional<std::string> proof = Base64Decode(attrs.back().substr(2));
    if (!proof || proof->size() != scram::kKeyBytes) {
      *reply = "e=invalid-proof";
      return Step::kFailure;
    }
    const std::string_view without_proof = msg.substr(0, msg.size() - attrs.back().size() - 1);
    std::string auth_message;
    auth_message.reserve(client_first_bare_.size() + server_first_.size() + without_proof.size() + 2);
    auth_message += client_first_bare_;
    auth_message += ',';
    auth_message += server_first_;
    auth_message += ',';
    auth_message += without_proof;
    // Run the check for unknown users too (against their fake key), so both fail in the same time.
    const bool proof_ok = scram::VerifyClientProof(stored_key_, auth_message, *proof);
    if (!proof_ok || !known_) {
      *reply = "e=invalid-proof";
      return Step::kFailure;
    }
    *reply = "v=" + Base64Encode(AsView(scram::ServerSignature(server_key_, auth_message)));
    authenticated_ = user_;
    return Step::kSuccess;
  }

  const std::shared_ptr<const ScramAuthenticator::Table> table_;
  const std::string server_nonce_;
  State state_ = State::kFirst;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  std::string user_;
  bool known_ = false;
  scram::Key stored_key_{};
  scram::Key server_key_{};
  std::string authenticated_;  // set on kSuccess only
};

}  // namespace

std::unique_ptr<AuthExchange> ScramAuthenticator::Start() const {
  unsigned char raw[kServerNonceBytes];
  PARLEY_CHECK(RAND_bytes(raw, sizeof raw) == 1);
  return std::make_unique<ScramExchange>(
      table_, Base64Encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw)));
}

std::unique_ptr<AuthExchange> ScramAuthenticator::StartWithServerNonceForTesting(
    std::string server_nonce) const {
  return std::make_unique<ScramExchange>(table_, std::move(server_nonce));
}

}  // namespace parley::broker::auth
