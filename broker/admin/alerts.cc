#include "broker/admin/alerts.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <utility>

#include "broker/admin/json_util.h"
#include "broker/core/version.h"

namespace parley::admin {
namespace {

enum class Fn : uint8_t { kValue, kMax, kRate, kQuantile };

struct Parsed {
  Fn fn = Fn::kValue;
  double q = 0;  // kQuantile
};

std::optional<Parsed> ParseFunction(const std::string& f) {
  if (f == "value") return Parsed{Fn::kValue, 0};
  if (f == "max") return Parsed{Fn::kMax, 0};
  if (f == "rate") return Parsed{Fn::kRate, 0};
  if (f == "p50") return Parsed{Fn::kQuantile, 0.5};
  if (f == "p90") return Parsed{Fn::kQuantile, 0.9};
  if (f == "p99") return Parsed{Fn::kQuantile, 0.99};
  return std::nullopt;
}

bool KnownOp(const std::string& op) { return op == ">" || op == ">=" || op == "<" || op == "<="; }

bool Holds(const std::string& op, double v, double threshold) {
  if (op == ">") return v > threshold;
  if (op == ">=") return v >= threshold;
  if (op == "<") return v < threshold;
  if (op == "<=") return v <= threshold;
  return false;
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

// `{k="v",...}` for log lines; "" without labels.
std::string LabelText(const config::AlertRule& r) {
  if (r.labels.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < r.labels.size(); ++i) {
    if (i) s += ",";
    s += r.labels[i].first + "=\"" + r.labels[i].second + "\"";
  }
  return s + "}";
}

// One histogram counter went down: the series (or the process) restarted since the previous snapshot.
bool HistogramReset(const metrics::HistogramSample& later, const metrics::HistogramSample& earlier) {
  if (later.bounds != earlier.bounds || later.buckets.size() != earlier.buckets.size()) return true;
  if (later.count < earlier.count) return true;
  for (size_t i = 0; i < later.buckets.size(); ++i) {
    if (later.buckets[i] < earlier.buckets[i]) return true;
  }
  return false;
}

nlohmann::json Nullable(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}
template <typename T>
nlohmann::json Nullable(const std::optional<T>& v) {
  if (!v) return nullptr;
  return *v;
}

nlohmann::json LabelsJson(const config::AlertRule& r) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : r.labels) j[k] = v;
  return j;
}

}  // namespace

const char* AlertStateName(AlertState s) {
  switch (s) {
    case AlertState::kOk:
      return "ok";
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
  }
  return "?";
}

// The webhook payload (docs/operations.md, "Alerts"): each POST is
//
//   {"alerts": [Alert, ...], "node": "<host name>", "version": "<parley version>"}
//
// with one Alert per rule that fired or resolved, in the order it happened (several in one POST when they
// queue up; never reordered for one rule):
//
//   {"name": "disconnect-storm",          the rule's name (unique; use it to match firing with resolved)
//    "state": "firing" | "resolved",
//    "metric": "parley_disconnects_total", "labels": {"reason": "network"},   the rule's selector
//    "function": "rate", "op": ">", "threshold": 100,
//    "value": 181.5,                      the value that fired it / the value when it resolved (null: none)
//    "severity": "warning", "description": "...",
//    "since_ms": 1764300000000,           Unix ms the condition began to hold (start of the episode)
//    "at_ms": 1764300060000}              Unix ms it fired / resolved
//
// and, only on a resolved alert ended by a configuration reload rather than by the metric,
// "reason": "rule_removed" | "rule_changed". While the receiver is unreachable (the circuit breaker is open)
// only the latest notification per rule is kept, so after an outage a receiver may get a "resolved" whose
// "firing" it never saw: since_ms still says when that episode began.
nlohmann::json AlertEventJson(const AlertEvent& e) {
  nlohmann::json j;
  j["name"] = e.rule.name;
  j["state"] = e.firing ? "firing" : "resolved";
  j["metric"] = e.rule.metric;
  j["labels"] = LabelsJson(e.rule);
  j["function"] = e.rule.function;
  j["value"] = std::isfinite(e.value) ? nlohmann::json(e.value) : nlohmann::json(nullptr);
  j["threshold"] = e.rule.threshold;
  j["op"] = e.rule.op;
  j["severity"] = e.rule.severity;
  j["description"] = e.rule.description;
  j["since_ms"] = e.since_ms;
  j["at_ms"] = e.at_ms;
  if (!e.reason.empty()) j["reason"] = e.reason;
  return j;
}

struct AlertEngine::Rule {
  explicit Rule(config::AlertRule d) : def(std::move(d)), fn(*ParseFunction(def.function)) {}

