// An in-process MQTT peer for driving broker::Client without a network: a fake Transport (output buffer
// the test decodes), a fake SessionLink (records Wake / Kick), helpers that encode packets with the
// real codec and feed them through Client::OnData whole or one byte at a time, and Env: a Broker on a
// ManualClock.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "broker/codec/codec.h"
#include "broker/core/broker.h"
#include "broker/core/client.h"

namespace parley::broker::testing {

class FakeTransport final : public Transport {
 public:
  std::string& OutBuffer() override { return out_; }
  // Everything not yet taken by the test counts as waiting for the kernel, plus `extra_pending`.
  size_t PendingOutBytes() const override { return out_.size() + extra_pending; }
  void CloseAfterFlush() override { ++close_calls; }
  std::string_view PeerAddress() const override { return "127.0.0.1:1883"; }
  ListenerInfo Listener() const override { return listener; }
  void PauseReading(SteadyTime until) override {
    ++pauses;
    paused_until = until;
  }

  std::string out_;
  int pauses = 0;
  SteadyTime paused_until{};
  size_t extra_pending = 0;
  int close_calls = 0;
  ListenerInfo listener;  // what Listener() says (the default listener unless a test sets it)
};

class FakeLink final : public SessionLink {
 public:
  void Wake() override { wakes.fetch_add(1); }
  void Kick(uint8_t reason) override {
    std::lock_guard lock(mu);
    kicks.push_back(reason);
  }
  std::vector<uint8_t> Kicks() {
    std::lock_guard lock(mu);
    return kicks;
  }

  std::atomic<int> wakes{0};
  std::mutex mu;
  std::vector<uint8_t> kicks;
};

// One client connection. Not thread-safe; one thread drives it.
class Peer {
 public:
  Peer(Broker& broker, mqtt::Version v, bool bytewise = false, int worker = 0)
      : version(v), link(std::make_shared<FakeLink>()), bytewise_(bytewise) {
    client = std::make_unique<Client>(broker, transport, link, worker);
  }
  ~Peer() { client->OnClosed(); }

  // Encodes `p` in this peer's version and feeds it to the Client.
  void Send(const mqtt::Packet& p) {
    std::string bytes;
    REQUIRE(mqtt::Encode(p, version, &bytes) > 0);
    Feed(bytes);
  }
  void Feed(const std::string& bytes) {
    if (!bytewise_) {
      in_ += bytes;
      Consume();
    } else {
      for (char ch : bytes) {
        in_ += ch;
        Consume();
      }
    }
  }
  // Everything the Client wrote since the last call, decoded. Fails the test on undecodable output.
  std::vector<mqtt::Packet> Take() {
    std::vector<mqtt::Packet> out;
    mqtt::DecodeOptions opts;
    opts.version = version;
    size_t off = 0;
    const std::string& buf = transport.out_;
    while (off < buf.size()) {
      mqtt::Packet p;
      auto r = mqtt::Decode(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()) + off, buf.size() - off), opts, &p);
      INFO("decode detail: " << r.detail);
      REQUIRE(r.status == mqtt::DecodeStatus::kOk);
      off += r.consumed;
      out.push_back(std::move(p));
    }
    transport.out_.clear();
    return out;
  }
  // Pump() then Take(): what a Wake() would make the connection send.
  std::vector<mqtt::Packet> PumpTake() {
    client->Pump();
    return Take();
  }
  // Bytes fed but not consumed (a partial packet).
  size_t Unconsumed() const { return in_.size(); }

  const mqtt::Version version;
  FakeTransport transport;
  std::shared_ptr<FakeLink> link;
  std::unique_ptr<Client> client;

 private:
  void Consume() {
    const size_t n = client->OnData(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(in_.data()), in_.size()));
    REQUIRE(n <= in_.size());
    in_.erase(0, n);
  }
  const bool bytewise_;
  std::string in_;
};

// --- packet builders ---

inline mqtt::Connect MakeConnect(std::string id, mqtt::Version v, bool clean = true, uint16_t keep_alive = 0) {
  mqtt::Connect c;
  c.version = v;
  c.client_id = std::move(id);
  c.clean_start = clean;
  c.keep_alive = keep_alive;
  return c;
}

inline mqtt::Publish MakePublish(std::string topic, std::string payload, uint8_t qos = 0, uint16_t id = 0,
                                 bool retain = false) {
  mqtt::Publish p;
  p.topic = std::move(topic);
  p.payload = std::move(payload);
  p.qos = qos;
  p.packet_id = qos ? id : 0;
  p.retain = retain;
  return p;
}

