// The push dispatcher (im/push.h) against scripted HTTP receivers on 127.0.0.1: the gorush and generic webhook
// payloads, previews, the badge, collapsing, mute, tokens, retries, the circuit breaker, and that Enqueue stays
// cheap while a provider hangs. Real time throughout (the providers' threads read the clock); every wait is
// bounded.
#include "im/push.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/http_receiver.h"

namespace parley::im {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;
using testing::Eventually;
using testing::Receiver;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSlow = 10;  // time limits under the sanitizers
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr int kSlow = 10;
#else
constexpr int kSlow = 1;
#endif
#else
constexpr int kSlow = 1;
#endif

// The look-ups, as the tests set them; called on the dispatcher's thread.
class Users {
 public:
  void Set(const std::string& user, PushUserInfo info) {
    std::lock_guard lock(mu_);
    users_[user] = std::move(info);
  }
  void SetBadge(uint64_t b) { badge_ = b; }
  int badge_lookups() const { return badge_lookups_; }
  PushDispatcher::Lookups Lookups() {
    PushDispatcher::Lookups l;
    l.user = [this](const std::string& user) {
      std::lock_guard lock(mu_);
      auto it = users_.find(user);
      return it == users_.end() ? PushUserInfo{} : it->second;
    };
    l.badge = [this](const std::string&) {
      ++badge_lookups_;
      return badge_.load();
    };
    return l;
  }

