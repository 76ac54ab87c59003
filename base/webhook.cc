#include "base/webhook.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>
#include <utility>


namespace parley {
namespace {

using State = CircuitBreaker::State;

// A refused Acquire means our estimate of the end of the open period was early; look again after this long.
constexpr Millis kOpenPoll{200};
// Upper bound of one curl_multi_poll; Stop() wakes it at once anyway.
constexpr int kPollMs = 1'000;
// How much of a response body is kept for the log.
constexpr size_t kKeepBody = 200;

void GlobalInit() {
  static std::once_flag once;
  // Not thread-safe in every libcurl build, so done once, before any handle exists. Never cleaned up: other
  // Webhooks may come and go for the life of the process.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t KeepSome(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  const size_t len = size * n;
  if (out->size() < kKeepBody) out->append(data, std::min(len, kKeepBody - out->size()));
  return len;  // the rest is read and thrown away
}

bool Retryable(const std::optional<long>& http_status) {
  if (!http_status) return true;  // no answer
  const long s = *http_status;
  return s == 408 || s == 429 || s >= 500;
}

// "rule-a, rule-b" (the first few keys of a batch), for log lines about lost or held items.
template <typename Items>
std::string Keys(const Items& items) {
  std::string out;
  size_t n = 0;
  for (const auto& i : items) {
    if (n == 10) {
      out += ", ... (" + std::to_string(items.size()) + " in all)";
      break;
    }
    if (n++) out += ", ";
    out += i.key;
  }
  return out;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

Status Webhook::ValidateUrl(const std::string& url) {
  size_t rest = 0;
  if (StartsWithNoCase(url, "http://")) {
    rest = 7;
  } else if (StartsWithNoCase(url, "https://")) {
    rest = 8;
  } else {
    return Status::Error("webhook URL must start with http:// or https://");
  }
  if (url.size() == rest || url[rest] == '/') return Status::Error("webhook URL has no host");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return Status::Error("webhook URL must not contain spaces or control characters");
  }
  return Status::Ok();
}

Webhook::Webhook(WebhookOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      breaker_(options_.breaker, clock, [this](State from, State to) {
        // On the delivery thread, with the breaker's lock held: a log line only.
        if (to == State::kOpen) {
          spdlog::warn("webhook {}: circuit breaker {} -> open: nothing is sent for a while; notifications are "
                       "kept (the latest per key) until the receiver answers again",
                       options_.target, CircuitBreaker::StateName(from));
        } else if (to == State::kClosed) {
          spdlog::info("webhook {}: circuit breaker closed: the receiver answers again", options_.target);
        } else {
          spdlog::info("webhook {}: circuit breaker half-open: probing the receiver", options_.target);
        }
      }) {
  GlobalInit();
  multi_ = curl_multi_init();
}

Webhook::~Webhook() {
  Stop();
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void Webhook::Start() {
  std::lock_guard lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Webhook::Stop() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(multi_));  // abandons a POST in progress
  if (t.joinable()) t.join();
  std::lock_guard lock(mu_);
  if (!queue_.empty()) {  // never started, or stopped before the thread took these
    spdlog::warn("webhook {}: stopping with {} undelivered notifications: {}", options_.target, queue_.size(),
                 Keys(queue_));
    dropped_.fetch_add(queue_.size(), std::memory_order_relaxed);
    queue_.clear();
  }
}

bool Webhook::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

void Webhook::Enqueue(std::string key, nlohmann::json item) {
  {
    std::lock_guard lock(mu_);
    if (stop_) {
      spdlog::warn("webhook {}: stopped; notification for {} not sent", options_.target, key);
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (options_.max_queue > 0 && queue_.size() >= options_.max_queue) {
      const uint64_t n = dropped_.fetch_add(1, std::memory_order_relaxed) + 1;
      // 1, 10, 100, ...: a stuck queue must not flood the log.
      uint64_t p = 1;
      while (p < n && p <= UINT64_MAX / 10) p *= 10;
      if (p == n) {
        spdlog::warn("webhook {}: queue full ({} notifications); dropped the oldest, for {} ({} dropped so far)",
                     options_.target, queue_.size(), queue_.front().key, n);
      }
      queue_.pop_front();
    }
    queue_.push_back(Item{std::move(key), std::move(item), false});
  }
  cv_.notify_all();
}

Webhook::Stats Webhook::stats() const {
  Stats s;
  s.requests_ok = requests_ok_.load(std::memory_order_relaxed);
  s.requests_http_error = http_error_.load(std::memory_order_relaxed);
  s.requests_network_error = network_error_.load(std::memory_order_relaxed);
  s.breaker_open = breaker_open_.load(std::memory_order_relaxed);
  s.sent = sent_.load(std::memory_order_relaxed);
  s.failed = failed_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.superseded = superseded_.load(std::memory_order_relaxed);
  s.breaker = breaker_.state();
  std::lock_guard lock(mu_);
  s.queued = queue_.size() + in_flight_;
  return s;
}

void Webhook::CollectMetrics(std::vector<metrics::Family>& out) const {
  metrics::Family f;
  f.name = "parley_webhook_requests_total";
  f.help = "Outbound webhook POSTs by outcome; breaker_open counts notifications held back while the circuit "
           "breaker was open";
  f.type = metrics::Type::kCounter;
  auto add = [&](const char* outcome, uint64_t v) {
    f.samples.push_back({{{"target", options_.target}, {"outcome", outcome}}, static_cast<double>(v)});
  };
  add("ok", requests_ok_.load(std::memory_order_relaxed));
  add("http_error", http_error_.load(std::memory_order_relaxed));
  add("network_error", network_error_.load(std::memory_order_relaxed));
  add("breaker_open", breaker_open_.load(std::memory_order_relaxed));
  out.push_back(std::move(f));
}

std::string Webhook::Encode(const std::vector<Item>& batch) const {
  nlohmann::json body = options_.envelope.is_object() ? options_.envelope : nlohmann::json::object();
  nlohmann::json items = nlohmann::json::array();
  for (const Item& i : batch) items.push_back(i.body);
  body[options_.items_field] = std::move(items);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Webhook::HoldBackLocked(std::vector<Item>& batch) {
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
  batch.clear();
  in_flight_ = 0;
  // Keep the newest item of each key, in place; older ones are superseded (the receiver gets the state that
  // holds now, and items of one key stay in order because only the newest is left).
  std::unordered_set<std::string> seen;
  std::deque<Item> kept;
  std::vector<std::string> superseded;
  for (auto it = queue_.rbegin(); it != queue_.rend(); ++it) {
    if (seen.insert(it->key).second) {
      kept.push_front(std::move(*it));
    } else {
      superseded.push_back(it->key);
      if (!it->held) breaker_open_.fetch_add(1, std::memory_order_relaxed);  // held back, then replaced
    }
  }
  queue_ = std::move(kept);
  if (!superseded.empty()) {
    superseded_.fetch_add(superseded.size(), std::memory_order_relaxed);
    std::string keys;
    for (size_t i = 0; i < superseded.size() && i < 10; ++i) keys += (i ? ", " : "") + superseded[i];
    if (superseded.size() > 10) keys += ", ...";
    spdlog::info("webhook {}: receiver unreachable; {} older notification(s) replaced by the latest of the same "
                 "key: {}",
                 options_.target, superseded.size(), keys);
  }
  for (Item& i : queue_) {
    if (!i.held) {
      i.held = true;
      breaker_open_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void Webhook::GiveUp(std::vector<Item>& batch, const std::string& why) {
  spdlog::error("webhook {}: {} notification(s) not delivered ({}): {}", options_.target, batch.size(), why,
                Keys(batch));
  failed_.fetch_add(batch.size(), std::memory_order_relaxed);
  batch.clear();
  std::lock_guard lock(mu_);
  in_flight_ = 0;
}

void Webhook::Run() {
  std::vector<Item> batch;  // taken from the queue; retried until delivered, given up or held back
  std::optional<Backoff> backoff;
  SteadyTime not_before{};  // the batch's next attempt
  SteadyTime open_until{};  // when the open breaker should let a probe through (our estimate)
  for (;;) {
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (stop_) {
          const size_t n = batch.size() + queue_.size();
          if (n > 0) {
            std::vector<Item> all(std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
            for (Item& i : queue_) all.push_back(std::move(i));
            spdlog::warn("webhook {}: stopping with {} undelivered notification(s): {}", options_.target, n,
                         Keys(all));
            dropped_.fetch_add(n, std::memory_order_relaxed);
            queue_.clear();
            in_flight_ = 0;
          }
          return;
        }
        const SteadyTime now = clock_.Now();
        if (breaker_.state() == State::kOpen && now < open_until) {
          if (!batch.empty() || !queue_.empty()) HoldBackLocked(batch);
          backoff.reset();
          cv_.wait_for(lock, open_until - now);  // woken by Enqueue too, to count and coalesce what arrives
          continue;
        }
        if (batch.empty()) {
          if (queue_.empty()) {
            cv_.wait(lock);
            continue;
          }
          const size_t n = std::min(queue_.size(), std::max<size_t>(options_.max_batch, 1));
          for (size_t i = 0; i < n; ++i) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
          in_flight_ = batch.size();
          backoff.emplace(options_.retry, clock_);
          not_before = now;
        }
        if (now < not_before) {
          cv_.wait_for(lock, not_before - now);
          continue;
        }
        break;
      }
    }

    CircuitBreaker::Permit permit = breaker_.Acquire();
    if (!permit) {
      // Still open (the loop above then holds the batch back), or a probe slot is taken: look again soon.
      open_until = not_before = clock_.Now() + kOpenPoll;
      continue;
    }
    PostResult r = Post(Encode(batch));
    if (r.kind == PostResult::Kind::kStopped) continue;  // the permit is cancelled; the loop sees stop_
    if (r.kind == PostResult::Kind::kOk) {
      permit.Success();
      requests_ok_.fetch_add(1, std::memory_order_relaxed);
      sent_.fetch_add(batch.size(), std::memory_order_relaxed);
      batch.clear();
      std::lock_guard lock(mu_);
      in_flight_ = 0;
      continue;
    }
    const bool answered = r.kind == PostResult::Kind::kHttpError;
    (answered ? http_error_ : network_error_).fetch_add(1, std::memory_order_relaxed);
    if (!Retryable(answered ? std::optional<long>(r.status) : std::nullopt)) {
      permit.Success();  // the receiver is up; it is this request it does not want
      GiveUp(batch, r.error + ", which retrying will not change");
      continue;
    }
    permit.Failure();
    if (breaker_.state() == State::kOpen) {
      // Only this thread completes permits, so the open period that just began is current_open_duration().
      open_until = clock_.Now() + breaker_.current_open_duration();
      spdlog::warn("webhook {}: POST to {} failed: {}; holding {} notification(s) for {} ms", options_.target,
                   options_.url, r.error, batch.size(), breaker_.current_open_duration().count());
      continue;
    }
    const std::optional<Millis> delay = r.retry_after ? backoff->NextDelay(*r.retry_after) : backoff->NextDelay();
    if (!delay) {
      GiveUp(batch, r.error + " after " + std::to_string(backoff->attempts()) + " attempts");
      continue;
    }
    spdlog::warn("webhook {}: POST to {} failed: {}; retrying in {} ms", options_.target, options_.url, r.error,
                 delay->count());
    not_before = clock_.Now() + *delay;
  }
}

Webhook::PostResult Webhook::Post(const std::string& body) {
  PostResult r;
  CURLM* multi = static_cast<CURLM*>(multi_);
  CURL* easy = curl_easy_init();
  if (multi == nullptr || easy == nullptr) {
    if (easy != nullptr) curl_easy_cleanup(easy);
    r.kind = PostResult::Kind::kNetworkError;
    r.error = "libcurl could not be initialised";
    return r;
  }
  const std::string user_agent = options_.user_agent.empty() ? std::string("parley") : options_.user_agent;
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip (up to a second) for big bodies
  std::string response;
  char error_buf[CURL_ERROR_SIZE] = {0};
  const long timeout_ms = static_cast<long>(std::max<int64_t>(options_.timeout.count(), 1));

  curl_easy_setopt(easy, CURLOPT_URL, options_.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &KeepSome);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buf);

  CURLcode result = CURLE_OK;
  bool done = false;
  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    result = CURLE_FAILED_INIT;
    done = true;
  }
  bool added = !done;
  while (!done) {
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    int queued = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
      if (m->msg == CURLMSG_DONE && m->easy_handle == easy) {
        result = m->data.result;
        done = true;
      }
    }
    if (done || running == 0) {
      done = true;
      break;
    }
    if (stopping()) {
      r.kind = PostResult::Kind::kStopped;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, kPollMs, nullptr);  // returns early on activity or curl_multi_wakeup
    if (stopping()) {
      r.kind = PostResult::Kind::kStopped;
      break;
    }
  }
  if (r.kind != PostResult::Kind::kStopped) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (result != CURLE_OK) {
      r.kind = PostResult::Kind::kNetworkError;
      r.error = error_buf[0] != '\0' ? std::string(error_buf) : std::string(curl_easy_strerror(result));
    } else if (status >= 200 && status < 300) {
      r.kind = PostResult::Kind::kOk;
      r.status = status;
    } else {
      r.kind = PostResult::Kind::kHttpError;
      r.status = status;
      r.error = "HTTP " + std::to_string(status);
      if (!response.empty()) {
        std::string printable;
        for (char c : response) printable += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
        r.error += " (" + printable + ")";
      }
      curl_off_t retry_after = 0;
      if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
        r.retry_after = Millis(static_cast<int64_t>(std::min<curl_off_t>(retry_after, 86'400)) * 1000);
    }
  }
  if (added) curl_multi_remove_handle(multi, easy);
  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
  return r;
}

}  // namespace parley
