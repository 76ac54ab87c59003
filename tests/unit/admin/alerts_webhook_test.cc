// The alert engine and its webhook (base/webhook.h) end to end, against a receiver on 127.0.0.1.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "broker/admin/alerts.h"
#include "broker/core/version.h"
#include "tests/unit/http_receiver.h"

namespace parley::admin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Eventually;
using testing::Receiver;

// Fast retry and breaker timings (the defaults wait seconds).
WebhookOptions Fast() {
  WebhookOptions o;
  o.retry.initial = milliseconds(10);
  o.retry.max_delay = milliseconds(20);
  o.retry.jitter = Jitter::kNone;
  o.breaker.open_duration = milliseconds(400);
  o.breaker.max_open_duration = milliseconds(400);
  return o;
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
  auto made = AlertEngine::Create(a, registry, SystemClock::Instance(), {}, Fast());
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
  CHECK(reqs[0].headers.at("user-agent") == std::string("parley/") + broker::kParleyVersion);
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
