// A test rig for the IM layer without a network: ImService on an in-memory store (wrapped in a FaultStore),
// driven through its hooks the way the broker drives it, with a fake BrokerServices that captures every
// publish. Devices "subscribe" implicitly: everything published to $im/v1/d/<id>/pb is theirs.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "im.pb.h"
#include "im/keys.h"
#include "im/service.h"
#include "im/topics.h"
#include "storage/executor.h"
#include "storage/fault_store.h"
#include "storage/mem_store.h"

namespace parley::im::testing {

struct Published {
  std::string topic;
  v1::ServerFrame frame;
  uint8_t qos;
  bool transient;
};

class FakeBroker final : public broker::BrokerServices {
 public:
  size_t PublishFromPlugin(const broker::MessagePtr& msg) override {
    Published p{msg->topic, {}, msg->qos, msg->transient};
    REQUIRE(p.frame.ParseFromString(msg->payload));
    {
      std::lock_guard lock(mu_);
      out_.push_back(std::move(p));
    }
    cv_.notify_all();
    return 1;
  }

  // The response to `req_id` on `device`'s topic, waiting up to 5 s.
  v1::Response WaitResponse(const std::string& device, const std::string& req_id) {
    const std::string topic = DeviceTopic(device, Format::kProtobuf);
    std::unique_lock lock(mu_);
    const bool ok = cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      for (const Published& p : out_)
        if (p.topic == topic && p.frame.has_response() && p.frame.response().req_id() == req_id) return true;
      return false;
    });
    REQUIRE_MESSAGE(ok, "no response to " << req_id << " on " << device);
    for (auto it = out_.begin(); it != out_.end(); ++it) {
      if (it->topic == topic && it->frame.has_response() && it->frame.response().req_id() == req_id) {
        v1::Response r = it->frame.response();
        out_.erase(it);
        return r;
      }
    }
    return {};
  }

  // Every event published to `device` so far (consumed).
  std::vector<v1::Event> Events(const std::string& device) {
    const std::string topic = DeviceTopic(device, Format::kProtobuf);
    std::lock_guard lock(mu_);
    std::vector<v1::Event> events;
    for (auto it = out_.begin(); it != out_.end();) {
      if (it->topic == topic && it->frame.has_event()) {
        events.push_back(it->frame.event());
        it = out_.erase(it);
      } else {
        ++it;
      }
    }
    return events;
  }

  // Waits up to 5 s for an event on `device` that satisfies `pred`; true if one came (it is consumed).
  template <typename Pred>
  bool WaitEvent(const std::string& device, Pred pred) {
    const std::string topic = DeviceTopic(device, Format::kProtobuf);
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      for (auto it = out_.begin(); it != out_.end(); ++it) {
        if (it->topic == topic && it->frame.has_event() && pred(it->frame.event())) {
          out_.erase(it);
          return true;
        }
      }
      return false;
    });
  }

  bool AllTransient() {
    std::lock_guard lock(mu_);
    for (const Published& p : out_)
      if (!p.transient) return false;
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Published> out_;
};

class Completion final : public broker::PublishCompletion {
 public:
  void Complete(uint8_t reason) override {
    std::lock_guard lock(mu_);
    reasons.push_back(reason);
  }
  std::mutex mu_;
  std::vector<uint8_t> reasons;
};

// One "broker run" over a store that outlives it (so a second Rig on the same store is a restart).
class Rig {
 public:
  explicit Rig(storage::Store* store, Options options = DefaultOptions()) : store_(store) {
    executor_ = std::make_unique<storage::WriteExecutor>(store_, storage::ExecutorOptions{});
    service_ = std::make_unique<ImService>(options, store_, executor_.get(), 0, SystemClock::Instance());
    REQUIRE(service_->Start().ok());
    service_->OnStart(broker_);
  }
  ~Rig() {
    service_->Stop();
    executor_->Shutdown();
  }

  static Options DefaultOptions() {
    Options o;
    o.send_rate = 0;  // tests send in bursts
    return o;
  }

  static std::unique_ptr<storage::MemStore> NewStore() {
    auto s = storage::MemStore::Open(FamilyNames());
    REQUIRE(s.ok());
    return std::move(s.value());
  }

  void Connect(const std::string& user, const std::string& device) {
    const broker::ClientIdentity who{device, std::string_view(Keep(user))};
    service_->OnConnected(who);
    service_->OnSubscription(who, DeviceTopic(device, Format::kProtobuf), true);
  }
  void Disconnect(const std::string& user, const std::string& device) {
    service_->OnDisconnected(broker::ClientIdentity{device, std::string_view(Keep(user))}, true);
  }

  // Sends `req` as `user` from `device` (QoS 1) and returns the response.
  v1::Response Call(const std::string& user, const std::string& device, v1::Request req) {
    if (req.req_id().empty()) req.set_req_id("r" + std::to_string(++next_req_));
    const std::string id = req.req_id();
    Publish(user, device, req);
    return broker_.WaitResponse(device, id);
  }
  // Publishes without waiting; the response can be collected with broker().WaitResponse.
  std::shared_ptr<Completion> Publish(const std::string& user, const std::string& device, const v1::Request& req) {
    auto msg = std::make_shared<broker::Message>();
    msg->topic = std::string(kRequestTopic);
    msg->payload = req.SerializeAsString();
    msg->qos = 1;
    auto done = std::make_shared<Completion>();
    const broker::ClientIdentity who{device, std::string_view(Keep(user))};
    CHECK(service_->OnPublish(who, msg, done) == broker::HookResult::kHandled);
    return done;
  }

  v1::Ack Send(const std::string& user, const std::string& device, const std::string& conv, const std::string& text,
               const std::string& cmid) {
    v1::Request req;
    v1::SendReq* s = req.mutable_send();
    s->set_conv_id(conv);
    s->set_text(text);
    s->set_client_msg_id(cmid);
    v1::Response r = Call(user, device, req);
    REQUIRE_MESSAGE(!r.has_error(), r.error().message());
    return r.ack();
  }
  v1::Conversation OpenDirect(const std::string& user, const std::string& device, const std::string& peer) {
    v1::Request req;
    req.mutable_open_direct()->set_peer(peer);
    v1::Response r = Call(user, device, req);
    REQUIRE_MESSAGE(!r.has_error(), r.error().message());
    return r.conversation();
  }
  v1::SyncResp Sync(const std::string& user, const std::string& device, uint64_t cursor = 0) {
    v1::Request req;
    req.mutable_sync()->set_cursor(cursor);
    v1::Response r = Call(user, device, req);
    REQUIRE_MESSAGE(!r.has_error(), r.error().message());
    return r.sync();
  }

  ImService& service() { return *service_; }
  FakeBroker& broker() { return broker_; }
  storage::WriteExecutor& executor() { return *executor_; }

 private:
  const std::string& Keep(const std::string& s) {
    std::lock_guard lock(names_mu_);
    for (const auto& n : names_)
      if (*n == s) return *n;
    names_.push_back(std::make_unique<std::string>(s));
    return *names_.back();
  }

  storage::Store* store_;
  FakeBroker broker_;
  std::unique_ptr<storage::WriteExecutor> executor_;
  std::unique_ptr<ImService> service_;
  int next_req_ = 0;
  std::mutex names_mu_;
  std::vector<std::unique_ptr<std::string>> names_;
};

}  // namespace parley::im::testing
