// Enhanced authentication (AUTH exchanges, re-authentication) and what credentials grant: a user name,
// permissions, an expiry. The authenticators here are fakes with fixed rules; the real ones (SCRAM, JWT)
// have their own tests in tests/unit/auth.
#include <doctest/doctest.h>

#include "tests/unit/core/client_harness.h"

namespace parley::broker::testing {
namespace {

using mqtt::Version;
namespace rc = mqtt::rc;

// A two-step challenge: "hello:<user>" -> "challenge"; then "proof" -> success with "welcome".
class FakeExchange final : public AuthExchange {
 public:
  Step Next(std::string_view data, std::string* reply) override {
    if (step_++ == 0) {
      if (data.rfind("hello:", 0) != 0) return Step::kFailure;
      user_ = std::string(data.substr(6));
      *reply = "challenge";
      return Step::kContinue;
    }
    if (data != "proof") return Step::kFailure;
    *reply = "welcome";
    return Step::kSuccess;
  }
  const std::string& username() const override { return user_; }

 private:
  int step_ = 0;
  std::string user_;
};

class FakeMethod final : public EnhancedAuthenticator {
 public:
  std::string_view method() const override { return "FAKE-1"; }
  std::unique_ptr<AuthExchange> Start() const override { return std::make_unique<FakeExchange>(); }
};

// Permissions: publish only under "mine/", receive only from "news/".
class PrefixAcl final : public Authorizer {
 public:
  bool Allowed(const ClientIdentity&, std::string_view topic, Access access) const override {
    return access == Access::kWrite ? topic.rfind("mine/", 0) == 0 : topic.rfind("news/", 0) == 0;
  }
};

// Accepts password "token" for anyone, granting user "from-token", PrefixAcl and an expiry.
class TokenAuth final : public Authenticator {
 public:
  explicit TokenAuth(int64_t expires_at_ms) : expires_at_ms_(expires_at_ms) {}
  AuthDecision Authenticate(const ConnectInfo& info, Grant& grant) const override {
    if (info.password != std::optional<std::string_view>("token")) return AuthDecision::kNoOpinion;
    grant.username = "from-token";
    grant.acl = std::make_shared<PrefixAcl>();
    grant.expires_at_ms = expires_at_ms_;
    return AuthDecision::kAllow;
  }

