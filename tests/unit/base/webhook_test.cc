// The outbound webhook (base/webhook.h) against a scripted receiver on 127.0.0.1: body and headers, retries,
// Retry-After, the circuit breaker and coalescing while it is open, ordering, Stop, the bounded queue.
#include "base/webhook.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/http_receiver.h"

namespace parley {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;
using testing::Eventually;
using testing::Receiver;

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
  CHECK(r.headers["user-agent"] == "parley");  // the default; callers name their version (alerts.cc)
  CHECK(r.headers.count("expect") == 0);
  const nlohmann::json j = r.Json();
  CHECK(j["node"] == "n1");
  REQUIRE(j["alerts"].size() == 1);
  CHECK(j["alerts"][0] == Item("r1", 1));
  // `sent` is counted just before the batch leaves the queue: wait for both.
  CHECK(Eventually([&] { return w.stats().sent == 1 && w.stats().queued == 0; }));
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

TEST_CASE("the User-Agent is the caller's") {
  Receiver rx;
  WebhookOptions o = Fast(rx.url());
  o.user_agent = "parley/9.9.9";
  Webhook w(o, SystemClock::Instance());
  w.Start();
  w.Enqueue("r1", Item("r1", 1));
  REQUIRE(rx.WaitFor(1));
  CHECK(rx.requests()[0].headers["user-agent"] == "parley/9.9.9");
}

}  // namespace
}  // namespace parley
