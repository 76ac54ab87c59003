#include "broker/admin/webhook.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/admin/alerts.h"
#include "broker/core/version.h"

namespace parley::admin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

// A tiny HTTP/1.1 receiver on 127.0.0.1: one connection at a time, answers each request from a script (then
// the default reply) and records what it got. A "hang" reply reads the request and never answers (the
// connection stays open until the receiver is destroyed). Every wait in it is bounded.
class Receiver {
 public:
  struct Request {
    std::string method, path, body;
    std::map<std::string, std::string> headers;  // names lower-cased
    Steady::time_point at;
    nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
  };
  struct Reply {
    int status = 200;
    std::vector<std::string> headers;  // "Name: value"
    bool hang = false;
    milliseconds delay{0};  // before answering
  };

  explicit Receiver(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    close(fd_);
    for (int c : hung_) close(c);
  }

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void Script(std::vector<Reply> replies) {
    std::lock_guard lock(mu_);
    script_.assign(replies.begin(), replies.end());
  }
  void SetDefault(Reply r) {
    std::lock_guard lock(mu_);
    default_ = std::move(r);
  }
  // Waits up to `timeout` for at least n requests.
  bool WaitFor(size_t n, milliseconds timeout = milliseconds(5000)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return requests_.size();
  }

  // A port nothing listens on (connections to it are refused).
  static uint16_t DeadPort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      Serve(c);
    }
  }

  // Reads one request (bounded by 5 s and the stop flag); false when the peer went away first.
  bool Read(int c, Request* r) {
    std::string buf;
    const auto deadline = Steady::now() + seconds(5);
    size_t header_end = std::string::npos, body_len = 0;
    while (!stop_ && Steady::now() < deadline) {
      if (header_end == std::string::npos && (header_end = buf.find("\r\n\r\n")) != std::string::npos) {
        std::string head = buf.substr(0, header_end);
        size_t line_end = head.find("\r\n");
        std::string first = head.substr(0, line_end);
        r->method = first.substr(0, first.find(' '));
        r->path = first.substr(first.find(' ') + 1);
        r->path = r->path.substr(0, r->path.find(' '));
        size_t pos = line_end;
        while (pos != std::string::npos && pos < head.size()) {
          size_t next = head.find("\r\n", pos + 2);
          std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
          size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(), ::tolower);
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            r->headers[name] = value;
          }
          pos = next;
        }
        if (r->headers.count("content-length")) body_len = std::stoul(r->headers["content-length"]);
      }
      if (header_end != std::string::npos && buf.size() >= header_end + 4 + body_len) {
        r->body = buf.substr(header_end + 4, body_len);
        r->at = Steady::now();
        return true;
      }
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char tmp[4096];
      const ssize_t n = read(c, tmp, sizeof(tmp));
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    return false;
  }

  void Serve(int c) {
    Request r;
    if (!Read(c, &r)) {
      close(c);
      return;
    }
    Reply reply;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(r);
      if (!script_.empty()) {
        reply = script_.front();
        script_.pop_front();
      } else {
        reply = default_;
      }
    }
    cv_.notify_all();
    if (reply.hang) {
      hung_.push_back(c);
      return;
    }
    const auto until = Steady::now() + reply.delay;
    while (!stop_ && Steady::now() < until) std::this_thread::sleep_for(milliseconds(5));
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\nContent-Length: 2\r\nConnection: close\r\n";
    for (const std::string& h : reply.headers) out += h + "\r\n";
    out += "\r\nok";
    (void)!write(c, out.data(), out.size());
    close(c);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> hung_;  // receiver thread only, then the destructor

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Reply> script_;
  Reply default_;
  std::vector<Request> requests_;
};

// Fast timings so that the tests take well under a second each (except the Retry-After one).
WebhookOptions Fast(const std::string& url) {
  WebhookOptions o;
  o.url = url;
  o.target = "test";
  o.items_field = "alerts";
  o.envelope = {{"node", "n1"}};
  o.timeout = milliseconds(2000);
  o.retry.initial = milliseconds(10);
  o.retry.max_delay = milliseconds(20);
  o.retry.max_attempts = 5;
  o.retry.jitter = Jitter::kNone;
  o.breaker.consecutive_failures = 3;
  o.breaker.failure_ratio = 0;
  o.breaker.open_duration = milliseconds(400);
  o.breaker.max_open_duration = milliseconds(400);
  return o;
}

nlohmann::json Item(const std::string& key, int seq) { return {{"name", key}, {"seq", seq}}; }