 private:
  int64_t expires_at_ms_;
};

mqtt::Connect WithMethod(mqtt::Connect c, std::string method, std::string data) {
  c.props.authentication_method = std::move(method);
  c.props.authentication_data = std::move(data);
  return c;
}

mqtt::Auth MakeAuth(uint8_t reason, std::string method, std::string data) {
  mqtt::Auth a;
  a.reason_code = reason;
  a.props.authentication_method = std::move(method);
  a.props.authentication_data = std::move(data);
  return a;
}

TEST_CASE("client: enhanced authentication") {
  Env env;
  FakeMethod method;
  env.broker.AddEnhancedAuthenticator(&method);

  SUBCASE("a two-step exchange ends in CONNACK with the method and the server's last data") {
    Peer p(env.broker, Version::kV5, /*bytewise=*/true);
    p.Send(WithMethod(MakeConnect("e1", Version::kV5), "FAKE-1", "hello:carol"));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    const auto& challenge = As<mqtt::Auth>(out[0]);
    CHECK(challenge.reason_code == rc::kContinueAuthentication);
    CHECK(challenge.props.authentication_method == "FAKE-1");
    CHECK(challenge.props.authentication_data == "challenge");
    CHECK_FALSE(p.client->connected());
    CHECK(env.broker.SessionCount() == 0);  // no session before the exchange succeeds

    p.Send(MakeAuth(rc::kContinueAuthentication, "FAKE-1", "proof"));
    out = p.Take();
    REQUIRE(out.size() == 1);
    const auto& ack = As<mqtt::Connack>(out[0]);
    CHECK(ack.reason_code == 0);
    CHECK(ack.props.authentication_method == "FAKE-1");
    CHECK(ack.props.authentication_data == "welcome");
    CHECK(p.client->connected());

    SUBCASE("re-authentication as the same user: AUTH 0x19, 0x18, then AUTH 0x00") {
      p.Send(MakeAuth(rc::kReAuthenticate, "FAKE-1", "hello:carol"));
      out = p.Take();
      REQUIRE(out.size() == 1);
      CHECK(As<mqtt::Auth>(out[0]).reason_code == rc::kContinueAuthentication);
      p.Send(MakeAuth(rc::kContinueAuthentication, "FAKE-1", "proof"));
      out = p.Take();
      REQUIRE(out.size() == 1);
      CHECK(As<mqtt::Auth>(out[0]).reason_code == rc::kSuccess);
      CHECK(As<mqtt::Auth>(out[0]).props.authentication_data == "welcome");
      CHECK(p.client->connected());
    }
    SUBCASE("re-authentication as another user is refused") {
      p.Send(MakeAuth(rc::kReAuthenticate, "FAKE-1", "hello:mallory"));
      p.Take();
      p.Send(MakeAuth(rc::kContinueAuthentication, "FAKE-1", "proof"));
      CHECK(DisconnectReason(p) == rc::kNotAuthorized);
    }
    SUBCASE("re-authentication with another method is a protocol error") {
      p.Send(MakeAuth(rc::kReAuthenticate, "OTHER", "x"));
      CHECK(DisconnectReason(p) == rc::kProtocolError);
    }
  }
  SUBCASE("a wrong proof: CONNACK 0x87, no session") {
    Peer p(env.broker, Version::kV5);
    p.Send(WithMethod(MakeConnect("e2", Version::kV5), "FAKE-1", "hello:carol"));
    p.Take();
    p.Send(MakeAuth(rc::kContinueAuthentication, "FAKE-1", "guess"));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc::kNotAuthorized);
    CHECK(p.transport.close_calls == 1);
    CHECK(env.broker.SessionCount() == 0);
  }
  SUBCASE("an unknown method: CONNACK 0x8C") {
    Peer p(env.broker, Version::kV5);
    p.Send(WithMethod(MakeConnect("e3", Version::kV5), "KERBEROS", ""));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc::kBadAuthenticationMethod);
  }
  SUBCASE("anything but AUTH during the exchange: CONNACK 0x82") {
    Peer p(env.broker, Version::kV5);
    p.Send(WithMethod(MakeConnect("e4", Version::kV5), "FAKE-1", "hello:carol"));
    p.Take();
    p.Send(MakePublish("t", "x"));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc::kProtocolError);
    CHECK(env.broker.SessionCount() == 0);
  }
  SUBCASE("AUTH with another method during the exchange: CONNACK 0x82") {
    Peer p(env.broker, Version::kV5);
    p.Send(WithMethod(MakeConnect("e5", Version::kV5), "FAKE-1", "hello:carol"));
    p.Take();
    p.Send(MakeAuth(rc::kContinueAuthentication, "FAKE-2", "proof"));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc::kProtocolError);
  }
  SUBCASE("an exchange that never ends is closed by the CONNECT timeout") {
    Peer p(env.broker, Version::kV5);
    p.Send(WithMethod(MakeConnect("e6", Version::kV5), "FAKE-1", "hello:carol"));
    p.Take();
    env.clock.Advance(env.broker.options().connect_timeout + std::chrono::seconds(1));
    p.client->OnTick();
    CHECK(p.transport.close_calls == 1);
  }
  SUBCASE("with a method configured, a bare user name is no longer taken on trust") {
    // Found by the SCRAM broker test: an open broker (allow_anonymous, no password file) used to accept any
    // user name, so a plain CONNECT could claim a SCRAM user's name and its ACL rights.
    Peer p(env.broker, Version::kV5);
    mqtt::Connect c = MakeConnect("impostor", Version::kV5);
    c.username = "carol";
    p.Send(c);
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Connack>(out[0]).reason_code == rc::kBadUserNameOrPassword);
    env.Connect("anonymous", Version::kV5);  // without a user name: anonymous access still decides
  }
  SUBCASE("AUTH on a connection that agreed no method: DISCONNECT 0x82") {
    auto p = env.Connect("plain", Version::kV5);
    p->Send(MakeAuth(rc::kReAuthenticate, "FAKE-1", "hello:carol"));
    CHECK(DisconnectReason(*p) == rc::kProtocolError);
  }
}

TEST_CASE("client: what credentials grant") {
  Env env;
  const int64_t expires = env.clock.UnixMillis() + 60'000;
  TokenAuth tokens(expires);
  env.broker.AddAuthenticator(&tokens);
  mqtt::Connect c = MakeConnect("holder", Version::kV5);
  c.username = "claimed-by-client";
  c.password = "token";
  auto holder = env.Connect(c);

  SUBCASE("the granted permissions apply to publish and subscribe") {
    holder->Send(MakePublish("mine/a", "x", 1, 1));
    auto out = holder->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kNoMatchingSubscribers);  // allowed; nobody listens
    holder->Send(MakePublish("theirs/a", "x", 1, 2));
    out = holder->Take();
    REQUIRE(out.size() == 1);
    CHECK(As<mqtt::Ack>(out[0]).reason_code == rc::kNotAuthorized);
    holder->Send(MakeSubscribe(3, "secret/#", 1));
    out = holder->Take();
    REQUIRE(out.size() == 1);
    // Refused subscriptions are answered 0x80 in both versions (docs/conformance.md: Paho's v5 codec).
    CHECK(As<mqtt::Suback>(out[0]).reason_codes == std::vector<uint8_t>{0x80});
  }
  SUBCASE("and to deliveries") {
    env.Subscribe(*holder, "news/#", 0);
    auto other = env.Connect("other", Version::kV5);
    other->Send(MakePublish("news/today", "n", 0));
    CHECK(Publishes(holder->PumpTake()).size() == 1);
  }
  SUBCASE("the connection ends with 0xA0 when the credentials expire") {
    env.clock.Advance(std::chrono::seconds(59));
    holder->client->OnTick();
    CHECK(holder->Take().empty());
    env.clock.Advance(std::chrono::seconds(1));
    holder->client->OnTick();
    CHECK(DisconnectReason(*holder) == rc::kMaximumConnectTime);
  }
}

}  // namespace
}  // namespace parley::broker::testing
