#include "im/push.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <utility>

namespace parley::im {
namespace {

constexpr Millis kMaxCollapseWindow{3'600'000};
constexpr size_t kMaxPreviewChars = 4096;

// gorush's platform numbers; 0 = not reachable through gorush.
int GorushPlatform(std::string_view p) {
  if (p == "ios") return 1;
  if (p == "android") return 2;
  if (p == "huawei") return 3;
  return 0;
}
const char* GorushPlatformName(int p) { return p == 1 ? "ios" : p == 2 ? "android" : "huawei"; }

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

std::string GorushUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url + "/api/push";
}

Status ValidateProvider(const PushProviderOptions& p, const std::string& name) {
  if (Status st = Webhook::ValidateUrl(p.url); !st.ok()) return Status::Error(name + ".url: " + st.message());
  if (p.timeout.count() <= 0) return Status::Error(name + ".timeout must be positive");
  if (p.max_queue == 0) return Status::Error(name + ".max_queue must be positive");
  return Status::Ok();
}

std::unique_ptr<Webhook> MakeWebhook(const std::optional<PushProviderOptions>& p, bool gorush,
                                     const PushOptions& o, const Clock& clock) {
  if (!p) return nullptr;
  WebhookOptions w;
  w.url = gorush ? GorushUrl(p->url) : p->url;
  w.target = gorush ? "push_gorush" : "push_webhook";
  w.items_field = gorush ? "notifications" : "pushes";
  w.envelope = nlohmann::json::object();
  if (!gorush) {  // gorush's request has nothing but "notifications"
    w.envelope["node"] = o.node.empty() ? HostName() : o.node;
    if (!o.version.empty()) w.envelope["version"] = o.version;
  }
  w.timeout = p->timeout;
  w.ca_file = p->ca_file;
  w.user_agent = o.version.empty() ? std::string("parley") : "parley/" + o.version;
  w.max_queue = p->max_queue;
  w.retry = p->retry;
  w.breaker = p->breaker;
  return std::make_unique<Webhook>(std::move(w), clock);
}

// The text a push shows, and its title ("" = none).
struct Text {
  std::string title, message;
};

Text PushText(const PushJob& newest, uint32_t count, bool preview) {
  Text t;
  if (!preview) {
    t.message = count <= 1 ? std::string("New message") : std::to_string(count) + " new messages";
    return t;
  }
  const bool group = !newest.conv_name.empty();
  t.title = group ? newest.conv_name : newest.sender;
  const std::string body = newest.preview.empty() ? std::string("New message") : newest.preview;
  t.message = group ? newest.sender + ": " + body : body;
  return t;
}

}  // namespace

std::string CutPreview(std::string_view s, size_t max_chars) {
  if (max_chars == 0) return {};
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte belongs to the code point before it
    if (chars == max_chars) return std::string(s.substr(0, i)) + "\u2026";
    ++chars;
  }
  return std::string(s);
}

Status PushDispatcher::Validate(const PushOptions& o) {
  if (o.webhook)
    if (Status st = ValidateProvider(*o.webhook, "push.webhook"); !st.ok()) return st;
  if (o.gorush)
    if (Status st = ValidateProvider(*o.gorush, "push.gorush"); !st.ok()) return st;
  if (o.collapse_window.count() < 0 || o.collapse_window > kMaxCollapseWindow)
    return Status::Error("push.collapse_window must be 0 to 1 hour");
  if (o.max_pending == 0) return Status::Error("push.max_pending must be positive");
  if (o.preview_max_chars > kMaxPreviewChars) return Status::Error("push.preview_max_chars must be at most 4096");
  return Status::Ok();
}

PushDispatcher::PushDispatcher(PushOptions options, Lookups lookups, const Clock& clock)
    : options_(std::move(options)), lookups_(std::move(lookups)), clock_(clock) {
  webhook_ = MakeWebhook(options_.webhook, false, options_, clock_);
  gorush_ = MakeWebhook(options_.gorush, true, options_, clock_);
}

PushDispatcher::~PushDispatcher() { Stop(); }

