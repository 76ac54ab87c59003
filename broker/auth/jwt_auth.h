// JwtAuthenticator: a JSON Web Token (RFC 7519, signed as a JWS, RFC 7515) sent as the MQTT password.
// Formats, options and the decision table: docs/authentication.md ("JWT").
//
// One authenticator verifies one algorithm with one key: HS256 (a shared secret), RS256 (an RSA public key,
// >= 2048 bits) or ES256 (a P-256 public key). The token's header must name exactly that algorithm, so a
// token cannot choose how it is checked ("alg": "none", or an RS256 public key misused as an HS256 secret).
// Signatures are verified with OpenSSL's EVP interface on a key parsed once at Load, and claims (exp, nbf,
// iss, aud, the user name and ACL claims) are checked on the payload with nlohmann_json. libjwt 1.10 was
// the first choice and is not used: jwt_auth.cc says why (mainly: it re-parses the PEM key on every call,
// which made each check 7-15 times slower).
//
// Immutable after Load: const methods may be called from any thread at the same time. To change keys, load
// a new object and swap the pointer the broker holds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "broker/api/auth.h"

namespace parley::broker::auth {

struct JwtOptions {
  // "HS256", "RS256" or "ES256" (case-sensitive, as in the token header).
  std::string algorithm;

  // HS256 only: the shared secret, as bytes, of at least kMinSecretBytes (RFC 7518 section 3.2). Give it
  // inline (`secret`) or as a file (`secret_file`, read by Load; one trailing "\n" or "\r\n" is removed, so
  // `echo ... > file` works). Exactly one of the two.
  std::string secret;
  std::string secret_file;

  // RS256 / ES256 only: the issuer's public key, PEM "BEGIN PUBLIC KEY" (SubjectPublicKeyInfo), inline
  // (`public_key_pem`) or as a file (`public_key_file`). Exactly one of the two. A private key or a
  // certificate is refused: extract the public key with `openssl pkey -in key.pem -pubout`.
  std::string public_key_pem;
  std::string public_key_file;

  // The claim holding the MQTT user name (a non-empty string).
  std::string username_claim = "sub";
  // "" = tokens carry no ACL. Otherwise the claim that every token must carry, holding
  // {"pub": [topic filters], "sub": [topic filters]} (either list may be absent = nothing).
  std::string acl_claim;
  // "" = not checked. Otherwise `iss` must equal it, and `aud` must equal it or be an array containing it.
  std::string issuer;
  std::string audience;

  // Clock skew allowed when checking `exp` and `nbf`, in seconds (0..kMaxLeewaySeconds). 30 s: issuers and
  // brokers run NTP, so real skew is well under a second; 30 s absorbs a badly synced host while keeping an
  // expired token usable for at most half a minute. (PyJWT and jsonwebtoken default to 0; Spring to 60.)
  int64_t leeway_seconds = 30;
  // Refuse tokens without `exp`. Keep it on: a token without one is valid forever, and cannot be revoked.
  bool require_exp = true;
};

class JwtAuthenticator final : public Authenticator {
 public:
  enum class Algorithm : uint8_t { kHS256, kRS256, kES256 };

  // Longer passwords that look like a JWT are refused before any parsing or signature check (real tokens
  // are well under 2 KiB): it bounds the work and memory a client can make one CONNECT cost.
  static constexpr size_t kMaxTokenBytes = 8192;
  static constexpr size_t kMinSecretBytes = 32;
  static constexpr int64_t kMaxLeewaySeconds = 3600;
  // An ACL claim may hold at most this many filters in each list.
  static constexpr size_t kMaxAclFilters = 256;

  // Checks the options, reads the secret or key file if one is named, and validates the key (RSA >= 2048
  // bits, EC on P-256). Errors name the option or file and never quote the secret or key. `clock` supplies
  // the time for exp / nbf and must outlive the authenticator. Startup / reload thread.
  static Result<std::unique_ptr<JwtAuthenticator>> Load(const JwtOptions& options, const Clock& clock);

  // The decision (docs/authentication.md has it as a table):
  //   kNoOpinion  no password, or a password that is not JWT-shaped: not three dot-separated base64url
  //               segments whose first decodes to a JSON object ("{..."). Left to the next provider.
  //   kDeny       JWT-shaped but longer than kMaxTokenBytes; a header that is not JSON, names another
  //               algorithm (including "none" and any other case spelling) or has "crit"; a segment that
  //               is not canonical base64url; a bad signature; a payload that is not a JSON object; `exp`
  //               missing (when required), not a number, or past (now >= exp + leeway); `nbf` not a number or
  //               in the future (now < nbf - leeway); `iss` or `aud` not as configured; the user name claim
  //               missing, not a non-empty string, or holding NUL; a CONNECT user name that differs from the
  //               claim; with `acl_claim` set, the claim missing or malformed (fail closed).
  //   kAllow      otherwise. `grant.username` = the claim, `grant.expires_at_ms` = exp + leeway in Unix ms
  //               (the moment this check would start refusing the token; unset without `exp`), and
  //               `grant.acl` = the token's ACL (a TokenAcl) when `acl_claim` is set.
  // CPU only, no I/O, no logging: one signature check plus two small JSON parses (measured on a loaded
  // 2-core machine: ~15 us HS256, ~70 us RS256, ~200 us ES256; RSA verifies faster than ECDSA). Any thread.
  AuthDecision Authenticate(const ConnectInfo& info, Grant& grant) const override;

  // True if `password` has the shape described under kNoOpinion above. Any thread.
  static bool LooksLikeJwt(std::string_view password);

  Algorithm algorithm() const { return alg_; }

  ~JwtAuthenticator() override;  // wipes the secret

  struct PublicKey;  // an OpenSSL key, kept out of this header (jwt_auth.cc)

 private:
  JwtAuthenticator(const JwtOptions& options, const Clock& clock, Algorithm alg, std::string secret,
                   std::unique_ptr<const PublicKey> public_key);
  bool VerifySignature(std::string_view signing_input, std::string_view signature_b64url) const;

  const Clock& clock_;
  const Algorithm alg_;
  std::string secret_;                                 // HS256 only
  const std::unique_ptr<const PublicKey> public_key_;  // RS256 / ES256 only; read-only, shared by all threads
  const std::string username_claim_;
  const std::string acl_claim_;
  const std::string issuer_;
  const std::string audience_;
  const int64_t leeway_ms_;
  const bool require_exp_;
};

// The permissions carried by a token's ACL claim, handed to the core as Grant::acl (checked in addition to
// the broker's own ACL). kWrite: `topic` (a topic name) must match a `pub` filter. kRead: the topic name or
// SUBSCRIBE filter must be covered by a `sub` filter (FilterCovers: "a/#" covers "a/+/c"; "a/+" does not
// cover "a/#"). Everything else is refused, including wildcards in a kWrite topic and empty topics. The
// identity is not consulted: the token already names its holder. Immutable; any thread.
class TokenAcl final : public Authorizer {
 public:
  TokenAcl(std::vector<std::string> pub, std::vector<std::string> sub)
      : pub_(std::move(pub)), sub_(std::move(sub)) {}

  bool Allowed(const ClientIdentity& who, std::string_view topic, Access access) const override;

  const std::vector<std::string>& pub_filters() const { return pub_; }
  const std::vector<std::string>& sub_filters() const { return sub_; }

 private:
  const std::vector<std::string> pub_;
  const std::vector<std::string> sub_;
};

}  // namespace parley::broker::auth
