// Plugin hooks: how code outside the broker core (the IM layer) takes part in the life of connections and
// messages, the way Mosquitto's plugins register on MOSQ_EVT_*. Plugins are registered on the Broker before it
// serves (Broker::AddHooks) and called in registration order.
//
// Threads: OnConnected, OnDisconnected and OnPublish run on the loop thread of the connection concerned, OnTick
// on the broker's tick thread; several loops call in at once, so implementations must be thread-safe. No hook
// may block: slow or durable work goes to the plugin's own threads (or the storage executor) and reports back
// through the completion it was handed.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "broker/api/auth.h"
#include "broker/api/message.h"

namespace parley::broker {

// The acknowledgement of a PUBLISH a plugin took over (OnPublish returned kHandled). The broker sends the
// PUBACK / PUBREC only when Complete is called — so a plugin can acknowledge only what it has made durable —
// and every later ack of that connection waits behind it (acks keep the order of the packets they answer).
class PublishCompletion {
 public:
  virtual ~PublishCompletion() = default;
  // Any thread, once (later calls are ignored). `reason`: an MQTT 5 reason code for the PUBACK / PUBREC:
  // 0x00 success, 0x10 no matching subscribers, or >= 0x80 refused (e.g. 0x87 not authorized, 0x97 quota
  // exceeded, 0x99 payload format invalid). MQTT 3.1.1 acks carry no reason: a refusal closes a 3.1.1
  // connection instead, so the client sends the message again after reconnecting.
  virtual void Complete(uint8_t reason) = 0;
};
using PublishCompletionPtr = std::shared_ptr<PublishCompletion>;

// What the broker offers its plugins. Implemented by the broker core; every method may be called from any
// thread, including from inside a hook.
class BrokerServices {
 public:
  virtual ~BrokerServices() = default;
  // Routes `msg` to every matching subscription (and stores it as retained if it says so), as if a client had
  // published it but without ACL checks, and without offering it to the plugins' OnPublish. `msg->
  // origin_client_id` matters for No Local. Returns the number of receivers that took it.
  virtual size_t PublishFromPlugin(const MessagePtr& msg) = 0;
};

// A plugin's answer to an authorisation question (Hooks::OnAuthorize).
enum class HookAccess : uint8_t {
  kNoOpinion,  // not my topic: the next plugin, then the broker's ACL decide
  kAllow,      // allowed; the broker's ACL is not consulted
  kDeny,       // refused (PUBLISH: 0x87; a 3.1.1 publisher, which has no reason codes, gets its ack and the
               // message is dropped, as with the ACL file; SUBSCRIBE: 0x80)
};

enum class HookResult : uint8_t {
  kContinue,  // not mine: the next plugin sees it, then the broker routes it as usual
  kHandled,   // mine: the broker neither routes nor retains it; the plugin acknowledges it (QoS 1/2)
};

class Hooks {
 public:
  virtual ~Hooks() = default;

  // Once, when the plugin is added (Broker::AddHooks), before any other hook.
  virtual void OnStart(BrokerServices& broker) {}

  // A client is connected: CONNACK (success) has been sent.
  virtual void OnConnected(const ClientIdentity& who) {}
  // The connection of a client that had connected ended. `graceful`: it sent DISCONNECT (reason 0x00).
  virtual void OnDisconnected(const ClientIdentity& who, bool graceful) {}

  // May `who` publish to `topic` (kWrite) or subscribe to the filter `topic` (kRead)? Asked on the loop
  // thread before the broker's ACL, for every PUBLISH, SUBSCRIBE filter and will; must be fast and must not
  // block (no storage reads). The first plugin with an opinion decides.
  virtual HookAccess OnAuthorize(const ClientIdentity& who, std::string_view topic, Access access) {
    return HookAccess::kNoOpinion;
  }
  // A subscription of `who` to `filter` was granted (`added`) or removed by UNSUBSCRIBE (!added). Not
  // called for subscriptions that end with their session, nor for those restored at start.
  virtual void OnSubscription(const ClientIdentity& who, std::string_view filter, bool added) {}

  // A PUBLISH from a connected client, after the broker's own checks (topic, alias, ACL write access, payload
  // format), before it is routed. `qos` is the publisher's QoS. `done` is null for QoS 0; for QoS 1/2 the
  // plugin that returns kHandled must call done->Complete exactly once (synchronously or later, from any
  // thread). A QoS 2 message may be offered again after a broker crash (its packet id and the plugin's own
  // write are not one atomic write): plugins that take QoS 2 must be idempotent — the IM layer deduplicates
  // by client_msg_id.
  virtual HookResult OnPublish(const ClientIdentity& who, const MessagePtr& msg, const PublishCompletionPtr& done) {
    return HookResult::kContinue;
  }

  // Periodic upkeep, about every 200 ms.
  virtual void OnTick() {}
};

}  // namespace parley::broker