void PushDispatcher::Start() {
  {
    std::lock_guard lock(mu_);
    if (started_ || stop_) return;
    started_ = true;
  }
  if (webhook_) webhook_->Start();
  if (gorush_) gorush_->Start();
  std::lock_guard lock(mu_);
  thread_ = std::thread([this] { Run(); });
}

void PushDispatcher::Stop() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();  // a push being built finishes (look-ups are local reads); nothing waits on I/O
  // Pushes handed over but not delivered are dropped and logged by the Webhooks themselves.
  if (webhook_) webhook_->Stop();
  if (gorush_) gorush_->Stop();
  std::lock_guard lock(mu_);
  uint64_t jobs = 0;
  for (const auto& [user, e] : users_) jobs += e.plain.count + e.muted.count;
  if (jobs > 0) {
    spdlog::warn("push: stopping with {} job(s) of {} user(s) not pushed", jobs, users_.size());
    dropped_.fetch_add(jobs, std::memory_order_relaxed);
  }
  users_.clear();
  ready_.clear();
  windows_.clear();
  pending_users_.store(0, std::memory_order_relaxed);
  tracked_users_.store(0, std::memory_order_relaxed);
}

void PushDispatcher::CountDropped(uint64_t n, const std::string& user) {
  const uint64_t total = dropped_.fetch_add(n, std::memory_order_relaxed) + n;
  // 1, 10, 100, ...: an overloaded dispatcher must not flood the log as well.
  uint64_t p = 1;
  while (p < total && p <= UINT64_MAX / 10) p *= 10;
  if (p == total) {
    spdlog::warn("push: {} users waiting (push.max_pending); job for {} dropped ({} dropped so far)",
                 options_.max_pending, user, total);
  }
}

void PushDispatcher::Enqueue(PushJob job) {
  if (!enabled()) {
    no_token_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Cut before the lock: bounds both the time under it and the memory a pending job holds.
  if (job.preview.size() > options_.preview_max_chars) job.preview = CutPreview(job.preview, options_.preview_max_chars);
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stop_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto it = users_.find(job.user);
    if (it == users_.end()) {
      if (users_.size() >= options_.max_pending) {
        CountDropped(1, job.user);  // a log line at most once per power of ten
        return;
      }
      it = users_.emplace(job.user, Entry{}).first;
      ready_.push_back(job.user);
      tracked_users_.store(users_.size(), std::memory_order_relaxed);
      wake = true;
    }
    Entry& e = it->second;
    if (!e.has_jobs()) pending_users_.fetch_add(1, std::memory_order_relaxed);
    Slot& s = job.muted ? e.muted : e.plain;
    ++s.count;
    s.mention = s.mention || job.mention;
    s.order = ++order_;
    s.newest = std::move(job);
  }
  if (wake) cv_.notify_one();  // a job for a tracked user waits for its window, or is taken with the first
}

void PushDispatcher::Run() {
  for (;;) {
    std::string user;
    Slot plain, muted;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (stop_) return;
        const SteadyTime now = clock_.Now();
        const bool window_due = !windows_.empty() && windows_.front().end <= now;
        // Both kinds in turn, so that a stream of new users cannot hold back the merged pushes, nor the reverse.
        if (!ready_.empty() && !(window_due && windows_turn_)) {
          windows_turn_ = true;
          user = std::move(ready_.front());
          ready_.pop_front();
          break;
        }
        if (window_due) {
          windows_turn_ = false;
          user = std::move(windows_.front().user);
          windows_.pop_front();
          auto it = users_.find(user);
          if (it != users_.end() && it->second.has_jobs()) break;
          if (it != users_.end()) users_.erase(it);  // the window closed quietly: the next job goes at once
          tracked_users_.store(users_.size(), std::memory_order_relaxed);
          continue;
        }
        if (windows_.empty()) {
          cv_.wait(lock);
        } else {
          cv_.wait_for(lock, windows_.front().end - now);
        }
      }
      Entry& e = users_.at(user);
      if (e.has_jobs()) pending_users_.fetch_sub(1, std::memory_order_relaxed);
      plain = std::exchange(e.plain, Slot{});
      muted = std::exchange(e.muted, Slot{});
    }

    const bool pushed = Send(user, std::move(plain), std::move(muted));

    std::lock_guard lock(mu_);
    if (stop_) return;  // Stop() counts what is left
    auto it = users_.find(user);
    if (it == users_.end()) continue;
    if (pushed) {
      // Window ends come from one monotonic clock plus a constant: appending keeps windows_ sorted.
      windows_.push_back({clock_.Now() + options_.collapse_window, user});
    } else if (it->second.has_jobs()) {
      ready_.push_back(user);  // nothing went out, so nothing to collapse into: jobs that came meanwhile go now
    } else {
      users_.erase(it);
      tracked_users_.store(users_.size(), std::memory_order_relaxed);
    }
  }
}