  config::AlertRule def;
  Parsed fn;
  AlertState state = AlertState::kOk;
  std::optional<double> value;
  SteadyTime since{};  // the condition holds since (pending, firing)
  int64_t since_ms = 0;
  std::optional<int64_t> last_change_ms;
  // Baselines of the previous evaluation:
  std::optional<double> prev_sum;  // rate
  SteadyTime prev_time{};
  std::optional<metrics::HistogramSample> prev_hist;  // quantiles

  std::optional<double> Compute(const std::vector<metrics::Family>& families, SteadyTime now) {
    switch (fn.fn) {
      case Fn::kValue:
        return metrics::Sum(families, def.metric, def.labels);
      case Fn::kMax:
        return metrics::Max(families, def.metric, def.labels);
      case Fn::kRate: {
        const std::optional<double> cur = metrics::Sum(families, def.metric, def.labels);
        if (!cur) {
          prev_sum.reset();  // the series is gone: the next one starts a new baseline
          return std::nullopt;
        }
        if (prev_sum && now <= prev_time) return std::nullopt;  // no time has passed: keep the baseline
        std::optional<double> rate;
        if (prev_sum && *cur >= *prev_sum) {
          rate = (*cur - *prev_sum) / std::chrono::duration<double>(now - prev_time).count();
        }  // else the first round, or a counter reset: no value this round
        prev_sum = cur;
        prev_time = now;
        return rate;
      }
      case Fn::kQuantile: {
        std::optional<metrics::HistogramSample> h = metrics::MergedHistogram(families, def.metric, def.labels);
        if (!h) {
          prev_hist.reset();
          return std::nullopt;
        }
        std::optional<double> q;
        if (prev_hist && !HistogramReset(*h, *prev_hist)) q = metrics::Quantile(metrics::Subtract(*h, *prev_hist), fn.q);
        prev_hist = std::move(h);
        return q;
      }
    }
    return std::nullopt;
  }
};

Status AlertEngine::Validate(const config::Alerts& alerts) {
  if (alerts.interval.count() <= 0) return Status::Error("alerts.interval must be positive");
  if (!alerts.webhook_url.empty()) {
    Status st = Webhook::ValidateUrl(alerts.webhook_url);
    if (!st.ok()) return Status::Error("alerts.webhook_url: " + st.message());
    if (alerts.webhook_timeout.count() <= 0) return Status::Error("alerts.webhook_timeout must be positive");
  }
  std::set<std::string, std::less<>> names;
  for (size_t i = 0; i < alerts.rules.size(); ++i) {
    const config::AlertRule& r = alerts.rules[i];
    const std::string where = "alerts.rule[" + std::to_string(i) + "]" + (r.name.empty() ? "" : " (" + r.name + ")");
    if (r.name.empty()) return Status::Error(where + ": name is empty");
    if (!names.insert(r.name).second) return Status::Error(where + ": the name is used by another rule");
    if (r.metric.empty()) return Status::Error(where + ": metric is empty");
    if (!ParseFunction(r.function))
      return Status::Error(where + ": unknown function \"" + r.function + "\" (value, max, rate, p50, p90, p99)");
    if (!KnownOp(r.op)) return Status::Error(where + ": unknown op \"" + r.op + "\" (>, >=, <, <=)");
    if (!std::isfinite(r.threshold)) return Status::Error(where + ": threshold must be a finite number");
    if (r.for_duration.count() < 0) return Status::Error(where + ": for must not be negative");
  }
  return Status::Ok();
}

Result<std::unique_ptr<AlertEngine>> AlertEngine::Create(const config::Alerts& alerts, metrics::Registry& registry,
                                                         const Clock& clock, EventSink sink,
                                                         WebhookOptions webhook_options) {
  Status st = Validate(alerts);
  if (!st.ok()) return st;
  return std::unique_ptr<AlertEngine>(
      new AlertEngine(alerts, registry, clock, std::move(sink), std::move(webhook_options)));
}

AlertEngine::AlertEngine(const config::Alerts& alerts, metrics::Registry& registry, const Clock& clock,
                         EventSink sink, WebhookOptions webhook_options)
    : registry_(registry),
      clock_(clock),
      sink_(std::move(sink)),
      webhook_template_(std::move(webhook_options)),
      node_(HostName()),
      config_(alerts) {
  for (const config::AlertRule& r : alerts.rules) rules_.push_back(std::make_unique<Rule>(r));
  webhook_ = MakeWebhook(alerts);
}

AlertEngine::~AlertEngine() { Stop(); }

std::unique_ptr<Webhook> AlertEngine::MakeWebhook(const config::Alerts& alerts) const {
  if (alerts.webhook_url.empty()) return nullptr;
  WebhookOptions o = webhook_template_;
  o.url = alerts.webhook_url;
  o.timeout = alerts.webhook_timeout;
  o.target = "alert";
  o.items_field = "alerts";
  o.envelope = {{"node", node_}, {"version", broker::kParleyVersion}};
  if (o.user_agent.empty()) o.user_agent = std::string("parley/") + broker::kParleyVersion;
  return std::make_unique<Webhook>(std::move(o), clock_);
}

