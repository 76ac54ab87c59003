// PushDispatcher: push notifications for users with no device online (IM.md, "Files and push";
// docs/protocol.md, "Push notifications"). The IM writer hands it a PushJob per offline member of a conversation
// that got a countable message; the dispatcher decides, on its own thread, whether and what to push, and hands
// the push to the configured providers' Webhooks (base/webhook.h), which deliver it from their own threads.
//
// Per user, in this order:
// - Collapse: the first job goes out at once; jobs arriving within `collapse_window` after a push are merged
//   into ONE push sent when the window ends (and that push opens the next window). Jobs that arrive before the
//   dispatcher has taken the first one are merged into it. A merged push carries the newest job's conv_id, seq,
//   sender and preview, `count` = the jobs merged, `mention` = any of them mentioned the user.
// - Mute: the writer sends jobs of muted conversations only when they mention the user, with job.muted set;
//   those are dropped (outcome "muted") unless the user's `mentions_when_muted` setting is on.
// - Targets: the user's registered tokens whose provider is configured ("gorush" also needs platform ios,
//   android or huawei); others are skipped and counted. No usable token: outcome "no_token".
// - Badge: the user's total unread, looked up when the push is built (after collapsing), not at Enqueue.
// - Preview: sender, text preview and group name only when the user's `preview` setting is on; otherwise a
//   generic text ("New message", "N new messages"). The preview is cut at Enqueue to preview_max_chars code
//   points on a UTF-8 boundary, "…" appended when cut.
// The look-ups (Lookups::user, Lookups::badge) run on the dispatcher's thread, once per push.
//
// Delivery: one Webhook per configured provider (target "push_webhook" / "push_gorush"): bounded queue,
// retries with backoff and Retry-After, a circuit breaker; coalescing key = the user (gorush: user + "/" +
// platform, one notification per platform), so while a provider is down only the newest push of each user is
// kept. A slow or dead provider never slows the broker: Enqueue is O(1) under a short lock (the preview cut
// before it), never waits for the dispatcher, and at most max_pending users are tracked (pending, or within
// their collapse window); a job for one more user is dropped and counted.
//
// Generic webhook: POST <url>, Content-Type application/json, User-Agent "parley/<version>":
//   {"pushes": [{"user": "bob", "provider": "webhook",
//                "tokens": [{"token": "...", "platform": "ios"|"android"|"huawei"|"web"}, ...],
//                "conv_id": "g_...", "seq": 42, "server_ts": 1700000000000, "badge": 7, "count": 3,
//                "mention": false,
//                "sender": "alice", "preview": "hi there", "conv_name": "Team"}, ...],   <- preview only
//    "node": "<host name>", "version": "<parleyd version>"}
//   seq, server_ts (ms since the Unix epoch), badge and count are numbers; sender and preview appear only
//   when the user allows previews, conv_name only then and only for groups. Several pushes (several users)
//   may share one POST, in the order they were made.
// gorush (https://github.com/appleboy/gorush): POST <url>/api/push with {"notifications": [...]}, one element
// per platform of the user's gorush tokens:
//   {"tokens": ["..."], "platform": 1 (iOS) | 2 (Android) | 3 (Huawei),
//    "title": "Team" | "alice"  (preview only: the group's name, else the sender),
//    "message": "alice: hi there" (group) | "hi there" (direct) | "New message" | "3 new messages",
//    "priority": "high",
//    "data": {"conv_id": "g_...", "seq": "42", "count": "3", "badge": "7", "mention": "false"},  (strings: FCM)
//    iOS:     "badge": 7, "topic": "<options.topic, if set>", "collapse_id": conv_id, "thread-id": conv_id,
//             "sound": "default", "mutable_content": true
//    Android: "collapse_key": conv_id (legacy FCM), "android": {"collapse_key": conv_id, "priority": "high",
//             "notification": {"tag": conv_id}} (FCM v1: the phone keeps one notification per conversation)
//    Huawei:  "huawei_data": the data object as a JSON string}
//
// Metrics (CollectMetrics):
//   parley_push_jobs_total{outcome}  counter. Every job ends in exactly one outcome: "sent" (the newest job of
//       a push handed to the provider queues), "collapsed" (merged into a newer job's push), "muted", "no_token",
//       "dropped" (max_pending reached, or the dispatcher stopped with the job pending).
//   parley_push_tokens_skipped_total  counter: registered tokens skipped (provider not configured, or a platform
//       the provider cannot reach), counted per push.
//   parley_push_pending_users  gauge: users with jobs not yet handed to a provider (waiting for the dispatcher
//       or for the end of their collapse window).
//   parley_webhook_requests_total{target="push_webhook"|"push_gorush", outcome}  each provider's Webhook.
//
// Threads: Enqueue, CollectMetrics, stats and the accessors from any thread; Start and Stop from the owner's.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/backoff.h"
#include "base/circuit_breaker.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "base/webhook.h"

