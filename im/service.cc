#include "im/service.h"

#include <spdlog/spdlog.h>

#include "im/topics.h"

namespace parley::im {

namespace {

// Requests waiting for a thread past this are refused at once (ERR_UNAVAILABLE) instead of queued: a flood
// must not grow memory without bound.
constexpr size_t kMaxQueued = 50'000;

bool IsQuery(v1::Request::OpCase op) {
  switch (op) {
    case v1::Request::kSync:
    case v1::Request::kHistory:
    case v1::Request::kRange:
    case v1::Request::kGetConversation:
    case v1::Request::kListMembers:
    case v1::Request::kPresence:
    case v1::Request::kCreateUpload:  // the file store writes its own records: not the writer's
    case v1::Request::kFileAccess:
      return true;
    default:
      return false;
  }
}

// What an operator may do without acting as a user (Origin::operator_rights).
bool OperatorOp(const v1::Request& req) {
  switch (req.op_case()) {
    case v1::Request::kGetConversation:
    case v1::Request::kListMembers:
    case v1::Request::kHistory:
    case v1::Request::kRange:
    case v1::Request::kAddMembers:
    case v1::Request::kRemoveMembers:
      return true;
    case v1::Request::kSend:  // any other type needs a member as the sender
      return req.send().type() == v1::MSG_SYSTEM;
    default:
      return false;
  }
}

}  // namespace

ImService::ImService(Options options, storage::Store* store, storage::WriteExecutor* executor, uint32_t family_base,
                     const Clock& clock)
    : ctx_(options, store, executor, family_base, clock),
      strand_("parley-im"),
      reader_queue_("parley-im-read"),
      writer_(ctx_, strand_),
      reader_(ctx_) {}

ImService::~ImService() { Stop(); }

Status ImService::EnableFiles(FilesOptions options) {
  auto files = std::make_unique<FileStore>(std::move(options), ctx_.store, ctx_.fam, ctx_.clock);
  if (Status st = files->Open(); !st.ok()) return st;
  files_ = std::move(files);
  ctx_.files = files_.get();
  return Status::Ok();
}

Status ImService::EnablePush(PushOptions options) {
  if (Status st = PushDispatcher::Validate(options); !st.ok()) return st;
  PushDispatcher::Lookups lookups;
  lookups.user = [this](const std::string& user) { return PushInfo(user); };
  lookups.badge = [this](const std::string& user) { return reader_.TotalUnread(user); };
  push_ = std::make_unique<PushDispatcher>(std::move(options), std::move(lookups), ctx_.clock);
  ctx_.push = push_.get();
  return Status::Ok();
}

PushUserInfo ImService::PushInfo(const std::string& user) {
  PushUserInfo info;
  storage::IteratorOptions io;
  io.prefix = UserPrefix(user);
  auto it = ctx_.store->NewIterator(ctx_.fam(Fam::kPushTokens), io);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string u, token;
    st::PushTokenRecord rec;
    if (!DecodePushToken(it->key(), &u, &token) ||
        !rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      continue;
    info.targets.push_back({rec.provider(), std::move(token), rec.platform()});
  }
  if (!it->status().ok()) spdlog::warn("im: push tokens of {} unreadable: {}", user, it->status().ToString());
  auto v = ctx_.store->Get(ctx_.fam(Fam::kSettings), SettingsKey(user));
  st::UserSettings s;
  if (v.ok() && v.value() && s.ParseFromString(*v.value())) {
    info.preview = s.push_preview();
    info.mentions_when_muted = s.push_mentions_when_muted();
  }
  return info;
}

Status ImService::Start() {
  if (Status st = writer_.Start(); !st.ok()) return st;
  if (files_) files_->Start();
  if (push_) push_->Start();
  return Status::Ok();
}

void ImService::Stop() {
  stopped_ = true;
  reader_queue_.Stop();
  strand_.Stop();
  // After the strand: nothing enqueues pushes or pins files any more.
  if (push_) push_->Stop();
  if (files_) files_->Stop();
}

void ImService::OnStart(broker::BrokerServices& broker) { ctx_.broker = &broker; }

broker::HookAccess ImService::OnAuthorize(const broker::ClientIdentity& who, std::string_view topic,
                                          broker::Access access) {
  if (!IsImTopic(topic)) return broker::HookAccess::kNoOpinion;
  // IM identity is the authenticated user name; a device is named by its client id.
  if (!who.username || who.username->empty() || !IsValidDeviceId(who.client_id)) return broker::HookAccess::kDeny;
  if (access == broker::Access::kWrite)
    return ParseRequestTopic(topic) ? broker::HookAccess::kAllow : broker::HookAccess::kDeny;
  // Read: only the device's own topics (any filter below them, e.g. a custom MQTT 5 response topic).
  const std::string own = DeviceTopicPrefix(who.client_id);
  return topic.starts_with(own) && topic.size() > own.size() ? broker::HookAccess::kAllow
                                                             : broker::HookAccess::kDeny;
}

void ImService::OnSubscription(const broker::ClientIdentity& who, std::string_view filter, bool added) {
  if (stopped_ || !who.username || !IsImTopic(filter)) return;
  const std::optional<Format> f = ParseDeviceTopic(filter, who.client_id);
  if (!f) return;
  strand_.Post([this, user = std::string(*who.username), cid = std::string(who.client_id), f = *f, added] {
    writer_.Subscription(user, cid, f, added);
  });
}

void ImService::OnConnected(const broker::ClientIdentity& who) {
  if (stopped_ || !who.username || who.username->empty() || !IsValidDeviceId(who.client_id)) return;
  strand_.Post([this, user = std::string(*who.username), cid = std::string(who.client_id)] {
    writer_.DeviceConnected(user, cid);
  });
}

void ImService::OnDisconnected(const broker::ClientIdentity& who, bool graceful) {
  if (stopped_ || !who.username || who.username->empty() || !IsValidDeviceId(who.client_id)) return;
  strand_.Post([this, user = std::string(*who.username), cid = std::string(who.client_id)] {
    writer_.DeviceDisconnected(user, cid);
  });
}

broker::HookResult ImService::OnPublish(const broker::ClientIdentity& who, const broker::MessagePtr& msg,
                                        const broker::PublishCompletionPtr& done) {
  if (!IsImTopic(msg->topic)) return broker::HookResult::kContinue;
  std::optional<Format> format = ParseRequestTopic(msg->topic);
  if (!format || !who.username || stopped_) {  // OnAuthorize refused these already; be safe anyway
    if (done) done->Complete(0x87);
    return broker::HookResult::kHandled;
  }
  Origin from;
  from.user = std::string(*who.username);
  from.device = std::string(who.client_id);
  from.done = done;
  if (const mqtt::Properties* p = msg->props.get()) {
    if (p->content_type)
      if (std::optional<Format> f = FormatFromContentType(*p->content_type)) format = f;
    // A response topic is honoured only inside the device's own topics (where it may subscribe).
    if (p->response_topic && p->response_topic->size() > DeviceTopicPrefix(from.device).size() &&
        p->response_topic->starts_with(DeviceTopicPrefix(from.device)) &&
        p->response_topic->find_first_of("+#") == std::string::npos)
      from.response_topic = *p->response_topic;
    if (p->correlation_data) from.correlation = *p->correlation_data;
  }
  from.format = *format;

  auto req = std::make_shared<v1::Request>();
  from.received = ctx_.clock.Now();
  if (Status st = Decode(msg->payload, from.format, req.get()); !st.ok()) {
    ctx_.metrics.Request(v1::Request::OP_NOT_SET);
    ctx_.RespondError(from, "", v1::ERR_BAD_REQUEST, st.message());
    return broker::HookResult::kHandled;
  }
  from.op = req->op_case();
  ctx_.metrics.Request(from.op);
  if (req->op_case() == v1::Request::OP_NOT_SET) {
    ctx_.RespondError(from, req->req_id(), v1::ERR_BAD_REQUEST, "the request names no operation");
    return broker::HookResult::kHandled;
  }
  Route(std::move(from), std::move(req));
  return broker::HookResult::kHandled;
}

void ImService::Admin(v1::Request req, std::string acting_user, bool operator_rights,
                      std::function<void(v1::Response&)> done) {
  Origin from;
  from.user = std::move(acting_user);
  from.operator_rights = operator_rights;
  from.reply = std::move(done);
  if (stopped_) return ctx_.RespondError(from, req.req_id(), v1::ERR_UNAVAILABLE, "the IM layer is stopping", 1000);
  if (req.op_case() == v1::Request::OP_NOT_SET || req.op_case() == v1::Request::kTyping)  // typing: no answer
    return ctx_.RespondError(from, req.req_id(), v1::ERR_BAD_REQUEST, "not an operation the admin API makes");
  // Acting as nobody (""), only what operator rights cover (Origin): the rest would make "" a member.
  if (from.user.empty() && !(operator_rights && OperatorOp(req)))
    return ctx_.RespondError(from, req.req_id(), v1::ERR_BAD_REQUEST, "this operation needs an acting user");
  Route(std::move(from), std::make_shared<v1::Request>(std::move(req)));
}

void ImService::Route(Origin from, std::shared_ptr<v1::Request> req) {
  const bool query = IsQuery(req->op_case());
  TaskQueue& q = query ? reader_queue_ : strand_;
  if (q.pending() > kMaxQueued) {
    if (req->op_case() == v1::Request::kTyping) {  // never answered: dropped like any ephemeral signal
      if (from.done) from.done->Complete(0);
    } else {
      ctx_.RespondError(from, req->req_id(), v1::ERR_UNAVAILABLE, "server busy", 500);
    }
    return;
  }
  if (query) {
    q.Post([this, from = std::move(from), req] {
      const uint64_t cursor = reader_.Handle(from, *req);
      if (cursor && !from.device.empty())
        strand_.Post([this, cid = from.device, cursor] { writer_.SetDeviceCursor(cid, cursor); });
    });
  } else {
    q.Post([this, from = std::move(from), req] { writer_.Handle(from, *req); });
  }
}

void ImService::CollectMetrics(std::vector<metrics::Family>& out) const {
  ctx_.metrics.Collect(out);
  if (files_) files_->CollectMetrics(out);
  if (push_) push_->CollectMetrics(out);
}

void ImService::OnTick() {
  if (stopped_ || tick_queued_.exchange(true)) return;  // one tick in the queue at a time
  strand_.Post([this] {
    tick_queued_ = false;
    writer_.Tick();
  });
}

}  // namespace parley::im
