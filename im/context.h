// What the IM writer and reader share: the store and its families, the clock, the broker (for publishing to
// devices), the committed-stamp watermark, and the map of online devices.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "broker/api/hooks.h"
#include "im.pb.h"
#include "im/format.h"
#include "im/keys.h"
#include "im/metrics.h"
#include "im/options.h"
#include "storage/executor.h"
#include "storage/store.h"

namespace parley::im {

class FileStore;       // im/files.h
class PushDispatcher;  // im/push.h

// Where a request came from and where its answer goes. A device's request names its user and client id; an
// in-process caller (the admin API, ImService::Admin) has no device and takes the answer through `reply`.
struct Origin {
  std::string user;    // acting user; "" = an operator (docs/protocol.md: empty sender / actor)
  std::string device;  // client id; "" for an in-process caller
  Format format = Format::kProtobuf;
  std::string response_topic;              // MQTT 5 Response Topic (within the device's own topics), or empty
  std::optional<std::string> correlation;  // MQTT 5 Correlation Data, echoed
  broker::PublishCompletionPtr done;       // null for QoS 0 requests
  // Set: the Response goes to this callback instead of being published. Called once per request, on the
  // thread that answers (the writer strand, the reader, or the caller's if refused at once).
  std::function<void(v1::Response&)> reply;
  // Operator rights (never for a device): may read any conversation (get, members, history, range), add and
  // remove members of any group without being a member or holding a role, and send MSG_SYSTEM messages.
  // Everything else is checked as for `user`.
  bool operator_rights = false;
  // For the metrics (ImMetrics): when a device's request arrived and its v1::Request::OpCase. Unset for
  // in-process callers.
  SteadyTime received{};
  int op = 0;
};

// A connected device and the formats it subscribed to (bit i = Format i).
struct OnlineDevice {
  std::string client_id;
  uint32_t formats = 0;
};

class Context {
 public:
  Context(Options options, storage::Store* store, storage::WriteExecutor* executor, uint32_t family_base,
          const Clock& clock)
      : options(options), store(store), executor(executor), fam(family_base), clock(clock) {}

  const Options options;
  storage::Store* const store;
  storage::WriteExecutor* const executor;
  const Families fam;
  const Clock& clock;
  broker::BrokerServices* broker = nullptr;  // set by OnStart, before any request
  // Optional parts, set before Start (ImService::EnableFiles / EnablePush) and never changed after: null when
  // not configured. Both are thread-safe.
  FileStore* files = nullptr;
  PushDispatcher* push = nullptr;

  // Every stamp up to this one is committed (written by the executor's callbacks, in order).
  std::atomic<uint64_t> committed_stamp{0};

  // Counted where requests enter (ImService::OnPublish) and where they are answered (Respond). Any thread.
  mutable ImMetrics metrics;

  // Answers a request: the Response goes to the origin's `reply` callback if set, else to its response topic
  // or device topic in its format; then the request's PUBLISH is acknowledged. Any thread.
  void Respond(const Origin& to, v1::Response& response) const;
  void RespondError(const Origin& to, const std::string& req_id, v1::ErrorCode code, std::string message,
                    uint32_t retry_after_ms = 0) const;
  // Sends `event` to every online device of `user` except `except_device`, at QoS `qos`. Encodes once per
  // format in `cache` (indexed by Format) so one event sent to many devices is encoded at most three times.
  void PushEvent(const std::string& user, const v1::ServerFrame& frame, std::string_view except_device,
                 std::string* cache, uint8_t qos = 1) const;

  // Online devices, written by the writer strand, read by both.
  void SetOnline(const std::string& user, const OnlineDevice& d);
  // Removes the device; returns how many devices the user still has online.
  size_t SetOffline(const std::string& user, std::string_view client_id);
  bool IsOnline(const std::string& user) const;
  std::vector<OnlineDevice> DevicesOf(const std::string& user) const;

 private:
  void PublishTo(std::string topic, std::string payload, Format f, const std::optional<std::string>& correlation,
                 uint8_t qos) const;

  mutable std::mutex online_mu_;
  std::unordered_map<std::string, std::vector<OnlineDevice>> online_;  // guarded by online_mu_
};

// Milliseconds since the epoch -> stamp units (microseconds); and back.
inline uint64_t StampFromMillis(int64_t ms) { return ms <= 0 ? 0 : static_cast<uint64_t>(ms) * 1000; }

}  // namespace parley::im
