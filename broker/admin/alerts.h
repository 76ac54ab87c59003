// Alert rules over the metrics ([alerts] in the configuration; docs/operations.md, "Alerts").
//
// Every `interval` the engine collects the metrics registry once and computes each rule's value:
//   value      sum of the family's samples whose labels include the rule's `labels` (metrics::Sum)
//   max        the largest of them (metrics::Max)
//   rate       (sum now - sum at the previous evaluation) / seconds between them; none on the first round,
//              and none when the sum went down (a counter reset: the process or the series restarted)
//   p50 p90 p99  the quantile of the histogram observations made since the previous evaluation (the merged
//              matching series, minus the previous snapshot); none on the first round, after a reset, or
//              when nothing was observed in between
// and compares it with `threshold` using `op`. Each rule is a small state machine:
//
//   ok ──(condition holds)──► pending ──(held for `for`)──► firing ──(condition false)──► ok   "resolved"
//         (for = 0: straight to firing)       pending ──(condition false)──► ok            (no notification)
//
// A round without a value (family absent, no matching sample, first rate round, counter reset, no
// observations) leaves the state as it is and does not take a pending rule to firing.
//
// Firing is logged at warn ("alert firing: <name> <metric> <function>=<value> <op> <threshold> ..."),
// resolving at info ("alert resolved: ..."), and both are posted to `webhook_url` when one is set (see
// base/webhook.h; the payload is described at AlertEventJson in alerts.cc and in docs/operations.md).
//
// Threads: the engine runs its evaluations on its own thread (Start/Stop); EvaluateNow, Reconfigure,
// Snapshot and CollectMetrics may be called from any thread. Evaluations are serialised; the registry is
// collected without the engine's state lock, so the engine's own collector may be registered in it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/circuit_breaker.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "base/webhook.h"
#include "broker/api/admin.h"
#include "broker/config/config.h"

namespace parley::admin {

enum class AlertState : uint8_t { kOk, kPending, kFiring };
const char* AlertStateName(AlertState s);  // "ok", "pending", "firing"

// What GET /api/v1/alerts shows.
struct AlertRuleStatus {
  config::AlertRule rule;
  AlertState state = AlertState::kOk;
  std::optional<double> value;            // the last evaluation's value; nullopt when it had none
  std::optional<int64_t> since_ms;        // Unix ms the condition has held since (pending, firing)
  std::optional<int64_t> last_change_ms;  // Unix ms of the last change of state; nullopt: none yet
};
struct AlertsSnapshot {
  std::vector<AlertRuleStatus> rules;  // in configuration order
  bool webhook_url_set = false;
  Webhook::Stats webhook;  // zeros when no URL is set
};

// A rule that fired or resolved: what the log line, the webhook and an EventSink get.
struct AlertEvent {
  config::AlertRule rule;
  bool firing = true;     // false: resolved
  double value = 0;       // the value that made it fire / resolve (NaN: none, for a rule removed by a reload)
  int64_t since_ms = 0;   // Unix ms: when the condition began to hold (the start of this firing episode)
  int64_t at_ms = 0;      // Unix ms: when it fired / resolved
  std::string reason;     // "" normally; "rule_removed" / "rule_changed" when a reload ended the episode
};
// One element of the webhook's "alerts" array (see alerts.cc for the format).
nlohmann::json AlertEventJson(const AlertEvent& e);

class AlertEngine {
 public:
  // Called for each event on the evaluating thread, after it is logged and queued for the webhook, in
  // order, with no engine lock held (it may call Snapshot). For tests and other notifiers.
  using EventSink = std::function<void(const AlertEvent&)>;

  // The rules make sense: names unique and non-empty, metric set, function and op known, threshold finite,
  // `for` not negative; interval positive; webhook URL empty or http(s); timeout positive.
  static Status Validate(const config::Alerts& alerts);