bool PushDispatcher::Send(const std::string& user, Slot plain, Slot muted) {
  const PushUserInfo info = lookups_.user ? lookups_.user(user) : PushUserInfo{};
  if (muted.count > 0 && !info.mentions_when_muted) {
    spdlog::debug("push: {} muted job(s) for {} dropped (mentions_when_muted is off)", muted.count, user);
    muted_.fetch_add(muted.count, std::memory_order_relaxed);
    muted = Slot{};
  }
  const uint32_t count = plain.count + muted.count;
  if (count == 0) return false;

  std::vector<const PushTarget*> to_webhook;
  std::vector<const PushTarget*> to_gorush[4];  // by gorush platform number
  uint64_t skipped = 0;
  for (const PushTarget& t : info.targets) {
    if (t.provider == "webhook" && webhook_) {
      to_webhook.push_back(&t);
    } else if (const int p = GorushPlatform(t.platform); t.provider == "gorush" && gorush_ && p != 0) {
      to_gorush[p].push_back(&t);
    } else {
      ++skipped;
    }
  }
  if (skipped > 0) tokens_skipped_.fetch_add(skipped, std::memory_order_relaxed);
  if (to_webhook.empty() && to_gorush[1].empty() && to_gorush[2].empty() && to_gorush[3].empty()) {
    spdlog::debug("push: no usable token for {} ({} registered); {} job(s) not pushed", user, info.targets.size(),
                  count);
    no_token_.fetch_add(count, std::memory_order_relaxed);
    return false;
  }

  const Slot& newest = muted.count == 0 || (plain.count > 0 && plain.order > muted.order) ? plain : muted;
  const bool mention = plain.mention || muted.mention;
  const uint64_t badge = lookups_.badge ? lookups_.badge(user) : 0;  // now: after collapsing
  // Counted before the hand-over, so that whoever sees the push arrive also sees it counted.
  sent_.fetch_add(1, std::memory_order_relaxed);
  collapsed_.fetch_add(count - 1, std::memory_order_relaxed);
  if (!to_webhook.empty())
    webhook_->Enqueue(user, WebhookItem(user, to_webhook, newest.newest, count, mention, badge, info.preview));
  for (int p = 1; p <= 3; ++p) {
    if (to_gorush[p].empty()) continue;
    gorush_->Enqueue(user + "/" + GorushPlatformName(p),
                     GorushItem(p, to_gorush[p], newest.newest, count, mention, badge, info.preview));
  }
  return true;
}

nlohmann::json PushDispatcher::WebhookItem(const std::string& user, const std::vector<const PushTarget*>& targets,
                                           const PushJob& newest, uint32_t count, bool mention, uint64_t badge,
                                           bool preview) const {
  nlohmann::json tokens = nlohmann::json::array();
  for (const PushTarget* t : targets) tokens.push_back({{"token", t->token}, {"platform", t->platform}});
  nlohmann::json j = {{"user", user},          {"provider", "webhook"},        {"tokens", std::move(tokens)},
                      {"conv_id", newest.conv_id}, {"seq", newest.seq},         {"server_ts", newest.server_ts},
                      {"badge", badge},        {"count", count},               {"mention", mention}};
  if (preview) {
    j["sender"] = newest.sender;
    j["preview"] = newest.preview;
    if (!newest.conv_name.empty()) j["conv_name"] = newest.conv_name;
  }
  return j;
}