void AlertEngine::Start() {
  std::lock_guard lock(mu_);
  if (running_ || stop_) return;
  running_ = true;
  if (webhook_) webhook_->Start();
  thread_ = std::thread([this] { Run(); });
}

void AlertEngine::Stop() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
  std::lock_guard eval(eval_mu_);  // webhook_ is only replaced under eval_mu_
  if (webhook_) webhook_->Stop();
}

void AlertEngine::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    const SteadyTime started = clock_.Now();
    EvaluateNow(started);
    lock.lock();
    // Re-read the interval on every wake-up: a reload may have changed it.
    while (!stop_) {
      const SteadyTime next = started + config_.interval;
      const SteadyTime now = clock_.Now();
      if (now >= next) break;
      cv_.wait_for(lock, next - now);
    }
  }
}

int64_t AlertEngine::UnixMs(SteadyTime now) {
  const int64_t wall = clock_.UnixMillis() + std::chrono::floor<Millis>(now - clock_.Now()).count();
  const auto from_anchor = [&] { return anchor_unix_ms_ + std::chrono::floor<Millis>(now - anchor_steady_).count(); };
  if (!anchored_ || std::llabs(wall - from_anchor()) > 1000) {
    anchor_unix_ms_ = wall;
    anchor_steady_ = now;
    anchored_ = true;
  }
  return from_anchor();
}

void AlertEngine::EvaluateNow(SteadyTime now) {
  std::lock_guard eval(eval_mu_);
  // Without mu_: the registry may call this engine's own CollectMetrics.
  const std::vector<metrics::Family> families = registry_.Collect();
  const int64_t now_ms = UnixMs(now);
  std::vector<AlertEvent> events;
  {
    std::lock_guard lock(mu_);
    for (const std::unique_ptr<Rule>& rp : rules_) {
      Rule& r = *rp;
      r.value = r.Compute(families, now);
      if (!r.value) continue;  // no value: the state stays, and pending does not advance
      const bool holds = Holds(r.def.op, *r.value, r.def.threshold);
      auto fire = [&] {
        r.state = AlertState::kFiring;
        r.last_change_ms = now_ms;
        events.push_back(AlertEvent{r.def, true, *r.value, r.since_ms, now_ms, ""});
      };
      switch (r.state) {
        case AlertState::kOk:
          if (!holds) break;
          r.since = now;
          r.since_ms = now_ms;
          if (r.def.for_duration.count() <= 0) {
            fire();
          } else {
            r.state = AlertState::kPending;
            r.last_change_ms = now_ms;
          }
          break;
        case AlertState::kPending:
          if (!holds) {
            r.state = AlertState::kOk;
            r.last_change_ms = now_ms;
            spdlog::debug("alert {}: no longer pending ({}={} {} {} does not hold)", r.def.name, r.def.function,
                          *r.value, r.def.op, r.def.threshold);
          } else if (now - r.since >= r.def.for_duration) {
            fire();
          }
          break;
        case AlertState::kFiring:
          if (holds) break;
          r.state = AlertState::kOk;
          r.last_change_ms = now_ms;
          events.push_back(AlertEvent{r.def, false, *r.value, r.since_ms, now_ms, ""});
          break;
      }
    }
  }
  Emit(events);
}

void AlertEngine::Emit(const std::vector<AlertEvent>& events) {
  for (const AlertEvent& e : events) {
    const config::AlertRule& r = e.rule;
    if (e.firing) {
      spdlog::warn("alert firing: {} {} {}={} {} {}{}{} (for {}s, severity {}){}{}", r.name, r.metric, r.function,
                   e.value, r.op, r.threshold, r.labels.empty() ? "" : " labels ", LabelText(r),
                   r.for_duration.count(), r.severity, r.description.empty() ? "" : ": ", r.description);
    } else if (e.reason.empty()) {
      spdlog::info("alert resolved: {} {} {}={} (no longer {} {}){}{}, after {}s", r.name, r.metric, r.function,
                   e.value, r.op, r.threshold, r.labels.empty() ? "" : " labels ", LabelText(r),
                   (e.at_ms - e.since_ms) / 1000);
    } else {
      spdlog::info("alert resolved: {} {} ({} by a configuration reload while firing)", r.name, r.metric,
                   e.reason == "rule_removed" ? "rule removed" : "rule changed");
    }
    if (webhook_) webhook_->Enqueue(r.name, AlertEventJson(e));
    if (sink_) sink_(e);
  }
}

