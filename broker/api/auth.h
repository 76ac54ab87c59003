// Authentication and authorisation ports. Implementations: broker/auth (password file, ACL file);
// later JWT and the IM layer's rules. Called on loop threads; implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace parley::broker {

struct ConnectInfo {
  std::string_view client_id;
  std::optional<std::string_view> username;
  std::optional<std::string_view> password;  // binary; never log it
  std::string_view peer_address;
};

class Authorizer;

// What an authenticator grants besides its decision (all optional; filled only on kAllow).
struct Grant {
  // The identity to use for ACLs, sessions and logs instead of CONNECT's user name (a token's claim).
  std::optional<std::string> username;
  // The credentials stop being valid at this time (Unix milliseconds, a token's `exp`): the connection is
  // closed then (v5: DISCONNECT 0xA0 Maximum connect time).
  std::optional<int64_t> expires_at_ms;
  // Permissions that came with the credentials (a token's ACL claim), checked in addition to the broker's
  // ACL: a topic must be allowed by both.
  std::shared_ptr<const Authorizer> acl;
};

enum class AuthDecision : uint8_t {
  kAllow,          // credentials accepted
  kDeny,           // bad user name or password (CONNACK 0x86 / 3.1.1 0x04)
  kNotAuthorized,  // valid credentials, but not allowed to connect (0x87 / 0x05)
  kNoOpinion,      // this provider does not know the user; ask the next one
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // Any thread (called from the connection's loop). Must not block on I/O.
  // Any thread (called from the connection's loop). Must not block on I/O. On kAllow it may fill `grant`.
  virtual AuthDecision Authenticate(const ConnectInfo& info, Grant& grant) const = 0;
};

// MQTT 5 enhanced authentication (4.12): a challenge / response exchange in CONNECT, AUTH and CONNACK
// packets, begun when a CONNECT names this method. One exchange per CONNECT (or re-authentication); loop
// thread of that connection only.
class AuthExchange {
 public:
  enum class Step : uint8_t {
    kContinue,  // send `reply` in AUTH 0x18 (Continue authentication) and wait for the client's next AUTH
    kSuccess,   // authenticated: send `reply` (if any) in the CONNACK (or AUTH 0x00 on re-authentication)
    kFailure,   // refused: CONNACK 0x87 Not authorized (or DISCONNECT on re-authentication)
  };
  virtual ~AuthExchange() = default;
  // The client's Authentication Data in (empty when it sent none); ours out in *reply.
  virtual Step Next(std::string_view client_data, std::string* reply) = 0;
  // After kSuccess: who authenticated.
  virtual const std::string& username() const = 0;
};

class EnhancedAuthenticator {
 public:
  virtual ~EnhancedAuthenticator() = default;
  // The Authentication Method it implements, e.g. "SCRAM-SHA-256".
  virtual std::string_view method() const = 0;
  // Any thread. A fresh exchange for one CONNECT or re-authentication.
  virtual std::unique_ptr<AuthExchange> Start() const = 0;
};

enum class Access : uint8_t { kRead = 1, kWrite = 2 };

struct ClientIdentity {
  std::string_view client_id;
  std::optional<std::string_view> username;
  // Permissions that came with the client's credentials (Grant::acl), or null. Owned by the client's
  // session; valid while this identity is.
  const Authorizer* credential_acl = nullptr;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // May `who` publish to `topic` (kWrite) or receive messages from `topic_or_filter` (kRead)?
  // For kRead at SUBSCRIBE time the argument is a topic filter; at delivery time a topic name.
  // Any thread; must not block.
  virtual bool Allowed(const ClientIdentity& who, std::string_view topic, Access access) const = 0;
};

}  // namespace parley::broker