// All items the receiver got, in order, across requests.
std::vector<nlohmann::json> Items(const Receiver& rx) {
  std::vector<nlohmann::json> out;
  for (const Receiver::Request& r : rx.requests()) {
    nlohmann::json j = r.Json();
    if (!j.is_object() || !j["alerts"].is_array()) continue;
    for (const nlohmann::json& i : j["alerts"]) out.push_back(i);
  }
  return out;
}

template <typename Pred>
bool Eventually(Pred pred, milliseconds timeout = milliseconds(5000)) {
  const auto deadline = Steady::now() + timeout;
  while (!pred()) {
    if (Steady::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

TEST_CASE("delivers a JSON POST with the envelope, the items, and the documented headers") {
  Receiver rx;
  Webhook w(Fast(rx.url()), SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  REQUIRE(rx.WaitFor(1));
  Receiver::Request r = rx.requests()[0];
  CHECK(r.method == "POST");
  CHECK(r.path == "/hook");
  CHECK(r.headers["content-type"] == "application/json");
  CHECK(r.headers["user-agent"] == std::string("parley/") + broker::kParleyVersion);
  CHECK(r.headers.count("expect") == 0);
  const nlohmann::json j = r.Json();
  CHECK(j["node"] == "n1");
  REQUIRE(j["alerts"].size() == 1);
  CHECK(j["alerts"][0] == Item("r1", 1));
  CHECK(Eventually([&] { return w.stats().sent == 1; }));
  const Webhook::Stats s = w.stats();
  CHECK(s.requests_ok == 1);
  CHECK(s.queued == 0);
  CHECK(s.breaker == CircuitBreaker::State::kClosed);

  std::vector<metrics::Family> out;
  w.CollectMetrics(out);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"target", "test"}, {"outcome", "ok"}}) == 1.0);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"outcome", "http_error"}}) == 0.0);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"outcome", "network_error"}}) == 0.0);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"outcome", "breaker_open"}}) == 0.0);
}

TEST_CASE("a 500 is retried, and the same body then delivered") {
  Receiver rx;
  rx.Script({{500, {}, false, {}}});
  Webhook w(Fast(rx.url()), SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  REQUIRE(rx.WaitFor(2));
  const auto reqs = rx.requests();
  CHECK(reqs[0].body == reqs[1].body);
  CHECK(Eventually([&] { return w.stats().sent == 1; }));
  const Webhook::Stats s = w.stats();
  CHECK(s.requests_http_error == 1);
  CHECK(s.requests_ok == 1);
  CHECK(s.failed == 0);
}

TEST_CASE("Retry-After on a 503 is honoured") {
  Receiver rx;
  rx.Script({{503, {"Retry-After: 1"}, false, {}}});
  Webhook w(Fast(rx.url()), SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  REQUIRE(rx.WaitFor(2, milliseconds(5000)));
  const auto reqs = rx.requests();
  CHECK(reqs[1].at - reqs[0].at >= milliseconds(950));
}

TEST_CASE("a 4xx is not retried, and a redirect is not followed") {
  Receiver rx;
  Receiver other;
  rx.Script({{400, {}, false, {}}, {302, {"Location: " + other.url()}, false, {}}});
  Webhook w(Fast(rx.url()), SystemClock::Instance());
  w.Start();
  w.Enqueue("bad", Item("bad", 1));
  REQUIRE(Eventually([&] { return w.stats().failed == 1; }));
  w.Enqueue("moved", Item("moved", 1));
  REQUIRE(Eventually([&] { return w.stats().failed == 2; }));
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(rx.count() == 2);
  CHECK(other.count() == 0);
  CHECK(w.stats().requests_http_error == 2);
  CHECK(w.stats().breaker == CircuitBreaker::State::kClosed);  // the receiver answered: not its failure
}

TEST_CASE("a dead endpoint opens the breaker; nothing is tried while open; recovery delivers the latest state") {
  const uint16_t port = Receiver::DeadPort();
  WebhookOptions o = Fast("http://127.0.0.1:" + std::to_string(port) + "/hook");
  o.breaker.open_duration = milliseconds(1000);
  o.breaker.max_open_duration = milliseconds(1000);
  Webhook w(o, SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));  // firing
  REQUIRE(Eventually([&] { return w.stats().breaker == CircuitBreaker::State::kOpen; }));
  const Webhook::Stats opened = w.stats();
  CHECK(opened.requests_network_error == 3);  // the breaker's threshold, below the 5 attempts retry allows
  CHECK(opened.failed == 0);                  // held, not given up

  // While open: items are held and counted, older ones of a key replaced; no connection attempts.
  w.Enqueue("r2", Item("r2", 1));
  w.Enqueue("r1", Item("r1", 2));  // resolved
  REQUIRE(Eventually([&] { return w.stats().breaker_open == 3; }));
  std::this_thread::sleep_for(milliseconds(150));
  const Webhook::Stats held = w.stats();
  CHECK(held.requests_network_error == 3);
  CHECK(held.superseded == 1);
  CHECK(held.queued == 2);

  // The receiver comes back on the same port: the half-open probe carries the held items and closes it.
  Receiver rx(port);
  REQUIRE(rx.WaitFor(1, milliseconds(5000)));
  REQUIRE(Eventually([&] { return w.stats().sent == 2; }));
  CHECK(w.stats().breaker == CircuitBreaker::State::kClosed);
  const std::vector<nlohmann::json> items = Items(rx);
  REQUIRE(items.size() == 2);
  CHECK(items[0] == Item("r2", 1));
  CHECK(items[1] == Item("r1", 2));  // only the latest of r1, after r2 (which came before it)
  std::vector<metrics::Family> out;
  w.CollectMetrics(out);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"outcome", "network_error"}}) == 3.0);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"outcome", "breaker_open"}}) == 3.0);
  CHECK(metrics::Sum(out, "parley_webhook_requests_total", {{"outcome", "ok"}}) == 1.0);
}

