#include "broker/admin/alerts.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parley::admin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A registry whose single collector serves whatever the test put in `families`.
struct FakeMetrics {
  FakeMetrics() {
    registry.Add([this](std::vector<metrics::Family>& out) {
      std::lock_guard lock(mu);
      out.insert(out.end(), families.begin(), families.end());
    });
  }
  void Set(std::vector<metrics::Family> f) {
    std::lock_guard lock(mu);
    families = std::move(f);
  }
  std::mutex mu;
  std::vector<metrics::Family> families;
  metrics::Registry registry;
};

metrics::Family Scalar(std::string name, metrics::Type type, std::vector<metrics::Sample> samples) {
  metrics::Family f;
  f.name = std::move(name);
  f.type = type;
  f.samples = std::move(samples);
  return f;
}
metrics::Family Counter(std::string name, double v, metrics::Labels labels = {}) {
  return Scalar(std::move(name), metrics::Type::kCounter, {{std::move(labels), v}});
}
metrics::Family Gauge(std::string name, double v, metrics::Labels labels = {}) {
  return Scalar(std::move(name), metrics::Type::kGauge, {{std::move(labels), v}});
}
// A histogram with bounds 0.1, 0.5, 1 and the given (non-cumulative) bucket counts, plus `over` above 1.
metrics::Family Hist(std::string name, std::vector<uint64_t> buckets, uint64_t over = 0, metrics::Labels labels = {}) {
  metrics::HistogramSample h;
  h.labels = std::move(labels);
  h.bounds = {0.1, 0.5, 1.0};
  h.buckets = std::move(buckets);
  h.count = over;
  for (uint64_t b : h.buckets) h.count += b;
  metrics::Family f;
  f.name = std::move(name);
  f.type = metrics::Type::kHistogram;
  f.histograms.push_back(std::move(h));
  return f;
}

config::AlertRule Rule(std::string name, std::string metric, std::string function, std::string op, double threshold,
                       int64_t for_seconds = 0) {
  config::AlertRule r;
  r.name = std::move(name);
  r.metric = std::move(metric);
  r.function = std::move(function);
  r.op = std::move(op);
  r.threshold = threshold;
  r.for_duration = seconds(for_seconds);
  return r;
}

config::Alerts Config(std::vector<config::AlertRule> rules) {
  config::Alerts a;
  a.interval = seconds(10);
  a.rules = std::move(rules);
  return a;
}

struct Fixture {
  ManualClock clock;
  FakeMetrics metrics;
  std::vector<AlertEvent> events;
  std::unique_ptr<AlertEngine> engine;

  void Make(const config::Alerts& alerts) {
    auto r = AlertEngine::Create(alerts, metrics.registry, clock, [this](const AlertEvent& e) { events.push_back(e); });
    REQUIRE(r.ok());
    engine = std::move(r.value());
  }
  // Advances the clock by `d` and evaluates.
  void Step(milliseconds d) {
    clock.Advance(d);
    engine->EvaluateNow(clock.Now());
  }
  AlertRuleStatus Status(const std::string& name) {
    for (const AlertRuleStatus& s : engine->Snapshot().rules)
      if (s.rule.name == name) return s;
    FAIL("no rule " << name);
    return {};
  }
};

