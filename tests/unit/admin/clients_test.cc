// The client, session, subscription, retained and drain endpoints (broker/admin/clients.cc), called through a
// router that captures the routes, against a real Broker and a running net::Server with MQTT clients on
// loopback sockets: JSON shapes and status codes of docs/admin-api.md, and a drain that disconnects clients
// at its rate (v5: DISCONNECT 0x9C with the Server Reference; 3.1.1: closed) while refusing new ones.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "broker/admin/clients.h"
#include "broker/codec/codec.h"

namespace parley::admin {
namespace {

using broker::AdminHandler;
using broker::AdminRequest;
using broker::AdminResponse;
using json = nlohmann::json;
using mqtt::Version;
namespace rc = mqtt::rc;

class CaptureRouter final : public broker::AdminRouter {
 public:
  void Add(std::string_view method, std::string_view pattern, AdminHandler handler) override {
    routes[{std::string(method), std::string(pattern)}] = std::move(handler);
  }
  std::map<std::pair<std::string, std::string>, AdminHandler> routes;
};

// A blocking MQTT client on a loopback socket, speaking through the real codec.
class TestClient {
 public:
  TestClient(uint16_t port, Version v) : version_(v) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~TestClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  void Send(const mqtt::Packet& p) {
    std::string bytes;
    REQUIRE(mqtt::Encode(p, version_, &bytes) > 0);
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  }
  // The next packet; nullopt when the server closed the connection (closed_ set) or after `timeout`.
  std::optional<mqtt::Packet> Read(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!in_.empty()) {
        mqtt::DecodeOptions opts;
        opts.version = version_;
        mqtt::Packet p;
        auto r = mqtt::Decode(std::span(reinterpret_cast<const uint8_t*>(in_.data()), in_.size()), opts, &p);
        REQUIRE(r.status != mqtt::DecodeStatus::kError);
        if (r.status == mqtt::DecodeStatus::kOk) {
          in_.erase(0, r.consumed);
          return p;
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      in_.append(buf, static_cast<size_t>(n));
    }
  }
  mqtt::Connack Connect(const std::string& id, bool clean = true, uint32_t expiry = 0,
                        std::optional<std::string> username = std::nullopt) {
    mqtt::Connect c;
    c.version = version_;
    c.client_id = id;
    c.clean_start = clean;
    c.keep_alive = 60;
    c.username = std::move(username);
    if (version_ == Version::kV5 && expiry) c.props.session_expiry_interval = expiry;
    Send(c);
    auto p = Read();
    REQUIRE(p);
    REQUIRE(std::holds_alternative<mqtt::Connack>(*p));
    return std::get<mqtt::Connack>(*p);
  }
  void Subscribe(const std::string& filter, uint8_t qos) {
    mqtt::Subscribe s;
    s.packet_id = 1;
    mqtt::Subscription sub;
    sub.filter = filter;
    sub.opts.qos = qos;
    s.subscriptions.push_back(sub);
    Send(s);
    auto p = Read();
    REQUIRE(p);
    REQUIRE(std::holds_alternative<mqtt::Suback>(*p));
  }
  bool closed() const { return closed_; }

 private:
  const Version version_;
  int fd_ = -1;
  std::string in_;
  bool closed_ = false;
};

struct Rig {
  Rig() : broker(Options(), SystemClock::Instance(), 2), server(broker, 2) {
    net::ListenSpec spec;
    spec.name = "default";
    spec.port = 0;
    REQUIRE(server.Listen({spec}).ok());
    port = server.BoundPort(0);
    server.Start();
    AddClientRoutes(router, broker, server);
  }
  ~Rig() { server.Stop(); }
  static broker::BrokerOptions Options() {
    broker::BrokerOptions o;
    o.sys_enabled = false;
    return o;
  }