 private:
  std::mutex mu_;
  std::map<std::string, PushUserInfo> users_;
  std::atomic<uint64_t> badge_{0};
  std::atomic<int> badge_lookups_{0};
};

// Fast retries and breaker, so that the tests take well under a second each.
PushProviderOptions Provider(const std::string& url) {
  PushProviderOptions p;
  p.url = url;
  p.timeout = milliseconds(2000);
  p.retry.initial = milliseconds(10);
  p.retry.max_delay = milliseconds(20);
  p.retry.max_attempts = 5;
  p.retry.jitter = Jitter::kNone;
  p.breaker.consecutive_failures = 3;
  p.breaker.failure_ratio = 0;
  p.breaker.open_duration = milliseconds(400);
  p.breaker.max_open_duration = milliseconds(400);
  return p;
}

PushOptions Gorush(const Receiver& rx, Millis window = Millis(0)) {
  PushOptions o;
  o.gorush = Provider("http://127.0.0.1:" + std::to_string(rx.port()) + "/");  // a trailing slash is fine
  o.gorush->topic = "com.example.chat";
  o.collapse_window = window;
  o.version = "1.2.3";
  return o;
}

PushJob Job(const std::string& user, uint64_t seq, const std::string& conv = "d_1", const std::string& name = "") {
  PushJob j;
  j.user = user;
  j.conv_id = conv;
  j.conv_name = name;
  j.sender = "alice";
  j.preview = "secret text";
  j.seq = seq;
  j.server_ts = 1'700'000'000'000 + static_cast<int64_t>(seq);
  return j;
}

PushUserInfo Info(std::vector<PushTarget> targets, bool preview = false, bool mentions_when_muted = false) {
  PushUserInfo i;
  i.targets = std::move(targets);
  i.preview = preview;
  i.mentions_when_muted = mentions_when_muted;
  return i;
}

// Every element of `field` across the receiver's requests, in order.
std::vector<nlohmann::json> Items(const Receiver& rx, const std::string& field) {
  std::vector<nlohmann::json> out;
  for (const Receiver::Request& r : rx.requests()) {
    const nlohmann::json j = r.Json();
    if (!j.is_object() || !j.contains(field) || !j[field].is_array()) continue;
    for (const nlohmann::json& i : j[field]) out.push_back(i);
  }
  return out;
}

bool HasItems(const Receiver& rx, const std::string& field, size_t n) {
  return Eventually([&] { return Items(rx, field).size() >= n; });
}

double Metric(const PushDispatcher& d, std::string_view name, const metrics::Labels& match = {}) {
  std::vector<metrics::Family> out;
  d.CollectMetrics(out);
  return metrics::Sum(out, name, match).value_or(-1);
}

TEST_CASE("gorush payload: one notification per platform, numbers, collapse ids, no preview without the setting") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({{"gorush", "ios-1", "ios"},
                         {"gorush", "ios-2", "ios"},
                         {"gorush", "and-1", "android"},
                         {"gorush", "hua-1", "huawei"},
                         {"gorush", "web-1", "web"},           // gorush cannot reach the web: skipped
                         {"webhook", "hook-1", "android"}}));  // provider not configured: skipped
  users.SetBadge(7);
  PushDispatcher d(Gorush(rx), users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("bob", 42, "g_team", "Team"));
  REQUIRE(HasItems(rx, "notifications", 3));
  const auto reqs = rx.requests();
  CHECK(reqs[0].path == "/api/push");
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].headers.at("user-agent") == "parley/1.2.3");
  for (const auto& r : reqs) {
    CHECK(r.body.find("alice") == std::string::npos);  // no sender, no text, no group name without preview
    CHECK(r.body.find("secret") == std::string::npos);
    CHECK(r.body.find("Team") == std::string::npos);
    const nlohmann::json j = r.Json();
    CHECK(j.size() == 1);  // nothing but "notifications"
  }
  std::map<int, nlohmann::json> by_platform;
  for (const nlohmann::json& n : Items(rx, "notifications")) by_platform[n["platform"].get<int>()] = n;
  REQUIRE(by_platform.size() == 3);

  const nlohmann::json& ios = by_platform[1];
  CHECK(ios["tokens"] == nlohmann::json({"ios-1", "ios-2"}));
  CHECK(ios["message"] == "New message");
  CHECK_FALSE(ios.contains("title"));
  CHECK(ios["badge"] == 7);
  CHECK(ios["topic"] == "com.example.chat");
  CHECK(ios["collapse_id"] == "g_team");
  CHECK(ios["thread-id"] == "g_team");
  CHECK(ios["sound"] == "default");
  CHECK(ios["mutable_content"] == true);
  CHECK(ios["priority"] == "high");
  const nlohmann::json data = {
      {"conv_id", "g_team"}, {"seq", "42"}, {"count", "1"}, {"badge", "7"}, {"mention", "false"}};
  CHECK(ios["data"] == data);

  const nlohmann::json& android = by_platform[2];
  CHECK(android["tokens"] == nlohmann::json({"and-1"}));
  CHECK(android["collapse_key"] == "g_team");
  CHECK(android["android"]["collapse_key"] == "g_team");
  CHECK(android["android"]["priority"] == "high");
  CHECK(android["android"]["notification"]["tag"] == "g_team");
  CHECK(android["data"] == data);
  CHECK_FALSE(android.contains("badge"));
  CHECK_FALSE(android.contains("topic"));

  const nlohmann::json& huawei = by_platform[3];
  CHECK(huawei["tokens"] == nlohmann::json({"hua-1"}));
  CHECK(nlohmann::json::parse(huawei["huawei_data"].get<std::string>()) == data);

  CHECK(Eventually([&] { return d.provider_stats("gorush")->sent == 3; }));
  const PushDispatcher::Stats s = d.stats();
  CHECK(s.sent == 1);
  CHECK(s.collapsed == 0);
  CHECK(s.tokens_skipped == 2);
  CHECK(Metric(d, "parley_push_jobs_total", {{"outcome", "sent"}}) == 1.0);
  CHECK(Metric(d, "parley_push_tokens_skipped_total") == 2.0);
  CHECK(Metric(d, "parley_webhook_requests_total", {{"target", "push_gorush"}, {"outcome", "ok"}}) >= 1.0);
}

TEST_CASE("gorush payload with previews: sender as title, group name and sender, preview cut on a UTF-8 boundary") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({{"gorush", "ios-b", "ios"}}, /*preview=*/true));
  users.Set("carol", Info({{"gorush", "and-c", "android"}}, /*preview=*/true));
  PushOptions o = Gorush(rx);
  o.preview_max_chars = 5;
  PushDispatcher d(o, users.Lookups(), SystemClock::Instance());
  d.Start();
  PushJob direct = Job("bob", 1, "d_ab");
  direct.preview = "h\xC3\xA9llo w\xC3\xB6rld";  // "héllo wörld": the cut falls after the é, not inside it
  d.Enqueue(direct);
  PushJob group = Job("carol", 2, "g_team", "Team");
  group.preview = "hey";
  d.Enqueue(group);
  REQUIRE(HasItems(rx, "notifications", 2));
  for (const nlohmann::json& n : Items(rx, "notifications")) {
    if (n["platform"] == 1) {
      CHECK(n["title"] == "alice");
      CHECK(n["message"] == "h\xC3\xA9llo\xE2\x80\xA6");
    } else {
      CHECK(n["title"] == "Team");
      CHECK(n["message"] == "alice: hey");
    }
  }
}

