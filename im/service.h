// ImService: the IM layer as a broker plugin (broker/api/hooks.h). parleyd creates one, Start()s it, and adds
// it to the broker with Broker::AddHooks; the broker then hands it every PUBLISH, SUBSCRIBE and will under
// "$im/" and tells it who connects and disconnects.
//
// Threads: the hooks run on the broker's loop threads and only check, decode and post; the writer strand and
// the reader thread (im/README.md) do the work. Start and Stop: the thread that owns the service.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "broker/api/hooks.h"
#include "im/context.h"
#include "im/files.h"
#include "im/push.h"
#include "im/reader.h"
#include "im/task_queue.h"
#include "im/writer.h"

namespace parley::im {

class ImService final : public broker::Hooks {
 public:
  // `store` and `executor` (the broker's, shared) must outlive the service; the IM families start at index
  // `family_base` of the store's family list (keys.h FamilyNames()).
  ImService(Options options, storage::Store* store, storage::WriteExecutor* executor, uint32_t family_base,
            const Clock& clock);
  // Stop().
  ~ImService() override;

  // Optional parts, before Start(): file transfer (the FileStore opens its directory here) and push
  // notifications (a dispatcher thread per Start). Errors name what is wrong.
  Status EnableFiles(FilesOptions options);
  Status EnablePush(PushOptions options);
  // The file store, for its HTTP routes (FileStore::AddRoutes); null unless enabled.
  FileStore* files() { return files_.get(); }

  // Reads what the IM layer needs from disk, starts the file collector and the push dispatcher. Before
  // Broker::AddHooks.
  Status Start();
  // Finishes the work already queued and stops the threads; later hooks are ignored. Call after the broker has
  // stopped serving and BEFORE the executor shuts down... or after: either order is safe, but requests whose
  // writes are still in the executor then get no answer (their connections are gone anyway).
  void Stop();

  Writer::Stats writer_stats() const { return writer_.stats(); }
  // parley_im_requests_total{op}, parley_im_errors_total{code}, parley_im_acks_total, parley_im_duplicates_total,
  // parley_im_send_seconds, parley_im_sync_seconds (im/metrics.h). Any thread; a metrics::Registry collector.
  void CollectMetrics(std::vector<metrics::Family>& out) const;

  // The admin API's way in (im/admin.h): handles `req` exactly as if `acting_user` had sent it from a device
  // (same routing to the writer strand or the reader, same checks, durability and live delivery), plus the
  // operator rights of Origin if `operator_rights` (then `acting_user` is normally "": docs/protocol.md). The
  // Response goes to `done`, once: on the strand or the reader, or on the calling thread if refused at once
  // (stopped, busy, no operation, typing). If the service stops before answering, `done` is destroyed uncalled.
  // Any thread.
  void Admin(v1::Request req, std::string acting_user, bool operator_rights,
             std::function<void(v1::Response&)> done);

  // broker::Hooks
  void OnStart(broker::BrokerServices& broker) override;
  broker::HookAccess OnAuthorize(const broker::ClientIdentity& who, std::string_view topic,
                                 broker::Access access) override;
  void OnSubscription(const broker::ClientIdentity& who, std::string_view filter, bool added) override;
  void OnConnected(const broker::ClientIdentity& who) override;
  void OnDisconnected(const broker::ClientIdentity& who, bool graceful) override;
  broker::HookResult OnPublish(const broker::ClientIdentity& who, const broker::MessagePtr& msg,
                               const broker::PublishCompletionPtr& done) override;
  void OnTick() override;

 private:
  // Posts a decoded request to the reader (queries) or the writer strand (everything else).
  void Route(Origin from, std::shared_ptr<v1::Request> req);

  // The push dispatcher's look-ups (its own thread): a user's registrations and settings, and the badge.
  PushUserInfo PushInfo(const std::string& user);

  Context ctx_;
  std::unique_ptr<FileStore> files_;
  std::unique_ptr<PushDispatcher> push_;
  TaskQueue strand_;
  TaskQueue reader_queue_;
  Writer writer_;
  Reader reader_;
  std::atomic<bool> tick_queued_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace parley::im