  AdminResponse Call(const std::string& method, const std::string& pattern,
                     std::map<std::string, std::string, std::less<>> params = {},
                     std::map<std::string, std::string, std::less<>> query = {}, std::string body = {}) {
    auto it = router.routes.find({method, pattern});
    REQUIRE_MESSAGE(it != router.routes.end(), method << " " << pattern);
    AdminRequest req;
    req.method = method;
    req.path = pattern;
    req.params = std::move(params);
    req.query = std::move(query);
    req.body = std::move(body);
    req.peer = "127.0.0.1:1";
    return it->second(req);
  }
  // Calls and parses the JSON body, checking the status.
  json CallJson(int status, const std::string& method, const std::string& pattern,
                std::map<std::string, std::string, std::less<>> params = {},
                std::map<std::string, std::string, std::less<>> query = {}, std::string body = {}) {
    AdminResponse r = Call(method, pattern, std::move(params), std::move(query), std::move(body));
    INFO(method << " " << pattern << " -> " << r.status << " " << r.body);
    CHECK(r.status == status);
    CHECK(r.content_type == "application/json");
    json j = json::parse(r.body, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    return j;
  }
  // Until the broker has bound `n` connections (CONNACK is written before the gauge moves).
  void AwaitConnected(int64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (broker.clients_connected.load() != n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    REQUIRE(broker.clients_connected.load() == n);
  }

  broker::Broker broker;
  net::Server server;
  CaptureRouter router;
  uint16_t port = 0;
};

TEST_CASE("admin routes: every endpoint of the contract is registered") {
  Rig rig;
  for (auto [m, p] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/clients"}, {"GET", "/api/v1/clients/{client_id}"},
           {"POST", "/api/v1/clients/{client_id}/kick"}, {"GET", "/api/v1/sessions"},
           {"GET", "/api/v1/sessions/{client_id}"}, {"DELETE", "/api/v1/sessions/{client_id}"},
           {"GET", "/api/v1/subscriptions"}, {"GET", "/api/v1/retained"}, {"GET", "/api/v1/retained/message"},
           {"DELETE", "/api/v1/retained/message"}, {"POST", "/api/v1/drain"}, {"GET", "/api/v1/drain"},
           {"DELETE", "/api/v1/drain"}})
    CHECK_MESSAGE(rig.router.routes.count({m, p}) == 1, m << " " << p);
  CHECK(rig.router.routes.size() == 13);
}

TEST_CASE("admin clients: list, page, filter, show and kick connected clients") {
  Rig rig;
  TestClient v5(rig.port, Version::kV5);
  REQUIRE(v5.Connect("phone 1/é", /*clean=*/false, 3600, "alice").reason_code == 0);
  v5.Subscribe("sensors/+/temp", 1);
  TestClient v3(rig.port, Version::kV311);
  REQUIRE(v3.Connect("abc", /*clean=*/true).reason_code == 0);
  TestClient pending(rig.port, Version::kV5);  // connected socket, no CONNECT yet: not a client
  rig.AwaitConnected(2);

  json j = rig.CallJson(200, "GET", "/api/v1/clients");
  REQUIRE(j["clients"].size() == 2);
  CHECK(j["next"].is_null());
  const json& a = j["clients"][0];
  CHECK(a["client_id"] == "abc");
  CHECK(a["username"].is_null());
  CHECK(a["version"] == "3.1.1");
  CHECK(a["clean_start"] == true);
  CHECK(a["session_expiry"] == 0);
  const json& p = j["clients"][1];
  CHECK(p["client_id"] == "phone 1/é");
  CHECK(p["username"] == "alice");
  CHECK(p["version"] == "5.0");
  CHECK(p["keep_alive"] == 60);
  CHECK(p["clean_start"] == false);
  CHECK(p["session_expiry"] == 3600);
  CHECK(p["subscriptions"] == 1);
  CHECK(p["queued"] == 0);
  CHECK(p["inflight"] == 0);
  CHECK(p["address"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
  CHECK(p["listener"].is_string());
  CHECK(p["protocol"] == "mqtt");
  const int64_t now_ms = SystemClock::Instance().UnixMillis();
  CHECK(p["connected_at_ms"].get<int64_t>() <= now_ms);
  CHECK(p["connected_at_ms"].get<int64_t>() > now_ms - 60'000);

  j = rig.CallJson(200, "GET", "/api/v1/clients", {}, {{"limit", "1"}});
  REQUIRE(j["clients"].size() == 1);
  CHECK(j["next"] == "abc");
  j = rig.CallJson(200, "GET", "/api/v1/clients", {}, {{"limit", "1"}, {"after", "abc"}});
  REQUIRE(j["clients"].size() == 1);
  CHECK(j["clients"][0]["client_id"] == "phone 1/é");
  CHECK(j["next"].is_null());
  j = rig.CallJson(200, "GET", "/api/v1/clients", {}, {{"username", "alice"}});
  REQUIRE(j["clients"].size() == 1);
  CHECK(j["clients"][0]["client_id"] == "phone 1/é");
  j = rig.CallJson(200, "GET", "/api/v1/clients", {}, {{"listener", "no-such-listener"}});
  CHECK(j["clients"].empty());
  rig.CallJson(400, "GET", "/api/v1/clients", {}, {{"limit", "0"}});
  net::Server::ConnectionQuery all;
  all.limit = SIZE_MAX;  // "all of them" (parleyd's ban kicks ask so)
  bool more = true;
  auto every = rig.server.ListConnections(all, &more);
  REQUIRE(every.ok());
  CHECK(every->size() == 2);
  CHECK_FALSE(more);

  j = rig.CallJson(200, "GET", "/api/v1/clients/{client_id}", {{"client_id", "phone 1/é"}});
  CHECK(j["client"]["client_id"] == "phone 1/é");
  REQUIRE(j["subscriptions"].size() == 1);
  CHECK(j["subscriptions"][0] == json{{"client_id", "phone 1/é"}, {"filter", "sensors/+/temp"}, {"qos", 1},
                                      {"no_local", false}, {"retain_as_published", false}, {"retain_handling", 0},
                                      {"subscription_id", 0}, {"share_group", nullptr}});
  j = rig.CallJson(404, "GET", "/api/v1/clients/{client_id}", {{"client_id", "nobody"}});
  CHECK(j["error"]["code"] == "not_found");

  rig.CallJson(400, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "abc"}}, {}, R"({"reason_code": 4})");
  rig.CallJson(400, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "abc"}}, {}, R"({"reason_code": "x"})");
  rig.CallJson(400, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "abc"}}, {},
               R"({"reason_code": 4294967448})");  // 152 + 2^32: not truncated to 0x98
  rig.CallJson(400, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "abc"}}, {}, "[1]");
  rig.CallJson(404, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "nobody"}});
  j = rig.CallJson(200, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "phone 1/é"}}, {},
                   R"({"reason_code": 152})");
  CHECK(j == json{{"kicked", true}});
  auto d = v5.Read();
  REQUIRE(d);
  REQUIRE(std::holds_alternative<mqtt::Disconnect>(*d));
  CHECK(std::get<mqtt::Disconnect>(*d).reason_code == rc::kAdministrativeAction);
  rig.CallJson(200, "POST", "/api/v1/clients/{client_id}/kick", {{"client_id", "abc"}});  // default 0x98
  CHECK_FALSE(v3.Read());
  CHECK(v3.closed());
  rig.AwaitConnected(0);
  // The persistent session stays, offline (the detach follows the close on the loop thread: wait for it, bounded).
  for (int i = 0; i < 200; ++i) {
    j = rig.CallJson(200, "GET", "/api/v1/sessions/{client_id}", {{"client_id", "phone 1/é"}});
    if (j["session"]["online"] == false) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(j["session"]["online"] == false);
  CHECK(j["session"]["expires_in_seconds"].is_number());
  rig.CallJson(404, "GET", "/api/v1/sessions/{client_id}", {{"client_id", "abc"}});  // clean: gone
}