TEST_CASE("generic webhook payload: fields and types; sender, preview and group name only with preview") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({{"webhook", "tok-b1", "ios"}, {"webhook", "tok-b2", "web"}}, /*preview=*/true));
  users.Set("carol", Info({{"webhook", "tok-c", "android"}}, /*preview=*/false));
  users.SetBadge(3);
  PushOptions o;
  o.webhook = Provider(rx.url("/push"));
  o.collapse_window = Millis(0);
  o.version = "1.2.3";
  o.node = "node-a";
  PushDispatcher d(o, users.Lookups(), SystemClock::Instance());
  CHECK(d.enabled());
  CHECK(d.HasProvider("webhook"));
  CHECK_FALSE(d.HasProvider("gorush"));
  d.Start();
  PushJob b = Job("bob", 9, "g_team", "Team");
  b.mention = true;
  d.Enqueue(b);
  d.Enqueue(Job("carol", 10, "g_team", "Team"));
  REQUIRE(HasItems(rx, "pushes", 2));
  const auto reqs = rx.requests();
  CHECK(reqs[0].path == "/push");
  CHECK(reqs[0].headers.at("content-type") == "application/json");
  CHECK(reqs[0].headers.at("user-agent") == "parley/1.2.3");
  const nlohmann::json body = reqs[0].Json();
  CHECK(body["node"] == "node-a");
  CHECK(body["version"] == "1.2.3");
  std::map<std::string, nlohmann::json> by_user;
  for (const nlohmann::json& p : Items(rx, "pushes")) by_user[p["user"].get<std::string>()] = p;
  REQUIRE(by_user.size() == 2);

  const nlohmann::json expected_bob = {
      {"user", "bob"},
      {"provider", "webhook"},
      {"tokens", {{{"token", "tok-b1"}, {"platform", "ios"}}, {{"token", "tok-b2"}, {"platform", "web"}}}},
      {"conv_id", "g_team"},
      {"seq", 9},
      {"server_ts", 1'700'000'000'009},
      {"badge", 3},
      {"count", 1},
      {"mention", true},
      {"sender", "alice"},
      {"preview", "secret text"},
      {"conv_name", "Team"}};
  CHECK(by_user["bob"] == expected_bob);
  CHECK(by_user["bob"]["seq"].is_number_unsigned());

  const nlohmann::json& carol = by_user["carol"];
  CHECK(carol["tokens"] == nlohmann::json::array({{{"token", "tok-c"}, {"platform", "android"}}}));
  CHECK(carol["seq"] == 10);
  CHECK(carol["mention"] == false);
  CHECK_FALSE(carol.contains("sender"));
  CHECK_FALSE(carol.contains("preview"));
  CHECK_FALSE(carol.contains("conv_name"));
}

TEST_CASE("a burst collapses: one push at once, one merged push at the end of the window, badge looked up then") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({{"gorush", "ios-b", "ios"}}));
  users.SetBadge(1);
  const Millis window(500);
  PushDispatcher d(Gorush(rx, window), users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("bob", 1, "d_ab"));
  REQUIRE(rx.WaitFor(1));
  const Steady::time_point first = Steady::now();
  for (uint64_t seq = 2; seq <= 5; ++seq) d.Enqueue(Job("bob", seq, seq == 5 ? "g_last" : "d_ab"));
  CHECK(d.stats().pending_users == 1);
  CHECK(Metric(d, "parley_push_pending_users") == 1.0);
  users.SetBadge(11);  // after the jobs were queued: the merged push must carry this
  REQUIRE(rx.WaitFor(2, milliseconds(5000)));
  const Steady::time_point second = Steady::now();
  CHECK(second - first >= window - milliseconds(150));  // held for the window, not sent at once
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(rx.count() == 2);

  const std::vector<nlohmann::json> items = Items(rx, "notifications");
  REQUIRE(items.size() == 2);
  CHECK(items[0]["data"]["seq"] == "1");
  CHECK(items[0]["badge"] == 1);
  CHECK(items[0]["data"]["count"] == "1");
  CHECK(items[1]["data"]["seq"] == "5");  // the newest job's conversation and seq
  CHECK(items[1]["data"]["conv_id"] == "g_last");
  CHECK(items[1]["collapse_id"] == "g_last");
  CHECK(items[1]["data"]["count"] == "4");
  CHECK(items[1]["message"] == "4 new messages");
  CHECK(items[1]["badge"] == 11);
  CHECK(users.badge_lookups() == 2);  // per push, not per job

  const PushDispatcher::Stats s = d.stats();
  CHECK(s.sent == 2);
  CHECK(s.collapsed == 3);
  CHECK(s.pending_users == 0);
  CHECK(Metric(d, "parley_push_jobs_total", {{"outcome", "collapsed"}}) == 3.0);

  // Once the window after the merged push has closed quietly, the next job goes at once again.
  REQUIRE(Eventually([&] { return d.stats().tracked_users == 0; }, milliseconds(5000)));
  const Steady::time_point t = Steady::now();
  d.Enqueue(Job("bob", 6, "d_ab"));
  REQUIRE(rx.WaitFor(3));
  CHECK(Steady::now() - t < window - milliseconds(100));
}

