// Auth providers that a reload (SIGHUP, the admin API) can replace while every loop thread keeps using them.
//
// A reader pays one atomic load of a plain pointer — the ACL is consulted on every PUBLISH and delivery, so a
// reference count or a reader lock there would put a shared cache line on the hot path. The price is that a
// replaced object cannot be freed at once: some thread may be inside one of its methods. Those methods are
// CPU-only (no I/O, no waiting), so a call lasts microseconds; a replaced object is kept for kGrace (a minute)
// and freed by a later Replace. Memory: the current object plus those replaced within the last minute.
// (Objects that outlive a call — a SCRAM exchange — hold their own shared reference to what they need.)
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "broker/api/auth.h"

namespace parley::broker::auth {

template <typename T>
class Reloadable {
 public:
  static constexpr std::chrono::seconds kGrace{60};

  explicit Reloadable(std::unique_ptr<const T> initial)
      : current_(initial.get()), owned_(std::move(initial)) {}
  Reloadable(const Reloadable&) = delete;
  Reloadable& operator=(const Reloadable&) = delete;

  // Any thread. Valid for the duration of a call into it (see above); never null.
  const T* get() const { return current_.load(std::memory_order_acquire); }

  // The reload thread: `next` serves every call from now on. Frees objects replaced more than kGrace ago.
  void Replace(std::unique_ptr<const T> next, SteadyTime now) {
    std::lock_guard lock(mu_);
    current_.store(next.get(), std::memory_order_release);
    retired_.emplace_back(now, std::move(owned_));
    owned_ = std::move(next);
    std::erase_if(retired_, [&](const auto& r) { return now - r.first >= kGrace; });
  }

 private:
  std::atomic<const T*> current_;
  std::mutex mu_;  // Replace
  std::unique_ptr<const T> owned_;
  std::vector<std::pair<SteadyTime, std::unique_ptr<const T>>> retired_;
};

class ReloadableAuthenticator final : public Authenticator {
 public:
  explicit ReloadableAuthenticator(std::unique_ptr<const Authenticator> a) : holder_(std::move(a)) {}
  AuthDecision Authenticate(const ConnectInfo& info, Grant& grant) const override {
    return holder_.get()->Authenticate(info, grant);
  }
  void Replace(std::unique_ptr<const Authenticator> a, SteadyTime now) { holder_.Replace(std::move(a), now); }
  const Authenticator* current() const { return holder_.get(); }

 private:
  Reloadable<Authenticator> holder_;
};

class ReloadableAuthorizer final : public Authorizer {
 public:
  explicit ReloadableAuthorizer(std::unique_ptr<const Authorizer> a) : holder_(std::move(a)) {}
  bool Allowed(const ClientIdentity& who, std::string_view topic, Access access) const override {
    return holder_.get()->Allowed(who, topic, access);
  }
  void Replace(std::unique_ptr<const Authorizer> a, SteadyTime now) { holder_.Replace(std::move(a), now); }

 private:
  Reloadable<Authorizer> holder_;
};

class ReloadableEnhancedAuthenticator final : public EnhancedAuthenticator {
 public:
  explicit ReloadableEnhancedAuthenticator(std::unique_ptr<const EnhancedAuthenticator> a) : holder_(std::move(a)) {}
  // The method name must not change across reloads (the broker looks methods up by name).
  std::string_view method() const override { return holder_.get()->method(); }
  std::unique_ptr<AuthExchange> Start() const override { return holder_.get()->Start(); }
  void Replace(std::unique_ptr<const EnhancedAuthenticator> a, SteadyTime now) { holder_.Replace(std::move(a), now); }

 private:
  Reloadable<EnhancedAuthenticator> holder_;
};

}  // namespace parley::broker::auth