TEST_CASE("admin sessions and subscriptions: list, show, drop") {
  Rig rig;
  {
    TestClient off(rig.port, Version::kV5);
    REQUIRE(off.Connect("off", false, 600).reason_code == 0);
    off.Subscribe("$share/grp/a/b", 1);
  }  // closed: "off" stays, offline
  TestClient on(rig.port, Version::kV311);
  REQUIRE(on.Connect("on", false).reason_code == 0);
  on.Subscribe("x/#", 2);
  rig.AwaitConnected(1);

  json j = rig.CallJson(200, "GET", "/api/v1/sessions");
  REQUIRE(j["sessions"].size() == 2);
  CHECK(j["next"].is_null());
  const json& off = j["sessions"][0];
  CHECK(off["client_id"] == "off");
  CHECK(off["online"] == false);
  CHECK(off["expiry_interval"] == 600);
  CHECK(off["username"].is_null());
  CHECK(off["subscriptions"] == 1);
  CHECK(off["queued"] == 0);
  CHECK(off["queued_bytes"] == 0);
  CHECK(off["inflight"] == 0);
  const json& on_j = j["sessions"][1];
  CHECK(on_j["online"] == true);
  CHECK(on_j["expiry_interval"] == 4294967295u);
  CHECK(on_j["expires_in_seconds"].is_null());

  j = rig.CallJson(200, "GET", "/api/v1/sessions", {}, {{"state", "online"}});
  REQUIRE(j["sessions"].size() == 1);
  CHECK(j["sessions"][0]["client_id"] == "on");
  j = rig.CallJson(200, "GET", "/api/v1/sessions", {}, {{"state", "offline"}, {"limit", "1"}});
  REQUIRE(j["sessions"].size() == 1);
  CHECK(j["next"].is_null());
  j = rig.CallJson(200, "GET", "/api/v1/sessions", {}, {{"limit", "1"}});
  CHECK(j["next"] == "off");
  rig.CallJson(400, "GET", "/api/v1/sessions", {}, {{"state", "asleep"}});

  j = rig.CallJson(200, "GET", "/api/v1/subscriptions");
  REQUIRE(j["subscriptions"].size() == 2);
  CHECK(j["subscriptions"][0]["client_id"] == "off");
  CHECK(j["subscriptions"][0]["filter"] == "a/b");
  CHECK(j["subscriptions"][0]["share_group"] == "grp");
  CHECK(j["subscriptions"][1]["filter"] == "x/#");
  CHECK(j["subscriptions"][1]["qos"] == 2);
  j = rig.CallJson(200, "GET", "/api/v1/subscriptions", {}, {{"limit", "1"}});
  REQUIRE(j["subscriptions"].size() == 1);
  CHECK(j["next"] == "off");
  j = rig.CallJson(200, "GET", "/api/v1/subscriptions", {}, {{"limit", "1"}, {"after", "off"}});
  REQUIRE(j["subscriptions"].size() == 1);
  CHECK(j["next"].is_null());
  j = rig.CallJson(200, "GET", "/api/v1/subscriptions", {}, {{"client_id", "on"}});
  REQUIRE(j["subscriptions"].size() == 1);

  j = rig.CallJson(200, "GET", "/api/v1/sessions/{client_id}", {{"client_id", "off"}});
  CHECK(j["session"]["client_id"] == "off");
  CHECK(j["subscriptions"].size() == 1);

  j = rig.CallJson(200, "DELETE", "/api/v1/sessions/{client_id}", {{"client_id", "on"}});
  CHECK(j == json{{"dropped", true}, {"kicked", true}});
  CHECK_FALSE(on.Read());  // 3.1.1: closed
  CHECK(on.closed());
  j = rig.CallJson(200, "DELETE", "/api/v1/sessions/{client_id}", {{"client_id", "off"}});
  CHECK(j == json{{"dropped", true}, {"kicked", false}});
  rig.CallJson(404, "DELETE", "/api/v1/sessions/{client_id}", {{"client_id", "off"}});
  j = rig.CallJson(200, "GET", "/api/v1/sessions");
  CHECK(j["sessions"].empty());
}