namespace parley::im {

// [push.webhook] / [push.gorush].
struct PushProviderOptions {
  std::string url;  // webhook: where pushes are POSTed; gorush: the server, POSTed to <url>/api/push
  Millis timeout{5'000};
  std::string ca_file;  // PEM CAs for https; "" = the system's store
  std::string topic;    // gorush only: the APNs topic (the app's bundle id); "" = gorush's own setting
  size_t max_queue = 10'000;  // pushes waiting for this provider; beyond, the oldest is dropped (Webhook)
  BackoffPolicy retry = WebhookOptions::DefaultRetry();
  CircuitBreaker::Options breaker = WebhookOptions::DefaultBreaker();
};

struct PushOptions {
  std::optional<PushProviderOptions> webhook, gorush;
  Millis collapse_window{3'000};  // 0 = no collapsing beyond the jobs that queue up meanwhile
  size_t max_pending = 100'000;   // users tracked at once (pending, or within their collapse window)
  size_t preview_max_chars = 100;  // 0 = no text preview even when allowed (the sender still shows)
  std::string version;  // parleyd's version: the webhook body's "version" and the User-Agent "parley/<version>"
  std::string node;     // the webhook body's "node"; "" = this host's name
};

// One stored message for one offline member (built by the writer).
struct PushJob {
  std::string user;
  std::string conv_id;
  std::string conv_name;  // the group's name; "" for a direct conversation
  std::string sender;
  std::string preview;  // the text (may be long: cut at Enqueue)
  uint64_t seq = 0;
  int64_t server_ts = 0;  // ms since the Unix epoch
  bool mention = false;   // the message mentions the user
  bool muted = false;     // the user muted the conversation (the writer sends such jobs only with a mention)
};

// One registered device token.
struct PushTarget {
  std::string provider;  // "webhook" | "gorush"
  std::string token;
  std::string platform;  // "ios" | "android" | "huawei" | "web"
};

// What the dispatcher needs to know of a user, looked up when a push is built.
struct PushUserInfo {
  std::vector<PushTarget> targets;
  bool preview = false;              // pushes may carry the sender and a text preview
  bool mentions_when_muted = false;  // a mention in a muted conversation still pushes
};

// `s` cut to at most `max_chars` code points, never inside a UTF-8 sequence, "…" appended when cut ("" for
// max_chars 0). Bytes that are not valid UTF-8 count as one code point each (the JSON encoder replaces them).
std::string CutPreview(std::string_view s, size_t max_chars);

class PushDispatcher {
 public:
  // Called on the dispatcher's thread only; they may read the store but must not call back into the
  // dispatcher. Unset: no targets / badge 0.
  struct Lookups {
    std::function<PushUserInfo(const std::string& user)> user;
    std::function<uint64_t(const std::string& user)> badge;  // the user's total unread
  };

  // Monotonic since construction, except the two sizes.
  struct Stats {
    uint64_t sent = 0, collapsed = 0, muted = 0, no_token = 0, dropped = 0;  // jobs, by outcome
    uint64_t tokens_skipped = 0;
    size_t pending_users = 0;  // users with jobs not yet handed to a provider
    size_t tracked_users = 0;  // pending, or within their collapse window (at most max_pending)
  };