nlohmann::json PushDispatcher::GorushItem(int platform, const std::vector<const PushTarget*>& targets,
                                          const PushJob& newest, uint32_t count, bool mention, uint64_t badge,
                                          bool preview) const {
  nlohmann::json tokens = nlohmann::json::array();
  for (const PushTarget* t : targets) tokens.push_back(t->token);
  const Text text = PushText(newest, count, preview);
  // FCM takes string values only in `data`; the app reads the same strings on every platform.
  const nlohmann::json data = {{"conv_id", newest.conv_id},
                               {"seq", std::to_string(newest.seq)},
                               {"count", std::to_string(count)},
                               {"badge", std::to_string(badge)},
                               {"mention", mention ? "true" : "false"}};
  nlohmann::json n = {{"tokens", std::move(tokens)},
                      {"platform", platform},
                      {"message", text.message},
                      {"priority", "high"},
                      {"data", data}};
  if (!text.title.empty()) n["title"] = text.title;
  if (platform == 1) {
    n["badge"] = badge;
    if (!options_.gorush->topic.empty()) n["topic"] = options_.gorush->topic;
    n["collapse_id"] = newest.conv_id;  // the phone replaces the conversation's previous notification
    n["thread-id"] = newest.conv_id;    // and groups them by conversation
    n["sound"] = "default";
    n["mutable_content"] = true;  // lets a notification service extension fetch and decorate
  } else if (platform == 2) {
    n["collapse_key"] = newest.conv_id;
    n["android"] = {{"collapse_key", newest.conv_id},
                    {"priority", "high"},
                    {"notification", {{"tag", newest.conv_id}}}};
  } else {
    n["huawei_data"] = data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return n;
}

bool PushDispatcher::HasProvider(std::string_view provider) const {
  return (provider == "webhook" && webhook_) || (provider == "gorush" && gorush_);
}

PushDispatcher::Stats PushDispatcher::stats() const {
  Stats s;
  s.sent = sent_.load(std::memory_order_relaxed);
  s.collapsed = collapsed_.load(std::memory_order_relaxed);
  s.muted = muted_.load(std::memory_order_relaxed);
  s.no_token = no_token_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.tokens_skipped = tokens_skipped_.load(std::memory_order_relaxed);
  s.pending_users = pending_users_.load(std::memory_order_relaxed);
  s.tracked_users = tracked_users_.load(std::memory_order_relaxed);
  return s;
}

std::optional<Webhook::Stats> PushDispatcher::provider_stats(std::string_view provider) const {
  if (provider == "webhook" && webhook_) return webhook_->stats();
  if (provider == "gorush" && gorush_) return gorush_->stats();
  return std::nullopt;
}

void PushDispatcher::CollectMetrics(std::vector<metrics::Family>& out) const {
  const Stats s = stats();
  metrics::Family jobs;
  jobs.name = "parley_push_jobs_total";
  jobs.help = "Push jobs (a stored message for an offline member) by outcome";
  jobs.type = metrics::Type::kCounter;
  for (const auto& [outcome, v] : {std::pair{"sent", s.sent}, std::pair{"collapsed", s.collapsed},
                                   std::pair{"muted", s.muted}, std::pair{"no_token", s.no_token},
                                   std::pair{"dropped", s.dropped}})
    jobs.samples.push_back({{{"outcome", outcome}}, static_cast<double>(v)});
  out.push_back(std::move(jobs));

  metrics::Family skipped;
  skipped.name = "parley_push_tokens_skipped_total";
  skipped.help = "Registered push tokens skipped: their provider is not configured or cannot reach their platform";
  skipped.type = metrics::Type::kCounter;
  skipped.samples.push_back({{}, static_cast<double>(s.tokens_skipped)});
  out.push_back(std::move(skipped));

  metrics::Family pending;
  pending.name = "parley_push_pending_users";
  pending.help = "Users with push jobs not yet handed to a provider (waiting for the dispatcher or a collapse window)";
  pending.type = metrics::Type::kGauge;
  pending.samples.push_back({{}, static_cast<double>(s.pending_users)});
  out.push_back(std::move(pending));

  if (webhook_) webhook_->CollectMetrics(out);
  if (gorush_) gorush_->CollectMetrics(out);
}

}  // namespace parley::im