TEST_CASE("admin retained: list by filter with paging, text and binary payloads, get and delete") {
  Rig rig;
  TestClient pub(rig.port, Version::kV5);
  REQUIRE(pub.Connect("pub").reason_code == 0);
  auto retain = [&](const std::string& topic, const std::string& payload) {
    mqtt::Publish p;
    p.topic = topic;
    p.payload = payload;
    p.retain = true;
    pub.Send(p);
  };
  retain("sensors/1/temp", "21.5");
  retain("sensors/2/temp", std::string("\xff\x00\x01", 3));
  retain("big", std::string(5000, 'x'));
  retain("other/topic", "o");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (rig.broker.retained().Count() < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(rig.broker.retained().Count() == 4);

  json j = rig.CallJson(200, "GET", "/api/v1/retained");
  REQUIRE(j["retained"].size() == 4);
  CHECK(j["retained"][0]["topic"] == "big");
  CHECK(j["retained"][0]["payload_bytes"] == 5000);
  CHECK(j["retained"][0]["payload"].is_null());  // over 4 KiB in a list
  CHECK_FALSE(j["retained"][0].contains("payload_base64"));
  CHECK(j["retained"][2] == json{{"topic", "sensors/1/temp"}, {"qos", 0}, {"payload_bytes", 4}, {"payload", "21.5"},
                                 {"payload_base64", "MjEuNQ=="}});
  CHECK(j["retained"][3]["payload"].is_null());  // not UTF-8
  CHECK(j["retained"][3]["payload_base64"] == "/wAB");

  j = rig.CallJson(200, "GET", "/api/v1/retained", {}, {{"filter", "sensors/+/temp"}, {"limit", "1"}});
  REQUIRE(j["retained"].size() == 1);
  CHECK(j["next"] == "sensors/1/temp");
  j = rig.CallJson(200, "GET", "/api/v1/retained", {}, {{"filter", "sensors/+/temp"}, {"after", "sensors/1/temp"}});
  REQUIRE(j["retained"].size() == 1);
  CHECK(j["retained"][0]["topic"] == "sensors/2/temp");
  CHECK(j["next"].is_null());
  rig.CallJson(400, "GET", "/api/v1/retained", {}, {{"filter", "a/#/b"}});

  j = rig.CallJson(200, "GET", "/api/v1/retained/message", {}, {{"topic", "big"}});
  CHECK(j["retained"]["payload"] == std::string(5000, 'x'));
  CHECK(j["retained"]["payload_base64"].get<std::string>().size() == 6668);
  rig.CallJson(404, "GET", "/api/v1/retained/message", {}, {{"topic", "nothing"}});
  rig.CallJson(400, "GET", "/api/v1/retained/message", {}, {{"topic", "sensors/+"}});
  rig.CallJson(400, "GET", "/api/v1/retained/message");

  j = rig.CallJson(200, "DELETE", "/api/v1/retained/message", {}, {{"topic", "sensors/1/temp"}});
  CHECK(j == json{{"deleted", true}});
  rig.CallJson(404, "DELETE", "/api/v1/retained/message", {}, {{"topic", "sensors/1/temp"}});
  CHECK(rig.broker.retained().Count() == 3);
}

TEST_CASE("admin drain: clients are disconnected at the rate, v5 with 0x9C and the reference; new ones refused") {
  Rig rig;
  constexpr int kClients = 8;
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    const Version v = i % 2 ? Version::kV311 : Version::kV5;
    clients.push_back(std::make_unique<TestClient>(rig.port, v));
    REQUIRE(clients.back()->Connect("c" + std::to_string(i), false, 600).reason_code == 0);
  }
  rig.AwaitConnected(kClients);

  json j = rig.CallJson(200, "GET", "/api/v1/drain");
  CHECK(j["drain"]["active"] == false);
  CHECK(j["drain"]["server_reference"].is_null());
  rig.CallJson(400, "POST", "/api/v1/drain", {}, {}, R"({})");
  rig.CallJson(400, "POST", "/api/v1/drain", {}, {}, R"({"rate": 0})");
  rig.CallJson(400, "POST", "/api/v1/drain", {}, {}, R"({"rate": 1.5})");
  rig.CallJson(400, "POST", "/api/v1/drain", {}, {}, R"({"rate": 10, "server_reference": 5})");
  rig.CallJson(400, "POST", "/api/v1/drain", {}, {}, "{\"rate\": 10, \"server_reference\": \"a\\u0000b\"}");
  CHECK_FALSE(rig.broker.draining());

  const auto start = std::chrono::steady_clock::now();
  j = rig.CallJson(202, "POST", "/api/v1/drain", {}, {}, R"({"rate": 20, "server_reference": "node-b:1883"})");
  CHECK(j["drain"]["active"] == true);
  CHECK(j["drain"]["rate"] == 20);
  CHECK(j["drain"]["server_reference"] == "node-b:1883");
  CHECK(j["drain"]["started_at_ms"].is_number());
  CHECK(rig.broker.draining());
  std::vector<metrics::Family> families;
  rig.server.CollectDrainMetrics(families);
  REQUIRE(families.size() == 1);
  CHECK(families[0].name == "parley_draining");
  CHECK(families[0].samples.at(0).value == 1.0);

  // New clients are refused meanwhile.
  {
    TestClient late(rig.port, Version::kV5);
    mqtt::Connack ack = late.Connect("late");
    CHECK(ack.reason_code == rc::kUseAnotherServer);
    CHECK(ack.props.server_reference == std::optional<std::string>("node-b:1883"));
    TestClient late3(rig.port, Version::kV311);
    CHECK(late3.Connect("late3").reason_code == mqtt::rc311::kServerUnavailable);
  }

  std::vector<std::chrono::steady_clock::duration> at;
  for (int i = 0; i < kClients; ++i) {
    TestClient& c = *clients[static_cast<size_t>(i)];
    auto p = c.Read(std::chrono::seconds(5));
    if (i % 2 == 0) {
      REQUIRE(p);
      REQUIRE(std::holds_alternative<mqtt::Disconnect>(*p));
      const auto& d = std::get<mqtt::Disconnect>(*p);
      CHECK(d.reason_code == rc::kUseAnotherServer);
      CHECK(d.props.server_reference == std::optional<std::string>("node-b:1883"));
      p = c.Read(std::chrono::seconds(5));
    }
    CHECK_FALSE(p);
    CHECK(c.closed());
    at.push_back(std::chrono::steady_clock::now() - start);
  }
  // 8 clients at 20/s: the first tick counts, then one disconnect per 50 ms — about 0.45 s, never all at once.
  const auto last = *std::max_element(at.begin(), at.end());
  CHECK(last >= std::chrono::milliseconds(300));
  CHECK(last < std::chrono::seconds(3));

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  do {
    j = rig.CallJson(200, "GET", "/api/v1/drain");
    if (j["drain"]["remaining"] == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < until);
  CHECK(j["drain"]["remaining"] == 0);
  CHECK(j["drain"]["disconnected"] == kClients);
  // Every session stays.
  j = rig.CallJson(200, "GET", "/api/v1/sessions", {}, {{"state", "offline"}});
  const auto wait_offline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (j["sessions"].size() < static_cast<size_t>(kClients) && std::chrono::steady_clock::now() < wait_offline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    j = rig.CallJson(200, "GET", "/api/v1/sessions", {}, {{"state", "offline"}});
  }
  CHECK(j["sessions"].size() == static_cast<size_t>(kClients));

  j = rig.CallJson(200, "DELETE", "/api/v1/drain");
  CHECK(j["drain"]["active"] == false);
  CHECK(j["drain"]["disconnected"] == kClients);
  CHECK_FALSE(rig.broker.draining());
  families.clear();
  rig.server.CollectDrainMetrics(families);
  CHECK(families.at(0).samples.at(0).value == 0.0);
  TestClient back(rig.port, Version::kV5);
  mqtt::Connack ack = back.Connect("c0", false, 600);
  CHECK(ack.reason_code == 0);
  CHECK(ack.session_present);

  // A second drain starts its counts afresh; stopping twice is harmless.
  rig.AwaitConnected(1);
  j = rig.CallJson(202, "POST", "/api/v1/drain", {}, {}, R"({"rate": 1000})");
  CHECK(j["drain"]["server_reference"].is_null());
  CHECK(j["drain"]["disconnected"] == 0);
  auto d = back.Read();
  REQUIRE(d);
  CHECK(std::get<mqtt::Disconnect>(*d).reason_code == rc::kUseAnotherServer);
  CHECK_FALSE(std::get<mqtt::Disconnect>(*d).props.server_reference);
  rig.CallJson(200, "DELETE", "/api/v1/drain");
  j = rig.CallJson(200, "DELETE", "/api/v1/drain");
  CHECK(j["drain"]["active"] == false);
}

TEST_CASE("admin: a worker that cannot answer makes listing clients an error, not a hang") {
  broker::BrokerOptions o;
  o.sys_enabled = false;
  broker::Broker b(o, SystemClock::Instance(), 1);
  net::Server server(b, 1);  // never started: its loop runs no closures
  bool more = false;
  const auto start = std::chrono::steady_clock::now();
  auto r = server.ListConnections({}, &more, std::chrono::milliseconds(100));
  CHECK_FALSE(r.ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("admin: UTF-8 check for retained payloads") {
  CHECK(IsUtf8(""));
  CHECK(IsUtf8("plain"));
  CHECK(IsUtf8(std::string("a\0b", 3)));  // U+0000 is fine in JSON
  CHECK(IsUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  CHECK_FALSE(IsUtf8("\xff"));
  CHECK_FALSE(IsUtf8("\xc3"));            // truncated
  CHECK_FALSE(IsUtf8("\xc0\xaf"));        // overlong
  CHECK_FALSE(IsUtf8("\xe0\x80\xaf"));    // overlong
  CHECK_FALSE(IsUtf8("\xed\xa0\x80"));    // surrogate
  CHECK_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(IsUtf8("\x80"));
}

}  // namespace
}  // namespace parley::admin