  // Providers' URLs http(s) without spaces, timeouts positive, max_queue, max_pending positive, collapse_window
  // 0..1 h, preview_max_chars <= 4096. Errors name the option ("push.gorush.url: ...").
  static Status Validate(const PushOptions& options);

  // `options` validated; `clock` (the collapse windows, the providers' breakers and retries; waits are real
  // time, so SystemClock outside of tests) must outlive the dispatcher. Does not start any thread.
  PushDispatcher(PushOptions options, Lookups lookups, const Clock& clock);
  ~PushDispatcher();  // Stop()
  PushDispatcher(const PushDispatcher&) = delete;
  PushDispatcher& operator=(const PushDispatcher&) = delete;

  // Starts the dispatcher's thread and the providers' threads; jobs enqueued before are kept. Once.
  void Start();
  // Stops every thread promptly (a hanging provider included). Jobs still pending, and pushes still queued
  // for a provider, are dropped, counted and logged. Idempotent; not from a Lookups callback.
  void Stop();

  // Queues a job; never blocks on the dispatcher, a look-up or the network. Any thread.
  void Enqueue(PushJob job);

  // A provider is configured: "webhook" or "gorush". Any thread.
  bool HasProvider(std::string_view provider) const;
  bool enabled() const { return webhook_ != nullptr || gorush_ != nullptr; }
  Stats stats() const;  // any thread
  // The provider's Webhook counters; nullopt when not configured. Any thread.
  std::optional<Webhook::Stats> provider_stats(std::string_view provider) const;
  // The families listed at the top of this file. Any thread.
  void CollectMetrics(std::vector<metrics::Family>& out) const;

 private:
  // The jobs of one kind (muted or not) merged so far for a user.
  struct Slot {
    uint32_t count = 0;
    bool mention = false;
    uint64_t order = 0;  // arrival of the newest job, to pick the newest of the two slots
    PushJob newest;
  };
  // A tracked user: in exactly one of ready_, busy (the dispatcher is building its push), windows_.
  struct Entry {
    Slot plain, muted;
    bool has_jobs() const { return plain.count + muted.count > 0; }
  };
  struct Window {
    SteadyTime end;
    std::string user;
  };

  void Run();  // the dispatcher's thread
  // Builds and hands over the push for `user`'s jobs; true when a push went to a provider.
  bool Send(const std::string& user, Slot plain, Slot muted);
  nlohmann::json WebhookItem(const std::string& user, const std::vector<const PushTarget*>& targets,
                             const PushJob& newest, uint32_t count, bool mention, uint64_t badge,
                             bool preview) const;
  nlohmann::json GorushItem(int platform, const std::vector<const PushTarget*>& targets, const PushJob& newest,
                            uint32_t count, bool mention, uint64_t badge, bool preview) const;
  void CountDropped(uint64_t n, const std::string& user);

  const PushOptions options_;
  const Lookups lookups_;
  const Clock& clock_;
  std::unique_ptr<Webhook> webhook_;  // owned; null when the provider is not configured
  std::unique_ptr<Webhook> gorush_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_:
  std::unordered_map<std::string, Entry> users_;
  std::deque<std::string> ready_;  // users whose first job waits for the dispatcher
  std::deque<Window> windows_;     // open collapse windows, by end time (the window is constant: FIFO order)
  uint64_t order_ = 0;
  bool windows_turn_ = false;  // the dispatcher's turn between ready_ and due windows_ (its thread only)
  bool started_ = false;
  bool stop_ = false;
  std::thread thread_;

  std::atomic<uint64_t> sent_{0}, collapsed_{0}, muted_{0}, no_token_{0}, dropped_{0}, tokens_skipped_{0};
  std::atomic<size_t> pending_users_{0}, tracked_users_{0};
};

}  // namespace parley::im