  // The engine for `alerts`, or the Validate error. `registry` and `clock` must outlive the engine. Creates
  // the webhook (not started) when a URL is set; `webhook_options` lets tests shorten its retry and breaker
  // timings (url, timeout, target, envelope are filled in by the engine).
  static Result<std::unique_ptr<AlertEngine>> Create(const config::Alerts& alerts, metrics::Registry& registry,
                                                     const Clock& clock, EventSink sink = {},
                                                     WebhookOptions webhook_options = {});
  ~AlertEngine();  // Stop()
  AlertEngine(const AlertEngine&) = delete;
  AlertEngine& operator=(const AlertEngine&) = delete;

  // Starts the evaluation thread (first evaluation at once, then every interval) and the webhook's thread.
  // Once; any thread.
  void Start();
  // Stops both promptly (an evaluation in progress finishes; a hanging POST is abandoned). Idempotent.
  void Stop();

  // One evaluation at `now` (the engine's clock's time base). Any thread; serialised with the thread's own.
  void EvaluateNow(SteadyTime now);

  // Applies a reloaded [alerts]. Rules whose definition is unchanged (same name, every field equal) keep
  // their state, value and rate / quantile baseline; new and changed rules start ok. A rule that was firing
  // and is removed or changed is reported resolved (logged and posted), so that receivers do not keep an
  // alert open forever. A changed webhook URL or timeout replaces the webhook (notifications still queued
  // for the old URL are dropped and logged). Invalid input is refused with the Validate error and nothing
  // changes. Any thread.
  Status Reconfigure(const config::Alerts& alerts);

  AlertsSnapshot Snapshot() const;  // any thread
  size_t FiringCount() const;    // any thread (for /api/v1/status "alerts_firing")

  // parley_alerts_firing{rule} (0 or 1 per rule) and, with a webhook, parley_webhook_requests_total{target=
  // "alert", outcome}. Register it: registry.Add([&e](auto& out) { e.CollectMetrics(out); }). Any thread.
  void CollectMetrics(std::vector<metrics::Family>& out) const;

 private:
  struct Rule;  // a rule and its state (alerts.cc)

  AlertEngine(const config::Alerts& alerts, metrics::Registry& registry, const Clock& clock, EventSink sink,
              WebhookOptions webhook_options);
  std::unique_ptr<Webhook> MakeWebhook(const config::Alerts& alerts) const;
  // Unix ms of a steady time point: one anchor (wall clock, steady clock) so that the times of one run stay
  // consistent — a rule that fired after `for` shows at_ms - since_ms >= for, and a resolution never predates
  // its firing. Re-anchored when the wall clock has been stepped by more than a second. eval_mu_ held.
  int64_t UnixMs(SteadyTime now);
  void Emit(const std::vector<AlertEvent>& events);  // eval_mu_ held, mu_ not
  void Run();

  metrics::Registry& registry_;
  const Clock& clock_;
  const EventSink sink_;
  const WebhookOptions webhook_template_;
  const std::string node_;  // this host's name, for the webhook body

  int64_t anchor_unix_ms_ = 0;  // UnixMs's anchor (eval_mu_)
  SteadyTime anchor_steady_{};
  bool anchored_ = false;

  std::mutex eval_mu_;  // serialises evaluations and reconfigurations; taken before mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_ (and, for webhook_ and rules_ replacement, eval_mu_ too: holding eval_mu_ alone is
  // enough to read them):
  config::Alerts config_;
  std::vector<std::unique_ptr<Rule>> rules_;
  std::unique_ptr<Webhook> webhook_;
  bool running_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// GET /api/v1/alerts (docs/admin-api.md, "Alerts"). `engine` must outlive the router's server.
void AddAlertRoutes(broker::AdminRouter& router, AlertEngine& engine);
// The response body of GET /api/v1/alerts.
nlohmann::json AlertsJson(const AlertsSnapshot& snapshot);

}  // namespace parley::admin
