// Client: SUBSCRIBE and UNSUBSCRIBE, including share groups and retained delivery on subscribe.
#include <spdlog/spdlog.h>

#include "broker/core/client.h"
#include "broker/core/topic_levels.h"

namespace parley::broker {

using mqtt::Version;
namespace rc = mqtt::rc;

namespace {

bool HasWildcard(std::string_view f) { return f.find_first_of("+#") != std::string_view::npos; }

}  // namespace

void Client::HandleSubscribe(const mqtt::Subscribe& sub) {
  const BrokerOptions& o = broker_.options();
  const bool v5 = version_ == Version::kV5;
  uint32_t sub_id = 0;
  if (!sub.props.subscription_identifiers.empty()) {
    if (!o.subscription_identifiers)
      return Fail(rc::kSubscriptionIdentifiersNotSupported, "subscription identifiers not supported");
    sub_id = sub.props.subscription_identifiers.front();
  }
  const ClientIdentity who = Identity();

  struct Granted {
    std::string filter;
    mqtt::SubscribeOptions opts;
    bool existed;
  };
  std::vector<Granted> granted;
  mqtt::Suback ack;
  ack.packet_id = sub.packet_id;
  for (const mqtt::Subscription& s : sub.subscriptions) {
    // MQTT 5 reason codes; 3.1.1 knows only 0x80 for failure.
    auto refuse = [&](uint8_t reason) { ack.reason_codes.push_back(v5 ? reason : mqtt::rc311::kSubackFailure); };
    SharedFilter sf;
    const bool shared = ParseSharedFilter(s.filter, &sf);
    const std::string_view filter = shared ? sf.filter : std::string_view(s.filter);
    if (shared && !sf.valid) {
      refuse(rc::kTopicFilterInvalid);
      continue;
    }
    if (shared && s.opts.no_local) return Fail(rc::kProtocolError, "No Local on a shared subscription");
    if (!mqtt::IsValidTopicFilter(filter) || filter.size() > o.max_topic_length ||
        CountLevels(filter) > o.max_topic_levels) {
      refuse(rc::kTopicFilterInvalid);
      continue;
    }
    if (shared && !o.shared_subscriptions) {
      refuse(rc::kSharedSubscriptionsNotSupported);
      continue;
    }
    if (!o.wildcard_subscriptions && HasWildcard(filter)) {
      refuse(rc::kWildcardSubscriptionsNotSupported);
      continue;
    }
    // A refused filter gets 0x80 in both versions: the Paho v5 test suite (and client) treat 0x87 in
    // a SUBACK as a failure of the whole exchange (docs/conformance.md).
    if (!broker_.Allowed(who, filter, Access::kRead)) {
      refuse(rc::kUnspecifiedError);
      continue;
    }
    mqtt::SubscribeOptions opts = s.opts;
    opts.qos = std::min<uint8_t>(opts.qos, o.max_qos);
    bool over_quota = false;
    {
      std::lock_guard lock(session_->mu_);
      // Taken over on another thread (the Kick is on its way to this loop): the session is no longer
      // this connection's to change, and an ended one must not go back into the tree.
      if (session_->ended_ || session_->link_generation_ != generation_) return;
      over_quota = !broker_.StoreWritableLocked(*session_) ||  // disk full: cannot be made durable
                   (o.max_subscriptions_per_client && !session_->subscriptions_.count(s.filter) &&
                    session_->subscriptions_.size() >= o.max_subscriptions_per_client);
      if (!over_quota) {
        const SubscriptionRecord& rec = session_->subscriptions_[s.filter] = SubscriptionRecord{opts, sub_id};
        broker_.StoreSubscriptionLocked(*session_, s.filter, &rec);
      }
    }
    if (over_quota) {
      refuse(rc::kQuotaExceeded);
      continue;
    }
    const bool existed = broker_.tree().Subscribe(session_, s.filter, opts, sub_id);
    {
      // A clean-start takeover that ended the session between the check above and the tree insert
      // may have unsubscribed before we subscribed: undo it ourselves.
      std::unique_lock lock(session_->mu_);
      if (session_->ended_) {
        lock.unlock();
        broker_.tree().Unsubscribe(session_.get(), s.filter);
        return;
      }
    }
    ack.reason_codes.push_back(opts.qos);
    for (Hooks* h : broker_.hooks()) h->OnSubscription(who, s.filter, true);
    if (!shared) granted.push_back(Granted{std::string(filter), opts, existed});
  }
  Reply(std::move(ack));  // once the subscriptions are durable

  // Retained messages (MQTT-3.3.1-9..11), queued behind the SUBACK.
  for (const Granted& g : granted) {
    if (g.opts.retain_handling == 2 || (g.opts.retain_handling == 1 && g.existed)) continue;
    std::vector<MessagePtr> msgs;
    const SteadyTime now = broker_.clock().Now();
    broker_.retained().Match(g.filter, [&](const MessagePtr& m) {
      if (!m->ExpiredAt(now)) msgs.push_back(m);
    });
    for (MessagePtr& m : msgs) {
      if (!broker_.Allowed(who, m->topic, Access::kRead)) continue;
      Delivery d;
      d.qos = std::min(m->qos, g.opts.qos);
      d.retain = true;
      d.msg = std::move(m);
      if (sub_id) d.sub_ids.push_back(sub_id);
      broker_.Deliver(session_, std::move(d), worker_);
    }
  }
}

void Client::HandleUnsubscribe(const mqtt::Unsubscribe& u) {
  mqtt::Unsuback ack;
  ack.packet_id = u.packet_id;
  for (const std::string& f : u.filters) {
    bool had;
    {
      std::lock_guard lock(session_->mu_);
      had = session_->subscriptions_.erase(f) > 0;
      if (had) broker_.StoreSubscriptionLocked(*session_, f, nullptr);
    }
    if (had) {
      broker_.tree().Unsubscribe(session_.get(), f);
      const ClientIdentity who = Identity();
      for (Hooks* h : broker_.hooks()) h->OnSubscription(who, f, false);
    }
    if (version_ == Version::kV5) ack.reason_codes.push_back(had ? rc::kSuccess : rc::kNoSubscriptionExisted);
    // A member leaving a share group hands what it still holds for that group to the others.
    SharedFilter sf;
    if (had && ParseSharedFilter(f, &sf)) broker_.RerouteShared(session_, &f, worker_);
  }
  Reply(std::move(ack));
}

}  // namespace parley::broker
