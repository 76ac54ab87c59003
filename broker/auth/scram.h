// ScramAuthenticator: MQTT 5 enhanced authentication (4.12) with SCRAM-SHA-256 (RFC 5802, RFC 7677).
// Formats and operator notes: docs/authentication.md ("SCRAM-SHA-256").
//
// Credentials are verifiers, never passwords, one per line in PostgreSQL's format:
//
//   # comment
//   alice:SCRAM-SHA-256$4096:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//
// The exchange, driven by the core (AuthExchange):
//   CONNECT  Authentication Data = client-first-message   "n,,n=alice,r=<client nonce>"
//   AUTH 0x18 (kContinue)        = server-first-message   "r=<client nonce><server nonce>,s=<salt>,i=<count>"
//   AUTH 0x18 from the client    = client-final-message   "c=biws,r=<nonce>,p=<base64 ClientProof>"
//   CONNACK 0x00 (kSuccess)      = server-final-message   "v=<base64 ServerSignature>"
//
// Written on OpenSSL primitives rather than GNU SASL 2.2 (whose server side was the first choice), because
// libgsasl's SCRAM server (lib/scram/server.c, 2.2.0) compares the recomputed StoredKey with memcmp (not
// constant-time), and, in the non-PLUS mechanism, accepts a client-first "p=<cb-name>" channel-binding
// request and then succeeds without binding anything (RFC 5802 section 6 requires failing it). Working
// around both would have meant parsing every message ourselves before handing it over, and feeding salts
// and keys through its process-wide callback as base64 strings; the protocol itself is ~200 lines.
//
// Deliberate limits:
//   - User names must be printable ASCII (0x20..0x7E) after "=2C" / "=3D" unescaping, in the file and on
//     the wire. SASLprep (RFC 4013) leaves such names unchanged, so no normaliser is needed; non-ASCII names
//     are refused rather than compared unnormalised.
//   - Passwords are used as given (MakeScramVerifier does not apply SASLprep): ASCII passwords behave as in
//     any SCRAM client; a non-ASCII password works with clients that apply SASLprep only if it is already
//     in NFKC form and has no character SASLprep maps (e.g. non-ASCII spaces).
//   - No channel binding (no -PLUS mechanism): "n" and "y" gs2 flags are accepted, "p=" is refused.
//   - An authorization identity ("a=") is accepted only if it equals the user name.
//
// Thread safety: ScramAuthenticator is immutable after Load; Start() may be called from any thread. Each
// exchange holds a reference to the credential table, so it stays valid if the authenticator is replaced
// (reloaded) mid-exchange. An exchange belongs to one connection's loop thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "broker/api/auth.h"