TEST_CASE("muted jobs are dropped unless the user wants mentions in muted conversations") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({{"gorush", "ios-b", "ios"}}, false, /*mentions_when_muted=*/false));
  users.Set("carol", Info({{"gorush", "ios-c", "ios"}}, false, /*mentions_when_muted=*/true));
  PushDispatcher d(Gorush(rx), users.Lookups(), SystemClock::Instance());
  d.Start();
  PushJob b = Job("bob", 1);
  b.muted = b.mention = true;
  d.Enqueue(b);
  REQUIRE(Eventually([&] { return d.stats().muted == 1; }));
  PushJob c = Job("carol", 2);
  c.muted = c.mention = true;
  d.Enqueue(c);
  REQUIRE(HasItems(rx, "notifications", 1));
  std::this_thread::sleep_for(milliseconds(100));
  const std::vector<nlohmann::json> items = Items(rx, "notifications");
  REQUIRE(items.size() == 1);
  CHECK(items[0]["tokens"] == nlohmann::json({"ios-c"}));
  CHECK(items[0]["data"]["mention"] == "true");
  const PushDispatcher::Stats s = d.stats();
  CHECK(s.muted == 1);
  CHECK(s.sent == 1);
  CHECK(Metric(d, "parley_push_jobs_total", {{"outcome", "muted"}}) == 1.0);
}

TEST_CASE("a muted job merged with unmuted ones is left out of the push when mentions_when_muted is off") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({{"gorush", "ios-b", "ios"}}));
  PushDispatcher d(Gorush(rx, Millis(300)), users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("bob", 1, "d_ab"));
  REQUIRE(rx.WaitFor(1));
  d.Enqueue(Job("bob", 2, "d_ab"));
  PushJob m = Job("bob", 3, "g_muted");
  m.muted = m.mention = true;
  d.Enqueue(m);
  REQUIRE(rx.WaitFor(2));
  const std::vector<nlohmann::json> items = Items(rx, "notifications");
  REQUIRE(items.size() == 2);
  CHECK(items[1]["data"]["conv_id"] == "d_ab");
  CHECK(items[1]["data"]["seq"] == "2");
  CHECK(items[1]["data"]["count"] == "1");
  CHECK(items[1]["data"]["mention"] == "false");
  CHECK(d.stats().muted == 1);
  CHECK(d.stats().sent == 2);
}

TEST_CASE("no usable token: counted as no_token, nothing sent") {
  Receiver rx;
  Users users;
  users.Set("bob", Info({}));                             // never registered
  users.Set("carol", Info({{"gorush", "web-c", "web"}}));  // a platform gorush cannot reach
  PushDispatcher d(Gorush(rx), users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("bob", 1));
  d.Enqueue(Job("carol", 1));
  d.Enqueue(Job("dave", 1));  // unknown to the look-up
  REQUIRE(Eventually([&] { return d.stats().no_token == 3; }));
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(rx.count() == 0);
  CHECK(d.stats().sent == 0);
  CHECK(d.stats().tokens_skipped == 1);
  CHECK(Metric(d, "parley_push_jobs_total", {{"outcome", "no_token"}}) == 3.0);
  // No window opened: a later job, once there is a token, goes at once.
  users.Set("bob", Info({{"gorush", "ios-b", "ios"}}));
  d.Enqueue(Job("bob", 2));
  REQUIRE(rx.WaitFor(1));
}