inline mqtt::Subscribe MakeSubscribe(uint16_t id, std::string filter, uint8_t qos, uint32_t sub_id = 0) {
  mqtt::Subscribe s;
  s.packet_id = id;
  mqtt::Subscription sub;
  sub.filter = std::move(filter);
  sub.opts.qos = qos;
  s.subscriptions.push_back(std::move(sub));
  if (sub_id) s.props.subscription_identifiers.push_back(sub_id);
  return s;
}

inline mqtt::Ack MakeAck(mqtt::PacketType t, uint16_t id, uint8_t reason = 0) {
  mqtt::Ack a;
  a.type = t;
  a.packet_id = id;
  a.reason_code = reason;
  return a;
}

template <typename T>
const T& As(const mqtt::Packet& p) {
  INFO("packet is " << mqtt::PacketTypeName(mqtt::TypeOf(p)));
  REQUIRE(std::holds_alternative<T>(p));
  return std::get<T>(p);
}

// The PUBLISH packets among `ps`.
inline std::vector<mqtt::Publish> Publishes(const std::vector<mqtt::Packet>& ps) {
  std::vector<mqtt::Publish> out;
  for (const auto& p : ps)
    if (auto* pub = std::get_if<mqtt::Publish>(&p)) out.push_back(*pub);
  return out;
}

inline BrokerOptions Quiet() {
  BrokerOptions o;
  o.sys_enabled = false;  // keep $SYS out of the retained store unless a test wants it
  return o;
}

// A broker on a ManualClock, with helpers to connect and subscribe peers.
struct Env {
  explicit Env(BrokerOptions o = Quiet()) : broker(std::move(o), clock, 1) {}
  ManualClock clock;
  Broker broker;

  std::unique_ptr<Peer> Connect(mqtt::Connect c, bool bytewise = false) {
    auto p = std::make_unique<Peer>(broker, c.version, bytewise);
    p->Send(c);
    auto out = p->Take();
    REQUIRE(out.size() >= 1);
    const auto& ack = As<mqtt::Connack>(out[0]);
    REQUIRE(ack.reason_code == 0);
    REQUIRE(p->client->connected());
    last_connack = ack;
    last_after_connack.assign(out.begin() + 1, out.end());
    return p;
  }
  std::unique_ptr<Peer> Connect(std::string id, mqtt::Version v, bool bytewise = false) {
    return Connect(MakeConnect(std::move(id), v), bytewise);
  }
  void Subscribe(Peer& p, std::string filter, uint8_t qos, uint32_t sub_id = 0) {
    p.Send(MakeSubscribe(next_id++, std::move(filter), qos, sub_id));
    auto out = p.Take();
    REQUIRE(out.size() == 1);
    const auto& ack = As<mqtt::Suback>(out[0]);
    REQUIRE(ack.reason_codes == std::vector<uint8_t>{qos});
  }
  // The session the broker holds for `p`, found through a probe subscription.
  SessionPtr SessionOf(Peer& p) {
    const std::string probe = "probe/" + p.client->client_id();
    Subscribe(p, probe, 0);
    std::vector<Match> m;
    broker.tree().Collect(probe, "", &m);
    REQUIRE(m.size() == 1);
    SessionPtr s = m[0].session;
    p.Send(mqtt::Unsubscribe{next_id++, {probe}, {}});
    p.Take();
    return s;
  }
  size_t InflightOf(const SessionPtr& s) {
    std::lock_guard lock(s->mu_);
    return s->inflight_.size();
  }

  mqtt::Connack last_connack;
  std::vector<mqtt::Packet> last_after_connack;
  uint16_t next_id = 100;
};

inline mqtt::Connect WithWill(mqtt::Connect c, std::string topic, std::string payload, uint32_t delay = 0) {
  mqtt::Will w;
  w.topic = std::move(topic);
  w.payload = std::move(payload);
  w.qos = 1;
  if (delay) w.props.will_delay_interval = delay;
  c.will = std::move(w);
  return c;
}

// The one packet `p` wrote must be a DISCONNECT, after which it closes; returns its reason code.
inline uint8_t DisconnectReason(Peer& p) {
  auto out = p.Take();
  REQUIRE(out.size() == 1);
  CHECK(p.client->closing());
  CHECK(p.transport.close_calls == 1);
  return As<mqtt::Disconnect>(out[0]).reason_code;
}

}  // namespace parley::broker::testing