TEST_CASE("a failed half-open probe reopens the breaker without more attempts") {
  const uint16_t port = Receiver::DeadPort();
  WebhookOptions o = Fast("http://127.0.0.1:" + std::to_string(port) + "/hook");
  o.breaker.open_duration = milliseconds(200);
  o.breaker.max_open_duration = milliseconds(200);
  Webhook w(o, SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  REQUIRE(Eventually([&] { return w.stats().requests_network_error >= 4; }));  // 3, then a probe
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(w.stats().requests_network_error <= 5);  // one probe per open period, not a retry storm
  CHECK(w.stats().failed == 0);
}

TEST_CASE("items of one key arrive in order, across retries and batches") {
  Receiver rx;
  rx.Script({{500, {}, false, {}}, {200, {}, false, milliseconds(30)}, {503, {}, false, {}}});
  WebhookOptions o = Fast(rx.url());
  o.max_batch = 3;
  Webhook w(o, SystemClock::Instance());
  w.Start();
  const int kItems = 40;
  for (int i = 0; i < kItems; ++i) w.Enqueue("k" + std::to_string(i % 3), Item("k" + std::to_string(i % 3), i));
  REQUIRE(Eventually([&] { return w.stats().sent == kItems; }));
  const std::vector<nlohmann::json> items = Items(rx);
  REQUIRE(items.size() >= kItems);
  // Delivered in enqueue order (a retried batch is resent whole before anything later).
  std::vector<int> seqs;
  for (const auto& i : items) seqs.push_back(i["seq"].get<int>());
  std::vector<int> dedup;  // retried bodies repeat; drop the repeats of a failed POST
  for (int s : seqs)
    if (dedup.empty() || s > dedup.back()) dedup.push_back(s);
  REQUIRE(dedup.size() == kItems);
  for (int i = 0; i < kItems; ++i) CHECK(dedup[static_cast<size_t>(i)] == i);
  for (const Receiver::Request& r : rx.requests()) CHECK(r.Json()["alerts"].size() <= 3);
}

TEST_CASE("Stop returns promptly while the receiver hangs") {
  Receiver rx;
  rx.SetDefault({200, {}, true, {}});
  WebhookOptions o = Fast(rx.url());
  o.timeout = milliseconds(30'000);
  Webhook w(o, SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  w.Enqueue("r2", Item("r2", 1));
  REQUIRE(rx.WaitFor(1));
  std::this_thread::sleep_for(milliseconds(50));
  const auto t0 = Steady::now();
  w.Stop();
  CHECK(Steady::now() - t0 < milliseconds(500));
  const Webhook::Stats s = w.stats();
  CHECK(s.sent == 0);
  CHECK(s.dropped == 2);  // reported, not silently lost
  CHECK(s.queued == 0);
}

TEST_CASE("the queue is bounded: the oldest items are dropped and counted") {
  WebhookOptions o = Fast("http://127.0.0.1:9/");
  o.max_queue = 3;
  Webhook small(o, SystemClock::Instance());
  for (int i = 0; i < 5; ++i) small.Enqueue("k" + std::to_string(i), Item("k", i));
  CHECK(small.stats().dropped == 2);
  CHECK(small.stats().queued == 3);
  small.Stop();
  CHECK(small.stats().dropped == 5);
}

TEST_CASE("URL validation") {
  CHECK(Webhook::ValidateUrl("http://example.com/x").ok());
  CHECK(Webhook::ValidateUrl("HTTPS://example.com").ok());
  CHECK_FALSE(Webhook::ValidateUrl("ftp://example.com").ok());
  CHECK_FALSE(Webhook::ValidateUrl("http://").ok());
  CHECK_FALSE(Webhook::ValidateUrl("http:///path").ok());
  CHECK_FALSE(Webhook::ValidateUrl("http://exa mple.com").ok());
  CHECK_FALSE(Webhook::ValidateUrl("file:///etc/passwd").ok());
}

TEST_CASE("https to a server whose certificate is not trusted fails as a network error") {
  // The plain-HTTP receiver cannot complete a TLS handshake: curl must fail, never fall back to http.
  Receiver rx;
  WebhookOptions o = Fast("https://127.0.0.1:" + std::to_string(rx.port()) + "/hook");
  o.retry.max_attempts = 1;
  o.timeout = milliseconds(500);
  Webhook w(o, SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  REQUIRE(Eventually([&] { return w.stats().requests_network_error == 1; }));
  CHECK(w.stats().sent == 0);
}

// The alert engine and its webhook end to end: what a receiver gets when a rule fires and resolves.
TEST_CASE("alert engine posts firing and resolved notifications in the documented format") {
  Receiver rx;
  metrics::Registry registry;
  std::atomic<double> conns{0};
  registry.Add([&](std::vector<metrics::Family>& out) {
    metrics::Family f;
    f.name = "parley_connections";
    f.samples.push_back({{}, conns.load()});
    out.push_back(f);
  });
  config::Alerts a;
  a.interval = seconds(3600);
  a.webhook_url = rx.url("/alerts");
  a.webhook_timeout = milliseconds(2000);
  config::AlertRule r;
  r.name = "many-connections";
  r.metric = "parley_connections";
  r.function = "value";
  r.op = ">=";
  r.threshold = 3;
  r.severity = "critical";
  r.description = "three or more clients";
  a.rules.push_back(r);
  auto made = AlertEngine::Create(a, registry, SystemClock::Instance(), {}, Fast(""));
  REQUIRE(made.ok());
  AlertEngine& e = *made.value();
  registry.Add([&e](std::vector<metrics::Family>& out) { e.CollectMetrics(out); });
  e.Start();  // evaluates once at start: nothing fires
  conns = 3;
  e.EvaluateNow(SystemClock::Instance().Now());
  REQUIRE(rx.WaitFor(1));
  conns = 0;
  e.EvaluateNow(SystemClock::Instance().Now());
  REQUIRE(rx.WaitFor(2));
  const auto reqs = rx.requests();
  CHECK(reqs[0].path == "/alerts");
  const nlohmann::json fired = reqs[0].Json();
  CHECK(fired["version"] == broker::kParleyVersion);
  CHECK(fired["node"].is_string());
  CHECK_FALSE(fired["node"].get<std::string>().empty());
  REQUIRE(fired["alerts"].size() == 1);
  const nlohmann::json& f = fired["alerts"][0];
  CHECK(f["name"] == "many-connections");
  CHECK(f["state"] == "firing");
  CHECK(f["metric"] == "parley_connections");
  CHECK(f["function"] == "value");
  CHECK(f["value"] == 3.0);
  CHECK(f["threshold"] == 3.0);
  CHECK(f["op"] == ">=");
  CHECK(f["severity"] == "critical");
  CHECK(f["description"] == "three or more clients");
  CHECK(f["since_ms"].is_number_integer());
  CHECK(f["at_ms"].is_number_integer());
  CHECK(f["labels"].is_object());
  const nlohmann::json resolved = reqs[1].Json();
  REQUIRE(resolved["alerts"].size() == 1);
  const nlohmann::json& res = resolved["alerts"][0];
  CHECK(res["state"] == "resolved");
  CHECK(res["value"] == 0.0);
  CHECK(res["since_ms"] == f["since_ms"]);
  CHECK(res["at_ms"].get<int64_t>() >= f["at_ms"].get<int64_t>());

  REQUIRE(Eventually([&] { return e.Snapshot().webhook.sent == 2; }));
  const nlohmann::json j = AlertsJson(e.Snapshot());
  CHECK(j["webhook"]["url_set"] == true);
  CHECK(j["webhook"]["sent"] == 2);
  CHECK(j["webhook"]["breaker"] == "closed");
  const std::vector<metrics::Family> fams = registry.Collect();
  CHECK(metrics::Sum(fams, "parley_webhook_requests_total", {{"target", "alert"}, {"outcome", "ok"}}) == 2.0);
  CHECK(metrics::Sum(fams, "parley_alerts_firing", {{"rule", "many-connections"}}) == 0.0);
  e.Stop();
}

}  // namespace
}  // namespace parley::admin