TEST_CASE("rate over a counter: per second between evaluations; fires and resolves") {
  Fixture f;
  f.Make(Config({Rule("storm", "parley_disconnects_total", "rate", ">", 10)}));
  f.metrics.Set({Counter("parley_disconnects_total", 100)});
  f.Step(seconds(0));
  CHECK_FALSE(f.Status("storm").value.has_value());  // the first round only takes a baseline
  CHECK(f.Status("storm").state == AlertState::kOk);

  f.metrics.Set({Counter("parley_disconnects_total", 300)});
  f.Step(seconds(10));
  REQUIRE(f.Status("storm").value.has_value());
  CHECK(*f.Status("storm").value == doctest::Approx(20));
  CHECK(f.Status("storm").state == AlertState::kFiring);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].firing);
  CHECK(f.events[0].value == doctest::Approx(20));
  CHECK(f.events[0].at_ms == f.clock.UnixMillis());
  CHECK(f.events[0].since_ms == f.clock.UnixMillis());

  f.metrics.Set({Counter("parley_disconnects_total", 350)});
  f.Step(seconds(10));  // 5/s
  CHECK(f.Status("storm").state == AlertState::kOk);
  REQUIRE(f.events.size() == 2);
  CHECK_FALSE(f.events[1].firing);
  CHECK(f.events[1].value == doctest::Approx(5));
  CHECK(f.events[1].since_ms == f.events[0].since_ms);  // the episode's start
  CHECK(f.events[1].at_ms == f.events[0].at_ms + 10'000);
}

// A clock whose wall time can drift from its steady time by a fraction of a millisecond (as the system clock's
// two readings do) or be stepped (NTP, an operator).
class DriftingClock final : public Clock {
 public:
  SteadyTime Now() const override { return now_; }
  int64_t UnixSeconds() const override { return UnixMillis() / 1000; }
  int64_t UnixMillis() const override { return unix_us_ / 1000; }
  void Advance(std::chrono::microseconds steady, int64_t wall_us) {
    now_ += steady;
    unix_us_ += wall_us;
  }