Status AlertEngine::Reconfigure(const config::Alerts& alerts) {
  Status st = Validate(alerts);
  if (!st.ok()) return st;
  std::lock_guard eval(eval_mu_);
  std::vector<AlertEvent> events;
  std::unique_ptr<Webhook> old_webhook;
  size_t kept = 0;
  {
    std::lock_guard lock(mu_);
    const int64_t now_ms = UnixMs(clock_.Now());
    std::vector<std::unique_ptr<Rule>> next;
    for (const config::AlertRule& def : alerts.rules) {
      auto same = std::find_if(rules_.begin(), rules_.end(), [&](const auto& r) { return r && r->def == def; });
      if (same != rules_.end()) {
        next.push_back(std::move(*same));
        ++kept;
      } else {
        next.push_back(std::make_unique<Rule>(def));
      }
    }
    for (const std::unique_ptr<Rule>& old : rules_) {
      if (!old || old->state != AlertState::kFiring) continue;
      const bool changed = std::any_of(alerts.rules.begin(), alerts.rules.end(),
                                       [&](const config::AlertRule& d) { return d.name == old->def.name; });
      events.push_back(AlertEvent{old->def, false, old->value.value_or(std::nan("")), old->since_ms, now_ms,
                                  changed ? "rule_changed" : "rule_removed"});
    }
    spdlog::info("alerts: {} rule(s) after reload: {} unchanged, {} new or changed, {} removed or replaced",
                 next.size(), kept, next.size() - kept, rules_.size() - kept);
    rules_ = std::move(next);
    if (alerts.webhook_url != config_.webhook_url || alerts.webhook_timeout != config_.webhook_timeout) {
      old_webhook = std::move(webhook_);
      webhook_ = MakeWebhook(alerts);
      if (webhook_ && running_ && !stop_) webhook_->Start();
    }
    config_ = alerts;
  }
  cv_.notify_all();  // the interval may have changed
  Emit(events);
  old_webhook.reset();  // Stop(): prompt even when its receiver hangs
  return Status::Ok();
}

AlertsSnapshot AlertEngine::Snapshot() const {
  AlertsSnapshot s;
  std::lock_guard lock(mu_);
  for (const std::unique_ptr<Rule>& r : rules_) {
    AlertRuleStatus st;
    st.rule = r->def;
    st.state = r->state;
    st.value = r->value;
    if (r->state != AlertState::kOk) st.since_ms = r->since_ms;
    st.last_change_ms = r->last_change_ms;
    s.rules.push_back(std::move(st));
  }
  if (webhook_) {
    s.webhook_url_set = true;
    s.webhook = webhook_->stats();
  }
  return s;
}

size_t AlertEngine::FiringCount() const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(std::count_if(rules_.begin(), rules_.end(),
                                           [](const auto& r) { return r->state == AlertState::kFiring; }));
}

void AlertEngine::CollectMetrics(std::vector<metrics::Family>& out) const {
  metrics::Family f;
  f.name = "parley_alerts_firing";
  f.help = "1 while the alert rule is firing, else 0";
  f.type = metrics::Type::kGauge;
  std::lock_guard lock(mu_);
  for (const std::unique_ptr<Rule>& r : rules_) {
    f.samples.push_back({{{"rule", r->def.name}}, r->state == AlertState::kFiring ? 1.0 : 0.0});
  }
  out.push_back(std::move(f));
  if (webhook_) webhook_->CollectMetrics(out);
}

nlohmann::json AlertsJson(const AlertsSnapshot& snapshot) {
  nlohmann::json rules = nlohmann::json::array();
  for (const AlertRuleStatus& s : snapshot.rules) {
    rules.push_back({{"name", s.rule.name},
                     {"metric", s.rule.metric},
                     {"labels", LabelsJson(s.rule)},
                     {"function", s.rule.function},
                     {"op", s.rule.op},
                     {"threshold", s.rule.threshold},
                     {"for_seconds", s.rule.for_duration.count()},
                     {"severity", s.rule.severity},
                     {"description", s.rule.description},
                     {"state", AlertStateName(s.state)},
                     {"value", Nullable(s.value)},
                     {"since_ms", Nullable(s.since_ms)},
                     {"last_change_ms", Nullable(s.last_change_ms)}});
  }
  const Webhook::Stats& w = snapshot.webhook;
  nlohmann::json webhook = {{"url_set", snapshot.webhook_url_set},
                            {"sent", w.sent},
                            // never to be delivered: refused by the receiver, retries used up, queue full
                            {"failed", w.failed + w.dropped},
                            {"breaker", CircuitBreaker::StateName(w.breaker)},
                            {"queued", w.queued}};
  return {{"rules", std::move(rules)}, {"webhook", std::move(webhook)}};
}

void AddAlertRoutes(broker::AdminRouter& router, AlertEngine& engine) {
  router.Add("GET", "/api/v1/alerts",
             [&engine](const broker::AdminRequest&) { return Ok(AlertsJson(engine.Snapshot())); });
}

}  // namespace parley::admin