TEST_CASE("a 500 from the provider is retried and the same body delivered") {
  Receiver rx;
  rx.Script({{500, {}, false, {}}});
  Users users;
  users.Set("bob", Info({{"gorush", "and-b", "android"}}));
  PushDispatcher d(Gorush(rx), users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("bob", 1));
  REQUIRE(rx.WaitFor(2));
  const auto reqs = rx.requests();
  CHECK(reqs[0].body == reqs[1].body);
  REQUIRE(Eventually([&] { return d.provider_stats("gorush")->sent == 1; }));
  const Webhook::Stats w = *d.provider_stats("gorush");
  CHECK(w.requests_http_error == 1);
  CHECK(w.requests_ok == 1);
  CHECK(w.failed == 0);
  CHECK(Metric(d, "parley_webhook_requests_total", {{"target", "push_gorush"}, {"outcome", "http_error"}}) == 1.0);
  CHECK(d.stats().sent == 1);
}

TEST_CASE("a dead provider opens the breaker; only the newest push per user is kept; recovery delivers it") {
  const uint16_t port = Receiver::DeadPort();
  Users users;
  users.Set("bob", Info({{"webhook", "tok-b", "ios"}}));
  users.Set("carol", Info({{"webhook", "tok-c", "ios"}}));
  PushOptions o;
  o.webhook = Provider("http://127.0.0.1:" + std::to_string(port) + "/push");
  o.webhook->breaker.open_duration = milliseconds(1000);
  o.webhook->breaker.max_open_duration = milliseconds(1000);
  o.collapse_window = Millis(0);
  PushDispatcher d(o, users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("bob", 1));
  REQUIRE(Eventually([&] { return d.provider_stats("webhook")->breaker == CircuitBreaker::State::kOpen; }));
  CHECK(d.provider_stats("webhook")->requests_network_error == 3);
  CHECK(d.provider_stats("webhook")->failed == 0);  // held, not given up

  d.Enqueue(Job("bob", 2));
  REQUIRE(Eventually([&] { return d.stats().sent + d.stats().collapsed == 2; }));
  d.Enqueue(Job("bob", 3));
  d.Enqueue(Job("carol", 7));
  REQUIRE(Eventually([&] { return d.stats().sent + d.stats().collapsed == 4; }));
  REQUIRE(Eventually([&] { return d.provider_stats("webhook")->queued == 2; }));  // bob's newest, carol's
  CHECK(d.provider_stats("webhook")->requests_network_error == 3);               // nothing tried while open
  CHECK(Metric(d, "parley_webhook_requests_total", {{"target", "push_webhook"}, {"outcome", "breaker_open"}}) >= 2);

  Receiver rx(port);  // the provider comes back on the same port: the half-open probe carries what was kept
  REQUIRE(Eventually([&] { return d.provider_stats("webhook")->queued == 0; }, milliseconds(5000)));
  CHECK(d.provider_stats("webhook")->breaker == CircuitBreaker::State::kClosed);
  std::map<std::string, std::vector<uint64_t>> seqs;
  for (const nlohmann::json& p : Items(rx, "pushes")) seqs[p["user"]].push_back(p["seq"].get<uint64_t>());
  CHECK(seqs["bob"] == std::vector<uint64_t>{3});
  CHECK(seqs["carol"] == std::vector<uint64_t>{7});
}