 private:
  SteadyTime now_{};
  int64_t unix_us_ = int64_t{1'700'000'000} * 1'000'000;
};

TEST_CASE("event times: firing after 'for' shows at - since >= for; a wall-clock step re-anchors") {
  DriftingClock clock;
  FakeMetrics metrics;
  std::vector<AlertEvent> events;
  auto r = AlertEngine::Create(Config({Rule("conns", "g", "value", ">", 1, 3)}), metrics.registry, clock,
                               [&](const AlertEvent& e) { events.push_back(e); });
  REQUIRE(r.ok());
  std::unique_ptr<AlertEngine> engine = std::move(r.value());
  metrics.Set({Gauge("g", 5)});
  engine->EvaluateNow(clock.Now());  // pending from here
  // Steady time moves 1,000.4 ms a round while the wall clock lags by a few microseconds: read separately and
  // truncated, the two readings could put the firing 2,999 ms after the start of a 3 s 'for'.
  for (int i = 0; i < 3; ++i) {
    clock.Advance(std::chrono::microseconds(1'000'400), 999'700);
    engine->EvaluateNow(clock.Now());
  }
  REQUIRE(events.size() == 1);
  CHECK(events[0].firing);
  CHECK(events[0].at_ms - events[0].since_ms >= 3000);

  // The wall clock is stepped an hour ahead: the next event's time follows it (re-anchored), and the episode's
  // start stays what it was.
  clock.Advance(std::chrono::seconds(10), int64_t{3600} * 1'000'000 + 10'000'000);
  metrics.Set({Gauge("g", 0)});
  engine->EvaluateNow(clock.Now());
  REQUIRE(events.size() == 2);
  CHECK_FALSE(events[1].firing);
  CHECK(events[1].since_ms == events[0].since_ms);
  CHECK(events[1].at_ms == clock.UnixMillis());
}

TEST_CASE("rate: a counter reset gives no value that round and keeps the state") {
  Fixture f;
  f.Make(Config({Rule("storm", "c_total", "rate", ">", 10)}));
  f.metrics.Set({Counter("c_total", 0)});
  f.Step(seconds(0));
  f.metrics.Set({Counter("c_total", 1000)});
  f.Step(seconds(10));
  REQUIRE(f.Status("storm").state == AlertState::kFiring);

  f.metrics.Set({Counter("c_total", 3)});  // the process restarted
  f.Step(seconds(10));
  CHECK_FALSE(f.Status("storm").value.has_value());
  CHECK(f.Status("storm").state == AlertState::kFiring);  // not resolved by a reset
  CHECK(f.events.size() == 1);

  f.metrics.Set({Counter("c_total", 13)});  // the new baseline is 3: 1/s
  f.Step(seconds(10));
  CHECK(*f.Status("storm").value == doctest::Approx(1));
  CHECK(f.Status("storm").state == AlertState::kOk);
  CHECK(f.events.size() == 2);
}

TEST_CASE("p99 over the histogram's observations since the previous evaluation") {
  Fixture f;
  f.Make(Config({Rule("slow", "write_seconds", "p99", ">", 0.5)}));
  // Lots of slow writes long ago: a cumulative p99 would be high forever.
  f.metrics.Set({Hist("write_seconds", {0, 0, 1000})});
  f.Step(seconds(0));
  CHECK_FALSE(f.Status("slow").value.has_value());

  f.metrics.Set({Hist("write_seconds", {100, 0, 1000})});  // 100 fast ones since
  f.Step(seconds(10));
  REQUIRE(f.Status("slow").value.has_value());
  CHECK(*f.Status("slow").value <= 0.1);
  CHECK(f.Status("slow").state == AlertState::kOk);

  f.Step(seconds(10));  // nothing observed in between: no value, state kept
  CHECK_FALSE(f.Status("slow").value.has_value());
  CHECK(f.Status("slow").state == AlertState::kOk);

  f.metrics.Set({Hist("write_seconds", {190, 0, 1010})});  // 90 fast, 10 slow: p99 in (0.5, 1]
  f.Step(seconds(10));
  REQUIRE(f.Status("slow").value.has_value());
  CHECK(*f.Status("slow").value > 0.5);
  CHECK(*f.Status("slow").value <= 1.0);
  CHECK(f.Status("slow").state == AlertState::kFiring);

  f.metrics.Set({Hist("write_seconds", {5, 0, 0})});  // reset: no value, still firing
  f.Step(seconds(10));
  CHECK_FALSE(f.Status("slow").value.has_value());
  CHECK(f.Status("slow").state == AlertState::kFiring);

  f.metrics.Set({Hist("write_seconds", {105, 0, 0})});
  f.Step(seconds(10));
  CHECK(f.Status("slow").state == AlertState::kOk);
  CHECK(f.events.size() == 2);
}

TEST_CASE("p50 and p90 merge the series that match the labels") {
  Fixture f;
  f.Make(Config({Rule("p50", "lat", "p50", ">", 0.4, 0), Rule("p90", "lat", "p90", ">", 0.4, 0)}));
  metrics::Family fam = Hist("lat", {0, 0, 0}, 0, {{"op", "a"}});
  fam.histograms.push_back(Hist("lat", {0, 0, 0}, 0, {{"op", "b"}}).histograms[0]);
  f.metrics.Set({fam});
  f.Step(seconds(0));
  fam.histograms[0] = Hist("lat", {80, 0, 0}, 0, {{"op", "a"}}).histograms[0];
  fam.histograms[1] = Hist("lat", {0, 0, 20}, 0, {{"op", "b"}}).histograms[0];
  f.metrics.Set({fam});
  f.Step(seconds(10));
  CHECK(*f.Status("p50").value <= 0.1);
  CHECK(*f.Status("p90").value > 0.5);
  CHECK(f.Status("p50").state == AlertState::kOk);
  CHECK(f.Status("p90").state == AlertState::kFiring);
}

TEST_CASE("for: pending until the condition has held that long, then firing") {
  Fixture f;
  f.Make(Config({Rule("conns", "parley_connections", "value", ">=", 3, 30)}));
  f.metrics.Set({Gauge("parley_connections", 5)});
  f.Step(seconds(0));
  const int64_t start_ms = f.clock.UnixMillis();
  CHECK(f.Status("conns").state == AlertState::kPending);
  CHECK(f.Status("conns").since_ms == start_ms);
  f.Step(seconds(20));
  CHECK(f.Status("conns").state == AlertState::kPending);
  CHECK(f.events.empty());
  f.Step(seconds(10));
  CHECK(f.Status("conns").state == AlertState::kFiring);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].since_ms == start_ms);
  CHECK(f.events[0].at_ms == start_ms + 30'000);
  CHECK(f.Status("conns").last_change_ms == start_ms + 30'000);
  CHECK(f.Status("conns").since_ms == start_ms);

  f.metrics.Set({Gauge("parley_connections", 1)});
  f.Step(seconds(10));
  CHECK(f.Status("conns").state == AlertState::kOk);
  CHECK_FALSE(f.Status("conns").since_ms.has_value());
  REQUIRE(f.events.size() == 2);
  CHECK_FALSE(f.events[1].firing);
}

TEST_CASE("pending that stops holding goes back to ok without a notification") {
  Fixture f;
  f.Make(Config({Rule("conns", "g", "value", ">", 3, 30)}));
  f.metrics.Set({Gauge("g", 5)});
  f.Step(seconds(0));
  CHECK(f.Status("conns").state == AlertState::kPending);
  f.metrics.Set({Gauge("g", 1)});
  f.Step(seconds(10));
  CHECK(f.Status("conns").state == AlertState::kOk);
  f.metrics.Set({Gauge("g", 5)});
  f.Step(seconds(25));  // pending again, from now: the earlier 10 s do not count
  f.Step(seconds(25));
  CHECK(f.Status("conns").state == AlertState::kPending);
  f.Step(seconds(5));
  CHECK(f.Status("conns").state == AlertState::kFiring);
  CHECK(f.events.size() == 1);
}

TEST_CASE("a missing metric keeps the state and does not take pending to firing") {
  Fixture f;
  f.Make(Config({Rule("conns", "g", "value", ">", 3, 30), Rule("gone", "g", "value", ">", 3, 0)}));
  f.metrics.Set({Gauge("g", 5)});
  f.Step(seconds(0));
  CHECK(f.Status("conns").state == AlertState::kPending);
  CHECK(f.Status("gone").state == AlertState::kFiring);
  f.metrics.Set({});
  f.Step(seconds(40));
  CHECK_FALSE(f.Status("conns").value.has_value());
  CHECK(f.Status("conns").state == AlertState::kPending);  // 40 s > for, but no value this round
  CHECK(f.Status("gone").state == AlertState::kFiring);    // not resolved by an absent metric
  CHECK(f.events.size() == 1);
  f.metrics.Set({Gauge("g", 5)});
  f.Step(seconds(1));
  CHECK(f.Status("conns").state == AlertState::kFiring);
}

TEST_CASE("labels select the samples; value sums them, max takes the largest") {
  Fixture f;
  config::AlertRule net = Rule("net", "parley_disconnects", "value", ">", 10);
  net.labels = {{"reason", "network"}};
  config::AlertRule all = Rule("all", "parley_disconnects", "value", ">", 10);
  config::AlertRule worst = Rule("worst", "parley_disconnects", "max", ">=", 100);
  config::AlertRule none = Rule("none", "parley_disconnects", "value", ">", 0);
  none.labels = {{"reason", "cosmic-rays"}};
  f.Make(Config({net, all, worst, none}));
  f.metrics.Set({Scalar("parley_disconnects", metrics::Type::kGauge,
                        {{{{"reason", "network"}, {"listener", "a"}}, 3},
                         {{{"reason", "network"}, {"listener", "b"}}, 4},
                         {{{"reason", "client"}, {"listener", "a"}}, 100}})});
  f.Step(seconds(0));
  CHECK(*f.Status("net").value == doctest::Approx(7));
  CHECK(f.Status("net").state == AlertState::kOk);
  CHECK(*f.Status("all").value == doctest::Approx(107));
  CHECK(f.Status("all").state == AlertState::kFiring);
  CHECK(*f.Status("worst").value == doctest::Approx(100));
  CHECK(f.Status("worst").state == AlertState::kFiring);
  CHECK_FALSE(f.Status("none").value.has_value());
}

TEST_CASE("each op compares as written") {
  Fixture f;
  f.Make(Config({Rule("gt", "g", "value", ">", 5), Rule("ge", "g", "value", ">=", 5), Rule("lt", "g", "value", "<", 5),
                 Rule("le", "g", "value", "<=", 5)}));
  f.metrics.Set({Gauge("g", 5)});
  f.Step(seconds(0));
  CHECK(f.Status("gt").state == AlertState::kOk);
  CHECK(f.Status("ge").state == AlertState::kFiring);
  CHECK(f.Status("lt").state == AlertState::kOk);
  CHECK(f.Status("le").state == AlertState::kFiring);
}

TEST_CASE("bad rules are refused with a Status, at creation and on reload") {
  ManualClock clock;
  FakeMetrics m;
  auto fails = [&](config::Alerts a, const char* what) {
    auto r = AlertEngine::Create(a, m.registry, clock);
    CHECK_FALSE(r.ok());
    CHECK_MESSAGE(r.status().message().find(what) != std::string::npos, r.status().message());
  };
  fails(Config({Rule("a", "g", "median", ">", 1)}), "unknown function");
  fails(Config({Rule("a", "g", "value", "==", 1)}), "unknown op");
  fails(Config({Rule("a", "g", "value", ">", 1), Rule("a", "h", "value", ">", 1)}), "used by another rule");
  fails(Config({Rule("", "g", "value", ">", 1)}), "name is empty");
  fails(Config({Rule("a", "", "value", ">", 1)}), "metric is empty");
  fails(Config({Rule("a", "g", "value", ">", std::nan(""))}), "finite");
  config::Alerts bad_url = Config({});
  bad_url.webhook_url = "ftp://example.com/";
  fails(bad_url, "http");

  auto ok = AlertEngine::Create(Config({Rule("a", "g", "value", ">", 1)}), m.registry, clock);
  REQUIRE(ok.ok());
  Status st = ok.value()->Reconfigure(Config({Rule("a", "g", "value", "!=", 1)}));
  CHECK_FALSE(st.ok());
  REQUIRE(ok.value()->Snapshot().rules.size() == 1);
  CHECK(ok.value()->Snapshot().rules[0].rule.op == ">");
}

TEST_CASE("reconfigure keeps the state of unchanged rules and resolves firing rules it removes or changes") {
  Fixture f;
  f.Make(Config({Rule("kept", "g", "value", ">", 1), Rule("changed", "g", "value", ">", 1),
                 Rule("removed", "g", "value", ">", 1), Rule("rate", "c_total", "rate", ">", 1000)}));
  f.metrics.Set({Gauge("g", 5), Counter("c_total", 0)});
  f.Step(seconds(0));
  REQUIRE(f.events.size() == 3);
  f.events.clear();

  Status st = f.engine->Reconfigure(Config({Rule("kept", "g", "value", ">", 1), Rule("changed", "g", "value", ">", 2),
                                            Rule("new", "g", "value", ">", 1), Rule("rate", "c_total", "rate", ">", 1000)}));
  REQUIRE(st.ok());
  const AlertsSnapshot s = f.engine->Snapshot();
  REQUIRE(s.rules.size() == 4);
  CHECK(s.rules[0].rule.name == "kept");
  CHECK(s.rules[0].state == AlertState::kFiring);
  CHECK(s.rules[1].rule.name == "changed");
  CHECK(s.rules[1].state == AlertState::kOk);
  CHECK(s.rules[2].rule.name == "new");
  CHECK(s.rules[2].state == AlertState::kOk);
  REQUIRE(f.events.size() == 2);  // "changed" and "removed" were firing
  CHECK(f.events[0].rule.name == "changed");
  CHECK_FALSE(f.events[0].firing);
  CHECK(f.events[0].reason == "rule_changed");
  CHECK(f.events[1].rule.name == "removed");
  CHECK(f.events[1].reason == "rule_removed");
  f.events.clear();

  // The unchanged rate rule kept its baseline: it has a value on the very next round.
  f.metrics.Set({Gauge("g", 5), Counter("c_total", 100)});
  f.Step(seconds(10));
  REQUIRE(f.Status("rate").value.has_value());
  CHECK(*f.Status("rate").value == doctest::Approx(10));
  // "kept" fires no second time; "changed" and "new" fire under their new definitions.
  REQUIRE(f.events.size() == 2);
  CHECK(f.events[0].rule.name == "changed");
  CHECK(f.events[1].rule.name == "new");
}

TEST_CASE("parley_alerts_firing per rule") {
  Fixture f;
  f.Make(Config({Rule("a", "g", "value", ">", 1), Rule("b", "g", "value", ">", 10)}));
  f.metrics.Set({Gauge("g", 5)});
  f.Step(seconds(0));
  std::vector<metrics::Family> out;
  f.engine->CollectMetrics(out);
  const metrics::Family* fam = metrics::Find(out, "parley_alerts_firing");
  REQUIRE(fam != nullptr);
  CHECK(fam->type == metrics::Type::kGauge);
  CHECK(metrics::Sum(out, "parley_alerts_firing", {{"rule", "a"}}) == 1.0);
  CHECK(metrics::Sum(out, "parley_alerts_firing", {{"rule", "b"}}) == 0.0);
  CHECK(metrics::Find(out, "parley_webhook_requests_total") == nullptr);  // no URL, no webhook
  CHECK(f.engine->FiringCount() == 1);

  // Registered in the registry it evaluates (as parleyd does): no deadlock, and visible to rules.
  f.metrics.registry.Add([&f](std::vector<metrics::Family>& o) { f.engine->CollectMetrics(o); });
  CHECK(f.engine->Reconfigure(Config({Rule("a", "g", "value", ">", 1), Rule("b", "g", "value", ">", 10),
                                      Rule("meta", "parley_alerts_firing", "value", ">=", 1)}))
            .ok());
  f.Step(seconds(10));
  CHECK(f.Status("meta").state == AlertState::kFiring);
}

struct FakeRouter : broker::AdminRouter {
  void Add(std::string_view method, std::string_view pattern, broker::AdminHandler handler) override {
    routes.push_back({std::string(method) + " " + std::string(pattern), std::move(handler)});
  }
  std::vector<std::pair<std::string, broker::AdminHandler>> routes;
};

TEST_CASE("GET /api/v1/alerts answers the documented JSON") {
  Fixture f;
  config::AlertRule r = Rule("disconnect-storm", "parley_disconnects_total", "rate", ">", 50, 30);
  r.labels = {{"reason", "network"}};
  f.Make(Config({r, Rule("quiet", "g", "value", ">", 1)}));
  f.metrics.Set({Counter("parley_disconnects_total", 0, {{"reason", "network"}})});
  f.Step(seconds(0));
  f.metrics.Set({Counter("parley_disconnects_total", 1000, {{"reason", "network"}})});
  f.Step(seconds(10));

  FakeRouter router;
  AddAlertRoutes(router, *f.engine);
  REQUIRE(router.routes.size() == 1);
  CHECK(router.routes[0].first == "GET /api/v1/alerts");
  broker::AdminRequest req;
  req.method = "GET";
  req.path = "/api/v1/alerts";
  const broker::AdminResponse resp = router.routes[0].second(req);
  CHECK(resp.status == 200);
  CHECK(resp.content_type == "application/json");
  const nlohmann::json j = nlohmann::json::parse(resp.body);
  REQUIRE(j["rules"].size() == 2);
  const nlohmann::json& a = j["rules"][0];
  CHECK(a["name"] == "disconnect-storm");
  CHECK(a["metric"] == "parley_disconnects_total");
  CHECK(a["function"] == "rate");
  CHECK(a["op"] == ">");
  CHECK(a["threshold"] == 50.0);
  CHECK(a["for_seconds"] == 30);
  CHECK(a["state"] == "pending");
  CHECK(a["value"].get<double>() == doctest::Approx(100));
  CHECK(a["since_ms"] == f.clock.UnixMillis());
  CHECK(a["last_change_ms"] == f.clock.UnixMillis());
  CHECK(a["labels"]["reason"] == "network");
  const nlohmann::json& q = j["rules"][1];
  CHECK(q["state"] == "ok");
  CHECK(q["value"].is_null());
  CHECK(q["since_ms"].is_null());
  CHECK(q["last_change_ms"].is_null());
  CHECK(j["webhook"]["url_set"] == false);
  CHECK(j["webhook"]["sent"] == 0);
  CHECK(j["webhook"]["failed"] == 0);
  CHECK(j["webhook"]["breaker"] == "closed");
}

TEST_CASE("firing is logged at warn, resolving at info") {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  sink->set_pattern("%l %v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("alerts-test", sink));
  {
    Fixture f;
    config::AlertRule r = Rule("conns", "parley_connections", "value", ">=", 3);
    r.description = "many clients";
    f.Make(Config({r}));
    f.metrics.Set({Gauge("parley_connections", 3)});
    f.Step(seconds(0));
    f.metrics.Set({Gauge("parley_connections", 0)});
    f.Step(seconds(10));
  }
  spdlog::set_default_logger(previous);
  const std::vector<std::string> lines = sink->last_formatted();
  bool fired = false, resolved = false;
  for (const std::string& l : lines) {
    if (l.rfind("warning alert firing: conns parley_connections value=3 >= 3", 0) == 0) {
      fired = true;
      CHECK(l.find("many clients") != std::string::npos);
    }
    if (l.rfind("info alert resolved: conns parley_connections value=0", 0) == 0) resolved = true;
  }
  CHECK_MESSAGE(fired, (lines.empty() ? std::string() : lines.front()));
  CHECK(resolved);
}

TEST_CASE("the evaluation thread evaluates at once and stops promptly") {
  FakeMetrics m;
  m.Set({Gauge("g", 5)});
  config::Alerts a = Config({Rule("a", "g", "value", ">", 1)});
  a.interval = seconds(3600);
  std::mutex mu;
  std::vector<AlertEvent> events;
  auto r = AlertEngine::Create(a, m.registry, SystemClock::Instance(), [&](const AlertEvent& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  REQUIRE(r.ok());
  AlertEngine& e = *r.value();
  e.Start();
  const auto deadline = std::chrono::steady_clock::now() + seconds(5);
  while (e.FiringCount() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
  CHECK(e.FiringCount() == 1);
  const auto t0 = std::chrono::steady_clock::now();
  e.Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < milliseconds(500));
  std::lock_guard lock(mu);
  CHECK(events.size() == 1);
}

TEST_CASE("a shorter interval set by a reload takes effect without waiting out the old one") {
  FakeMetrics m;
  m.Set({Gauge("g", 0)});
  config::Alerts a = Config({Rule("a", "g", "value", ">", 1)});
  a.interval = seconds(3600);
  auto r = AlertEngine::Create(a, m.registry, SystemClock::Instance());
  REQUIRE(r.ok());
  AlertEngine& e = *r.value();
  e.Start();
  std::this_thread::sleep_for(milliseconds(50));
  m.Set({Gauge("g", 5)});
  a.interval = seconds(1);
  REQUIRE(e.Reconfigure(a).ok());
  const auto deadline = std::chrono::steady_clock::now() + seconds(5);
  while (e.FiringCount() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  CHECK(e.FiringCount() == 1);
  e.Stop();
}

}  // namespace
}  // namespace parley::admin
