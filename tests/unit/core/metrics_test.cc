// Broker::CollectMetrics driven by in-process clients: the counters behind /metrics (messages by QoS, connects,
// refusals and disconnects by reason, connections by listener and version, queue gauges) and the connection
// log lines (docs/metrics.md).
#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <set>
#include <sstream>

#include "tests/unit/core/client_harness.h"

namespace parley::broker::testing {
namespace {

using mqtt::Version;
using std::chrono::milliseconds;
using std::chrono::seconds;
namespace rc = mqtt::rc;

std::vector<metrics::Family> Collect(const Broker& b) {
  std::vector<metrics::Family> out;
  b.CollectMetrics(out);
  return out;
}

// The sum of the matching samples of `name`; -1 when the family or the series is missing.
double Value(const Broker& b, std::string_view name, const metrics::Labels& match = {}) {
  return metrics::Sum(Collect(b), name, match).value_or(-1);
}

double Reason(const Broker& b, std::string_view name, std::string_view reason) {
  return Value(b, name, {{"reason", std::string(reason)}});
}

// What spdlog's default logger writes while this lives (message text only, one line each).
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string Text() const { return out_.str(); }
  // The lines that start with `word` followed by a space.
  std::vector<std::string> Lines(std::string_view word) const {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);)
      if (line.size() > word.size() && line.starts_with(word) && line[word.size()] == ' ') lines.push_back(line);
    return lines;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_CASE("metrics: PUBLISH packets by QoS in and out, MQTT bytes both ways") {
  Env env;
  auto sub = env.Connect("sub", Version::kV5);
  std::string connect_bytes;
  mqtt::Encode(MakeConnect("sub", Version::kV5), Version::kV5, &connect_bytes);
  CHECK(Value(env.broker, "parley_bytes_received_total") == connect_bytes.size());
  CHECK(Value(env.broker, "parley_bytes_sent_total") == mqtt::EncodedSize(env.last_connack, Version::kV5));

  env.Subscribe(*sub, "t/#", 2);
  auto pub = env.Connect("pub", Version::kV5);
  pub->Send(MakePublish("t/a", "zero", 0));
  pub->Send(MakePublish("t/a", "one", 1, 1));
  pub->Send(MakePublish("t/a", "one again", 1, 2));
  pub->Send(MakePublish("t/a", "two", 2, 3));
  pub->Take();
  CHECK(Value(env.broker, "parley_messages_received_total", {{"qos", "0"}}) == 1);
  CHECK(Value(env.broker, "parley_messages_received_total", {{"qos", "1"}}) == 2);
  CHECK(Value(env.broker, "parley_messages_received_total", {{"qos", "2"}}) == 1);
  CHECK(Value(env.broker, "parley_messages_sent_total") == 0);

  CHECK(Publishes(sub->PumpTake()).size() == 4);
  CHECK(Value(env.broker, "parley_messages_sent_total", {{"qos", "0"}}) == 1);
  CHECK(Value(env.broker, "parley_messages_sent_total", {{"qos", "1"}}) == 2);
  CHECK(Value(env.broker, "parley_messages_sent_total", {{"qos", "2"}}) == 1);
  CHECK(Value(env.broker, "parley_inflight_messages") == 3);  // QoS 1 and 2 await their acks
}

TEST_CASE("metrics: disconnects by reason") {
  Env env;
  auto count = [&](std::string_view reason) { return Reason(env.broker, "parley_disconnects_total", reason); };

  auto a = env.Connect("a", Version::kV5);
  a->Send(mqtt::Disconnect{});
  a->client->OnClosed();
  CHECK(count("client") == 1);

  auto b = env.Connect("b", Version::kV5);
  mqtt::Disconnect with_will;
  with_will.reason_code = rc::kDisconnectWithWill;
  b->Send(with_will);
  b->client->OnClosed();
  CHECK(count("client_with_will") == 1);

  auto c = env.Connect("c", Version::kV311);
  c->Send(mqtt::Disconnect{});
  c->client->OnClosed();
  CHECK(count("client") == 2);

  auto ka = env.Connect(MakeConnect("ka", Version::kV5, true, /*keep_alive=*/10));
  env.clock.Advance(seconds(16));
  ka->client->OnTick();
  CHECK(DisconnectReason(*ka) == rc::kKeepAliveTimeout);
  ka->client->OnClosed();
  CHECK(count("keepalive_timeout") == 1);

  auto gone = env.Connect("gone", Version::kV5);
  gone->client->OnClosed();  // the socket closed, nothing said
  CHECK(count("network") == 1);

  auto bad = env.Connect("bad", Version::kV5);
  bad->Send(MakeConnect("bad", Version::kV5));  // a second CONNECT
  bad->Send(mqtt::Disconnect{});
  bad->client->OnClosed();
  CHECK(count("protocol_error") == 1);
  // A DISCONNECT arriving after the error does not change why it ended.
  CHECK(count("client") == 2);

  auto old = env.Connect("same", Version::kV5);
  auto fresh = env.Connect("same", Version::kV5);  // takes the client id over: the old one is kicked
  REQUIRE(old->link->Kicks() == std::vector<uint8_t>{rc::kSessionTakenOver});
  old->client->OnKick(rc::kSessionTakenOver);
  old->client->OnClosed();
  CHECK(count("taken_over") == 1);

  auto kicked = env.Connect("kicked", Version::kV5);
  kicked->client->OnKick(rc::kAdministrativeAction);
  kicked->client->OnClosed();
  CHECK(count("kicked") == 1);

  auto drained = env.Connect("drained", Version::kV5);
  drained->client->OnKick(rc::kUseAnotherServer);
  drained->client->OnClosed();
  CHECK(count("drain") == 1);

  auto slow = env.Connect("slow", Version::kV5);
  slow->client->NoteCloseReason(DisconnectCause::kWriteTimeout);  // as broker/net does before closing
  slow->client->OnClosed();
  CHECK(count("write_timeout") == 1);

  fresh->client->OnShutdown();
  fresh->client->OnClosed();
  CHECK(count("shutdown") == 1);

  CHECK(Value(env.broker, "parley_disconnects_total") == 11);
  // Every family lists every reason, so dashboards see zeros rather than gaps.
  CHECK(count("token_expired") == 0);
  CHECK(count("outbound_buffer") == 0);
}

TEST_CASE("metrics: connect refusals by reason") {
  SUBCASE("checked by the client") {
    Env env;
    auto count = [&](std::string_view reason) { return Reason(env.broker, "parley_connect_refusals_total", reason); };
    {
      Peer p(env.broker, Version::kV311);
      p.Send(MakeConnect("", Version::kV311, /*clean=*/false));
      CHECK(count("bad_client_id") == 1);
    }
    {
      Peer p(env.broker, Version::kV311);
      p.Send(mqtt::Pingreq{});
      CHECK(count("protocol_error") == 1);
    }
    {
      Peer p(env.broker, Version::kV311);
      std::string bytes;
      mqtt::Encode(MakeConnect("future", Version::kV311), Version::kV311, &bytes);
      REQUIRE(bytes[8] == 4);  // the protocol level, after the fixed header and "MQTT"
      bytes[8] = 7;
      p.Feed(bytes);
      CHECK(count("unsupported_version") == 1);
    }
    {
      Peer p(env.broker, Version::kV5);
      env.clock.Advance(env.broker.options().connect_timeout + milliseconds(1));
      p.client->OnTick();
      CHECK(count("timeout") == 1);
    }
    env.broker.SetOverloaded(true);
    {
      Peer p(env.broker, Version::kV5);
      p.Send(MakeConnect("busy", Version::kV5));
      CHECK(As<mqtt::Connack>(p.Take().at(0)).reason_code == rc::kServerBusy);
      CHECK(count("server_busy") == 1);
    }
    env.broker.SetOverloaded(false);
    CHECK(Value(env.broker, "parley_connect_refusals_total") == 5);
    CHECK(Value(env.broker, "parley_connects_total") == 0);
  }
  SUBCASE("credentials") {
    BrokerOptions o = Quiet();
    o.allow_anonymous = false;
    Env env(o);
    auto count = [&](std::string_view reason) { return Reason(env.broker, "parley_connect_refusals_total", reason); };
    {
      Peer p(env.broker, Version::kV5);
      p.Send(MakeConnect("anon", Version::kV5));
      CHECK(count("not_authorized") == 1);
    }
    {
      Peer p(env.broker, Version::kV5);
      mqtt::Connect c = MakeConnect("who", Version::kV5);
      c.username = "mallory";
      c.password = "guess";
      p.Send(c);
      CHECK(As<mqtt::Connack>(p.Take().at(0)).reason_code == rc::kBadUserNameOrPassword);
      CHECK(count("bad_credentials") == 1);
    }
  }
}

TEST_CASE("metrics: connections by listener, protocol and version; connects by listener") {
  Env env;
  env.broker.SetListeners({{"default", "mqtt"}, {"web", "ws"}});
  auto connections = [&](const char* listener, const char* version) {
    return Value(env.broker, "parley_connections", {{"listener", listener}, {"version", version}});
  };
  Peer web(env.broker, Version::kV5);
  web.transport.listener = ListenerInfo{1, "web", "ws"};
  web.Send(MakeConnect("web-1", Version::kV5));
  REQUIRE(web.client->connected());
  auto plain = env.Connect("plain-1", Version::kV311);
  auto plain5 = env.Connect("plain-2", Version::kV5);

  CHECK(connections("web", "5.0") == 1);
  CHECK(connections("web", "3.1.1") == 0);
  CHECK(connections("default", "3.1.1") == 1);
  CHECK(connections("default", "5.0") == 1);
  CHECK(Value(env.broker, "parley_connections", {{"listener", "web"}, {"protocol", "ws"}}) == 1);
  CHECK(Value(env.broker, "parley_connects_total", {{"listener", "web"}}) == 1);
  CHECK(Value(env.broker, "parley_connects_total", {{"listener", "default"}}) == 2);
  CHECK(Value(env.broker, "parley_sessions", {{"state", "online"}}) == 3);

  web.client->OnClosed();
  plain->client->OnClosed();
  CHECK(connections("web", "5.0") == 0);
  CHECK(connections("default", "3.1.1") == 0);
  CHECK(Value(env.broker, "parley_connections") == 1);
  CHECK(Value(env.broker, "parley_connects_total") == 3);  // a counter: closing takes nothing back
}

TEST_CASE("metrics: queue gauges walk the sessions") {
  BrokerOptions o = Quiet();
  o.max_queued_messages = 10;
  Env env(o);
  mqtt::Connect c = MakeConnect("away", Version::kV5);
  c.props.session_expiry_interval = 3600;
  auto away = env.Connect(c);
  env.Subscribe(*away, "q/#", 1);
  away->client->OnClosed();  // offline; the session waits for it
  auto pub = env.Connect("pub", Version::kV5);
  for (uint16_t i = 1; i <= 4; ++i) pub->Send(MakePublish("q/x", "0123456789", 1, i));
  pub->Take();

  CHECK(Value(env.broker, "parley_sessions", {{"state", "offline"}}) == 1);
  CHECK(Value(env.broker, "parley_sessions", {{"state", "online"}}) == 1);
  CHECK(Value(env.broker, "parley_queued_messages") == 4);
  CHECK(Value(env.broker, "parley_queued_bytes") > 40);
  CHECK(Value(env.broker, "parley_queue_fill_ratio_max") == doctest::Approx(0.4));
  CHECK(Value(env.broker, "parley_inflight_messages") == 0);
  CHECK(Value(env.broker, "parley_subscriptions") == 1);

  // Over the limit: dropped, counted by cause.
  for (uint16_t i = 5; i <= 12; ++i) pub->Send(MakePublish("q/x", "0123456789", 1, i));
  pub->Take();
  CHECK(Value(env.broker, "parley_queued_messages") == 10);
  CHECK(Value(env.broker, "parley_queue_fill_ratio_max") == doctest::Approx(1.0));
  CHECK(Value(env.broker, "parley_messages_dropped_total", {{"cause", "queue_full"}}) == 2);

  pub->Send(MakePublish("keep", "v", 0, 0, /*retain=*/true));
  CHECK(Value(env.broker, "parley_retained_messages") == 1);
}

TEST_CASE("metrics: identity families and the text format of a whole collection") {
  Env env;
  env.clock.Advance(seconds(90));
  auto a = env.Connect("a", Version::kV5);
  const std::vector<metrics::Family> fams = Collect(env.broker);
  CHECK(metrics::Sum(fams, "parley_uptime_seconds") == doctest::Approx(90));
  CHECK(metrics::Sum(fams, "parley_workers") == 1);
  CHECK(metrics::Sum(fams, "parley_overloaded") == 0);
  CHECK(metrics::Sum(fams, "parley_build_info") == 1);
  // One family per name: rendering gives each one HELP line.
  std::set<std::string> names;
  for (const metrics::Family& f : fams) CHECK(names.insert(f.name).second);
  const std::string text = metrics::RenderPrometheus(fams);
  CHECK(text.find("parley_connections{listener=\"default\",protocol=\"mqtt\",version=\"5.0\"} 1\n") != std::string::npos);
  CHECK(text.find("parley_disconnects_total{reason=\"keepalive_timeout\"} 0\n") != std::string::npos);
}

TEST_CASE("connection log lines: one per connect and disconnect, key=value, never credentials") {
  LogCapture log;
  {
    Env env;
    mqtt::Connect c = MakeConnect("phone-1", Version::kV5, /*clean=*/false, /*keep_alive=*/60);
    c.username = "alice";
    c.password = "hunter2-secret";
    c.props.session_expiry_interval = 300;
    auto p = env.Connect(c);
    env.clock.Advance(milliseconds(1500));
    p->Send(mqtt::Disconnect{});
    p->client->OnClosed();
    p.reset();
    const auto connects = log.Lines("connect");
    REQUIRE(connects.size() == 1);
    CHECK(connects[0] ==
          "connect client_id=\"phone-1\" user=\"alice\" address=127.0.0.1:1883 listener=default protocol=mqtt "
          "version=5.0 keep_alive=60 clean_start=false session_present=false session_expiry=300");
    const auto disconnects = log.Lines("disconnect");
    REQUIRE(disconnects.size() == 1);
    CHECK(disconnects[0] ==
          "disconnect client_id=\"phone-1\" user=\"alice\" address=127.0.0.1:1883 listener=default protocol=mqtt "
          "version=5.0 reason=client code=0x00 duration_s=1.500");

    // A protocol error: the reason code sent and what was wrong.
    auto q = env.Connect(MakeConnect("q\"uote\\d", Version::kV311));
    q->Send(MakeConnect("again", Version::kV311));
    q->client->OnClosed();
    const auto more = log.Lines("disconnect");
    REQUIRE(more.size() == 2);
    CHECK(more[1] ==
          "disconnect client_id=\"q\\\"uote\\\\d\" user=- address=127.0.0.1:1883 listener=default protocol=mqtt "
          "version=3.1.1 reason=protocol_error code=0x82 duration_s=0.000 detail=\"second CONNECT\"");
  }
  {
    BrokerOptions o = Quiet();
    o.allow_anonymous = false;
    Env env(o);
    Peer p(env.broker, Version::kV311);
    mqtt::Connect c = MakeConnect("thief", Version::kV311);
    c.username = "mallory";
    c.password = "hunter2-secret";
    p.Send(c);
    const auto refused = log.Lines("connect_refused");
    REQUIRE(refused.size() == 1);
    CHECK(refused[0] ==
          "connect_refused client_id=\"thief\" user=\"mallory\" address=127.0.0.1:1883 listener=default "
          "protocol=mqtt version=3.1.1 reason=bad_credentials code=0x04 detail=\"bad user name or password\"");
    Peer silent(env.broker, Version::kV5);
    env.clock.Advance(env.broker.options().connect_timeout + milliseconds(1));
    silent.client->OnTick();
    const auto both = log.Lines("connect_refused");
    REQUIRE(both.size() == 2);
    CHECK(both[1] ==
          "connect_refused client_id=- user=- address=127.0.0.1:1883 listener=default protocol=mqtt version=- "
          "reason=timeout code=- detail=\"no CONNECT within connect_timeout\"");
  }
  CHECK(log.Text().find("hunter2") == std::string::npos);
  CHECK(log.Lines("connected").empty());  // the old debug lines are gone, not doubled
}

}  // namespace
}  // namespace parley::broker::testing