namespace parley::broker::auth {

// The SCRAM-SHA-256 functions of RFC 5802 section 3, exposed for tests and tools. Any thread.
namespace scram {

inline constexpr size_t kKeyBytes = 32;  // SHA-256 output
using Key = std::array<uint8_t, kKeyBytes>;

struct Secrets {
  Key salted_password;  // Hi(password, salt, i) = PBKDF2-HMAC-SHA-256
  Key client_key;       // HMAC(SaltedPassword, "Client Key")
  Key stored_key;       // H(ClientKey)
  Key server_key;       // HMAC(SaltedPassword, "Server Key")
};

// `iterations` >= 1. Aborts only if OpenSSL itself fails (no safe fallback exists).
Secrets DeriveSecrets(std::string_view password, std::string_view salt, int iterations);
// ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage).
Key ClientProof(const Secrets& secrets, std::string_view auth_message);
// ServerSignature = HMAC(ServerKey, AuthMessage).
Key ServerSignature(const Key& server_key, std::string_view auth_message);
// True if H(proof XOR HMAC(StoredKey, AuthMessage)) == StoredKey, compared in constant time. `proof` is the
// decoded bytes; any length other than kKeyBytes is false.
bool VerifyClientProof(const Key& stored_key, std::string_view auth_message, std::string_view proof);

}  // namespace scram

// One parsed verifier ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>").
struct ScramVerifier {
  int iterations = 0;
  std::string salt;  // raw bytes
  scram::Key stored_key{};
  scram::Key server_key{};
};

// The part after "username:" of a verifier line for `password`, with a fresh 16-byte salt from RAND_bytes
// (PostgreSQL's length). `iterations` must be within ScramAuthenticator's limits and the salt 1..256 bytes
// (checked: aborts otherwise, as it does if the system random generator fails). Any thread.
std::string MakeScramVerifier(std::string_view password, int iterations = 4096);
// As above with a given salt (raw bytes): deterministic, for tests and for reproducing another tool's line.
std::string MakeScramVerifier(std::string_view password, std::string_view salt, int iterations);
// Parses a verifier. Errors describe the problem and never quote the verifier.
Result<ScramVerifier> ParseScramVerifier(std::string_view text);

class ScramAuthenticator final : public EnhancedAuthenticator {
 public:
  static constexpr std::string_view kMethod = "SCRAM-SHA-256";
  // RFC 7677 section 4: at least 4096. The client pays for the iterations, not the broker, but a count a
  // phone needs minutes for is a mistake, so counts above kMaxIterations are refused at load too.
  static constexpr int kMinIterations = 4096;
  static constexpr int kMaxIterations = 10'000'000;
  // A client message longer than this fails the exchange before parsing (real ones are < 200 bytes).
  static constexpr size_t kMaxMessageBytes = 4096;
  // Bytes of the salt answered for an unknown user when the file is empty (else the file's commonest).
  static constexpr size_t kDefaultSaltBytes = 16;

  // Reads and parses `path`. Errors name "path:line" and never quote verifier material. Startup / reload.
  static Result<std::unique_ptr<ScramAuthenticator>> Load(const std::string& path);
  // As Load, from text in memory; `source_name` is used in error messages. For tests and tools.
  static Result<std::unique_ptr<ScramAuthenticator>> Parse(std::string_view text,
                                                           std::string_view source_name);

  ~ScramAuthenticator() override;

  std::string_view method() const override { return kMethod; }

  // A fresh exchange with a 24-character server nonce (18 bytes from RAND_bytes, base64). The exchange:
  //   - first Next(): the client-first-message. Malformed, over kMaxMessageBytes, "p=" channel binding, an
  //     "m=" extension, an authzid other than the user name, or a non-ASCII user name -> kFailure. Otherwise
  //     kContinue with the server-first-message, also for a user not in the file: its salt is
  //     derived with HMAC-SHA-256 from a per-process random key and the name (the file's commonest salt
  //     length), and its iteration count the file's commonest, so the reply looks like a real user's and
  //     takes as long (RFC 5802 section 9).
  //   - second Next(): the client-final-message. Malformed, wrong channel-binding data (c=), a nonce other
  //     than the one sent, or a wrong proof -> kFailure with `reply` = "e=invalid-proof" or another RFC 5802
  //     server-error (the core may send it as Authentication Data; it is the same for unknown users and wrong
  //     passwords). A right proof -> kSuccess with the server-final-message "v=...".
  //   - any later Next() -> kFailure.
  // Each Next costs a few microseconds (a few HMACs and a hash): no PBKDF2 on the broker side. Any thread.
  std::unique_ptr<AuthExchange> Start() const override;

  // As Start, with a chosen server nonce (printable ASCII, no ','). For tests (RFC 7677's vector) only.
  std::unique_ptr<AuthExchange> StartWithServerNonceForTesting(std::string server_nonce) const;

  size_t user_count() const;
  bool HasUser(std::string_view username) const;

  struct Table;  // the parsed file, shared with live exchanges (scram.cc)

 private:
  explicit ScramAuthenticator(std::shared_ptr<const Table> table) : table_(std::move(table)) {}

  std::shared_ptr<const Table> table_;
};

}  // namespace parley::broker::auth
