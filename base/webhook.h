// Webhook: delivers JSON notifications to one HTTP(S) endpoint from its own thread, so that a slow or dead
// receiver never delays the code that raises them. Generic, and its own library (parley_webhook: parley_base
// + libcurl + nlohmann_json) so that any layer may use it without the others: the broker's alert engine
// (broker/admin/alerts.h, target "alert") and the IM layer's push notifications (im/push.h, targets
// "push_webhook" and "push_gorush"), each with its own target, envelope and items field.
//
// Body of each POST (Content-Type: application/json, User-Agent: options.user_agent, "parley" when empty —
// callers pass "parley/<version>", which base/ does not know):
//
//   <envelope> with <items_field> set to [item, ...]      e.g. {"alerts": [...], "node": "...", "version": "..."}
//
// Items are posted in the order they were enqueued, several per POST (up to max_batch) when they queue up.
//
// Delivery, in the order of what can go wrong:
// - A POST is a success on 2xx. 408, 429, 5xx and network errors (refused, TLS, timeout) are retried with
//   `retry` (base/backoff.h), at least as late as a Retry-After header asks; other answers (3xx — redirects are
//   not followed —, 4xx) mean the request itself is wrong: its items are dropped at once and logged.
// - Every attempt goes through a CircuitBreaker (base/circuit_breaker.h); retried failures count against it,
//   answers that blame the request do not. While it is open nothing is sent: queued items are held back
//   (counted as breaker_open) and reduced to the latest item per key, so that once the receiver recovers it
//   gets, for each key, the state that holds now — once, not a backlog. The first POST after the open
//   duration is the breaker's half-open probe.
// - With retry.max_attempts >= breaker.consecutive_failures (the defaults: 5 and 5) a receiver that stays
//   down opens the breaker before the retries run out, so nothing is dropped; if retries do run out first,
//   the items are dropped and logged at error with their keys.
// - The queue holds at most max_queue items; beyond that the oldest is dropped (counted, logged).
// - Items for one key are never reordered: a batch is retried (or held back) ahead of everything queued
//   after it, and coalescing keeps the newest item of a key.
// Nothing is dropped silently: every drop is counted in stats() and logged with the keys concerned.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/backoff.h"
#include "base/circuit_breaker.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"

namespace parley {

struct WebhookOptions {
  std::string url;                 // http:// or https://
  std::string target = "webhook";  // label of parley_webhook_requests_total{target=...} and log prefix
  std::string items_field = "items";
  nlohmann::json envelope = nlohmann::json::object();  // the other fields of every body
  Millis timeout{5'000};                              // a whole attempt: connect, TLS, send, answer
  std::string ca_file;                                // PEM CAs for https; "" = the system's store
  std::string user_agent;                             // "" = "parley"
  size_t max_queue = 1'000;
  size_t max_batch = 100;
  BackoffPolicy retry = DefaultRetry();
  CircuitBreaker::Options breaker = DefaultBreaker();

  static BackoffPolicy DefaultRetry() {
    BackoffPolicy p;
    p.initial = Millis(1'000);
    p.multiplier = 2;
    p.max_delay = Millis(30'000);
    p.max_attempts = 5;
    p.jitter = Jitter::kEqual;
    p.max_retry_after = Millis(300'000);
    return p;
  }
  static CircuitBreaker::Options DefaultBreaker() {
    CircuitBreaker::Options o;
    o.consecutive_failures = 5;
    o.failure_ratio = 0.5;
    o.min_calls = 20;
    o.open_duration = Millis(10'000);
    o.max_open_duration = Millis(300'000);
    return o;
  }
};

class Webhook {
 public:
  // Monotonic since construction. ok/http_error/network_error count POSTs; the item counts count items.
  struct Stats {
    uint64_t requests_ok = 0;
    uint64_t requests_http_error = 0;     // answered, not 2xx
    uint64_t requests_network_error = 0;  // no answer: refused, TLS, timeout
    uint64_t breaker_open = 0;            // items held back because the breaker was open (each counted once)
    uint64_t sent = 0;                    // items delivered (2xx)
    uint64_t failed = 0;                  // items given up on: rejected by the receiver or retries used up
    uint64_t dropped = 0;                 // items dropped because the queue was full, or left at Stop()
    uint64_t superseded = 0;              // items replaced by a newer one of the same key while held back
    size_t queued = 0;                    // items waiting now (the batch in flight included)
    CircuitBreaker::State breaker = CircuitBreaker::State::kClosed;
  };

  // `clock` must outlive the Webhook; it drives the breaker and the retry delays (waits are real time, so
  // use SystemClock outside of tests). Does not start the thread.
  Webhook(WebhookOptions options, const Clock& clock);
  ~Webhook();  // Stop()
  Webhook(const Webhook&) = delete;
  Webhook& operator=(const Webhook&) = delete;

  // The URL is usable: http:// or https://, no spaces or control characters.
  static Status ValidateUrl(const std::string& url);

  // Starts the delivery thread; items enqueued before are kept. Once; any thread.
  void Start();
  // Stops the thread promptly, even in the middle of a POST to a receiver that does not answer (the POST is
  // abandoned). Items still queued are dropped and logged. Idempotent; any thread but the delivery thread.
  void Stop();

  // Queues `item` for delivery; `key` groups items whose order matters and of which only the newest counts
  // while the receiver is unreachable (the alert rule's name, a push's user). Never blocks on the network. Any thread.
  void Enqueue(std::string key, nlohmann::json item);

  Stats stats() const;  // any thread
  const WebhookOptions& options() const { return options_; }

  // parley_webhook_requests_total{target, outcome="ok"|"http_error"|"network_error"|"breaker_open"}
  // (breaker_open counts items held back, the others POSTs). Any thread.
  void CollectMetrics(std::vector<metrics::Family>& out) const;

 private:
  struct Item {
    std::string key;
    nlohmann::json body;
    bool held = false;  // already counted as breaker_open
  };
  struct PostResult {
    enum class Kind { kOk, kHttpError, kNetworkError, kStopped } kind = Kind::kOk;
    long status = 0;                    // HTTP status when answered
    std::optional<Millis> retry_after;  // from a Retry-After header
    std::string error;                  // for the log
  };

  void Run();  // the delivery thread
  PostResult Post(const std::string& body);
  std::string Encode(const std::vector<Item>& batch) const;
  // Moves `batch` back in front of the queue, keeps the newest item per key, counts breaker_open. mu_ held.
  void HoldBackLocked(std::vector<Item>& batch);
  void GiveUp(std::vector<Item>& batch, const std::string& why);
  bool stopping() const;

  const WebhookOptions options_;
  const Clock& clock_;
  CircuitBreaker breaker_;
  void* multi_ = nullptr;  // CURLM*, owned; used by the delivery thread, woken by Stop()

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_:
  std::deque<Item> queue_;
  size_t in_flight_ = 0;
  bool stop_ = false;
  bool started_ = false;
  std::thread thread_;

  std::atomic<uint64_t> requests_ok_{0}, http_error_{0}, network_error_{0}, breaker_open_{0};
  std::atomic<uint64_t> sent_{0}, failed_{0}, dropped_{0}, superseded_{0};
};

}  // namespace parley