TEST_CASE("Enqueue stays cheap while the provider hangs, and Stop is prompt and accounts for every job") {
  Receiver rx;
  rx.SetDefault({200, {}, true, {}});  // reads the request, never answers
  Users users;
  for (int u = 0; u < 1000; ++u) users.Set("u" + std::to_string(u), Info({{"gorush", "t", "android"}}));
  PushOptions o = Gorush(rx, Millis(3000));
  o.gorush->timeout = milliseconds(30'000);
  PushDispatcher d(o, users.Lookups(), SystemClock::Instance());
  d.Start();
  d.Enqueue(Job("u0", 1));
  REQUIRE(rx.WaitFor(1));  // the provider's thread now waits on a POST that never ends

  std::vector<PushJob> jobs;
  jobs.reserve(10'000);
  for (int i = 0; i < 10'000; ++i) {
    PushJob j = Job("u" + std::to_string(i % 1000), static_cast<uint64_t>(i + 2), "d_x");
    j.preview = std::string(300, 'x');  // longer than preview_max_chars: cut in Enqueue
    jobs.push_back(std::move(j));
  }
  const Steady::time_point t0 = Steady::now();
  for (PushJob& j : jobs) d.Enqueue(std::move(j));
  const auto took = Steady::now() - t0;
  MESSAGE("10,000 Enqueue calls: "
          << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us");
  CHECK(took < milliseconds(50) * kSlow);

  const Steady::time_point t1 = Steady::now();
  d.Stop();
  CHECK(Steady::now() - t1 < milliseconds(1000) * kSlow);
  const PushDispatcher::Stats s = d.stats();
  CHECK(s.sent + s.collapsed + s.muted + s.no_token + s.dropped == 10'001);
  CHECK(s.dropped > 0);  // the jobs still waiting for their window
  CHECK(s.pending_users == 0);
}

TEST_CASE("max_pending bounds the users tracked; jobs beyond it are dropped and counted") {
  Receiver rx;
  Users users;
  PushOptions o = Gorush(rx);
  o.max_pending = 3;
  PushDispatcher d(o, users.Lookups(), SystemClock::Instance());  // not started: nothing is taken
  for (int u = 0; u < 5; ++u) d.Enqueue(Job("u" + std::to_string(u), 1));
  d.Enqueue(Job("u0", 2));  // a tracked user: merged, not dropped
  PushDispatcher::Stats s = d.stats();
  CHECK(s.dropped == 2);
  CHECK(s.tracked_users == 3);
  CHECK(s.pending_users == 3);
  CHECK(Metric(d, "parley_push_pending_users") == 3.0);
  CHECK(Metric(d, "parley_push_jobs_total", {{"outcome", "dropped"}}) == 2.0);
  d.Stop();
  s = d.stats();
  CHECK(s.dropped == 6);  // every job is accounted for
  CHECK(s.pending_users == 0);
  d.Enqueue(Job("u9", 1));  // after Stop
  CHECK(d.stats().dropped == 7);
}

TEST_CASE("CutPreview cuts on code points, never inside a UTF-8 sequence") {
  CHECK(CutPreview("hello", 5) == "hello");
  CHECK(CutPreview("hello!", 5) == "hello\xE2\x80\xA6");
  CHECK(CutPreview("", 3).empty());
  CHECK(CutPreview("abc", 0).empty());
  CHECK(CutPreview("\xC3\xA9\xC3\xA9\xC3\xA9", 2) == "\xC3\xA9\xC3\xA9\xE2\x80\xA6");  // 2-byte é
  CHECK(CutPreview("\xF0\x9F\x98\x80x", 1) == "\xF0\x9F\x98\x80\xE2\x80\xA6");        // a 4-byte emoji is one
  CHECK(CutPreview("\xF0\x9F\x98\x80", 1) == "\xF0\x9F\x98\x80");
  CHECK(CutPreview("\xFF\xFE" "ab", 2) == "\xFF\xFE\xE2\x80\xA6");  // invalid bytes count one each
}

TEST_CASE("Validate names the option at fault") {
  PushOptions o;
  CHECK(PushDispatcher::Validate(o).ok());  // no provider: valid, and disabled
  o.gorush = PushProviderOptions{};
  o.gorush->url = "ftp://x";
  Status st = PushDispatcher::Validate(o);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("push.gorush.url") == 0);
  o.gorush->url = "http://127.0.0.1:8088";
  CHECK(PushDispatcher::Validate(o).ok());
  o.webhook = PushProviderOptions{};
  o.webhook->url = "https://push.example.com/hook";
  o.webhook->timeout = Millis(0);
  CHECK(PushDispatcher::Validate(o).message().find("push.webhook.timeout") == 0);
  o.webhook->timeout = Millis(100);
  o.collapse_window = Millis(-1);
  CHECK_FALSE(PushDispatcher::Validate(o).ok());
  o.collapse_window = Millis(0);
  o.preview_max_chars = 5000;
  CHECK_FALSE(PushDispatcher::Validate(o).ok());
  o.preview_max_chars = 0;
  o.max_pending = 0;
  CHECK_FALSE(PushDispatcher::Validate(o).ok());

  PushDispatcher off(PushOptions{}, {}, SystemClock::Instance());
  CHECK_FALSE(off.enabled());
  CHECK_FALSE(off.HasProvider("gorush"));
  off.Enqueue(Job("bob", 1));
  CHECK(off.stats().no_token == 1);
}

}  // namespace
}  // namespace parley::im
