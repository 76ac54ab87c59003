// Authentication and authorisation ports. Implementations: broker/auth (password file, ACL file);
// later JWT and the IM layer's rules. Called on loop threads; implementations must be thread-safe.
#pragma once

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
  virtual AuthDecision Authenticate(const ConnectInfo& info) const = 0;
};

enum class Access : uint8_t { kRead = 1, kWrite = 2 };

struct ClientIdentity {
  std::string_view client_id;
  std::optional<std::string_view> username;
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
