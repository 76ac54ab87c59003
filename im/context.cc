#include "im/context.h"

#include <algorithm>

#include "im/topics.h"

namespace parley::im {

void Context::PublishTo(std::string topic, std::string payload, Format f,
                        const std::optional<std::string>& correlation, uint8_t qos) const {
  auto m = std::make_shared<broker::Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  m->transient = true;  // the IM store is the source of truth: never duplicated into session queues on disk
  if (correlation) {
    auto props = std::make_unique<mqtt::Properties>();
    props->correlation_data = *correlation;
    props->content_type = std::string(FormatContentType(f));
    m->props = std::move(props);
  }
  broker->PublishFromPlugin(m);
}

void Context::Respond(const Origin& to, v1::Response& response) const {
  metrics.Response(to.op, to.received, response, clock.Now());
  if (to.reply) {  // an in-process caller: no device, nothing to publish
    to.reply(response);
    if (to.done) to.done->Complete(0);
    return;
  }
  v1::ServerFrame frame;
  frame.mutable_response()->Swap(&response);
  // The answer speaks the request's format, on that format's device topic — unless the device is known to
  // listen only in other formats: then it comes in the first of those, where the device will see it.
  Format f = to.format;
  if (to.response_topic.empty()) {
    std::lock_guard lock(online_mu_);
    auto it = online_.find(to.user);
    if (it != online_.end()) {
      for (const OnlineDevice& d : it->second) {
        if (d.client_id != to.device || d.formats == 0 || (d.formats & (1u << static_cast<int>(f)))) continue;
        for (int i = 0; i < kFormatCount; ++i) {
          if (d.formats & (1u << i)) {
            f = static_cast<Format>(i);
            break;
          }
        }
      }
    }
  }
  std::string payload = Encode(frame, f);
  PublishTo(to.response_topic.empty() ? DeviceTopic(to.device, f) : to.response_topic, std::move(payload), f,
            to.correlation, 1);
  if (to.done) to.done->Complete(0);
}

void Context::RespondError(const Origin& to, const std::string& req_id, v1::ErrorCode code, std::string message,
                           uint32_t retry_after_ms) const {
  v1::Response r;
  r.set_req_id(req_id);
  r.mutable_error()->set_code(code);
  r.mutable_error()->set_message(std::move(message));
  if (retry_after_ms) r.mutable_error()->set_retry_after_ms(retry_after_ms);
  Respond(to, r);
}

void Context::PushEvent(const std::string& user, const v1::ServerFrame& frame, std::string_view except_device,
                        std::string* cache, uint8_t qos) const {
  std::vector<OnlineDevice> devices = DevicesOf(user);
  for (const OnlineDevice& d : devices) {
    if (d.client_id == except_device) continue;
    for (int i = 0; i < kFormatCount; ++i) {
      if (!(d.formats & (1u << i))) continue;
      const Format f = static_cast<Format>(i);
      if (cache[i].empty()) cache[i] = Encode(frame, f);
      PublishTo(DeviceTopic(d.client_id, f), cache[i], f, std::nullopt, qos);
    }
  }
}

void Context::SetOnline(const std::string& user, const OnlineDevice& d) {
  std::lock_guard lock(online_mu_);
  auto& list = online_[user];
  for (OnlineDevice& e : list) {
    if (e.client_id == d.client_id) {
      e = d;
      return;
    }
  }
  list.push_back(d);
}

size_t Context::SetOffline(const std::string& user, std::string_view client_id) {
  std::lock_guard lock(online_mu_);
  auto it = online_.find(user);
  if (it == online_.end()) return 0;
  auto& list = it->second;
  list.erase(std::remove_if(list.begin(), list.end(), [&](const OnlineDevice& e) { return e.client_id == client_id; }),
             list.end());
  const size_t left = list.size();
  if (left == 0) online_.erase(it);
  return left;
}

bool Context::IsOnline(const std::string& user) const {
  std::lock_guard lock(online_mu_);
  return online_.count(user) > 0;
}

std::vector<OnlineDevice> Context::DevicesOf(const std::string& user) const {
  std::lock_guard lock(online_mu_);
  auto it = online_.find(user);
  return it == online_.end() ? std::vector<OnlineDevice>{} : it->second;
}

}  // namespace parley::im
