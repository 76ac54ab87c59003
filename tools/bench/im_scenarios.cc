// The IM scenarios (tools/README.md): im-direct, im-group and im-sync. Each run names its users and
// client_msg_ids after its run id, so it starts from nothing on the broker and never meets an older run's
// state. The phases are those of the MQTT scenarios (control.h): setup (connect, subscribe to the device
// topic, open the conversations), publish (send), drain (outstanding acks and deliveries), close.
#include <uv.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "tools/bench/control.h"
#include "tools/bench/im_device.h"
#include "tools/bench/scenario.h"
#include "tools/bench/timing.h"
#include "tools/bench/worker.h"

namespace parley::bench {

namespace {

constexpr size_t kMissingExamples = 8;


// One set of worker loops with its own control block: im-sync runs two of them, one after the other.
class Stage {
 public:
  Stage(const RunConfig* cfg, size_t threads, size_t clients) {
    size_t n = std::max<size_t>(1, std::min(threads, clients));
    for (size_t i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(&ctl_, cfg));
  }
  ~Stage() { ShutDown(); }
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  ImDevice* Add(ImShared* shared, ImDevicePlan plan) {
    Worker* w = workers_[devices_.size() % workers_.size()].get();
    auto d = std::make_unique<ImDevice>(w, shared, std::move(plan));
    ImDevice* raw = d.get();
    w->Add(std::unique_ptr<Conn>(std::move(d)));
    devices_.push_back(raw);
    return raw;
  }

  Control& ctl() { return ctl_; }
  const std::vector<ImDevice*>& devices() const { return devices_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }

  void Start() {
    for (auto& w : workers_) w->Start();
    started_ = true;
  }
  void SetPhase(Phase p) {
    ctl_.SetPhase(p);
    for (auto& w : workers_) w->Wake();
  }
  bool AllSeen(Phase p) const {
    for (auto& w : workers_)
      if (w->seen_phase() < p) return false;
    return true;
  }

  // Every device connected, subscribed and set up, within `timeout` seconds; else the reason.
  Status WaitReady(double timeout, const char* what) {
    uint64_t deadline = uv_hrtime() + Ns(timeout);
    const uint32_t total = static_cast<uint32_t>(devices_.size());
    while (ctl_.ready.load() < total) {
      if (ctl_.failed()) return Status::Error(ctl_.error());
      if (g_interrupts.load() > 0) return Status::Error("interrupted while connecting");
      if (uv_hrtime() > deadline) {
        char b[300];
        std::snprintf(
            b, sizeof b,
            "timed out after %g s (--connect-timeout): %u of %u devices connected, subscribed and %s "
            "(is the IM layer enabled: [im] enabled = true?)",
            timeout, ctl_.ready.load(), total, what);
        return Status::Error(b);
      }
      Nap();
    }
    return Status::Ok();
  }

  // Ends every loop and joins its thread. The loops force-close what does not close in 2 s; if they still
  // have not ended a few seconds later something is badly wrong, and we must not hang.
  void ShutDown() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    StopWorkers(ctl_, workers_);
  }

 private:
  Control ctl_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<ImDevice*> devices_;
  bool started_ = false, stopped_ = false;
};

void AddRefusals(const ImDevice& d, Report::Im* im) {
  for (const auto& [code, n] : d.refusals()) im->refusals[code] += n;
  if (!d.last_refusal().empty()) im->last_refusal = d.last_refusal();
}

void RefusalWarnings(Report& rep) {
  const Report::Im& im = *rep.im;
  if (rep.rejected == 0) return;
  std::string codes;
  for (const auto& [code, n] : im.refusals)
    codes += (codes.empty() ? "" : ", ") + code + " " + std::to_string(n);
  rep.warnings.push_back(std::to_string(rep.rejected) + " sends refused (" + codes +
                         "; last: " + im.last_refusal + ")");
  if (im.refusals.count("ERR_RATE_LIMITED")) {
    rep.warnings.emplace_back(
        "the broker rate-limits sends per user ([im] send_rate, send_burst): "
        "set [im] send_rate = 0 to measure the IM layer rather than its limiter");
  }
}

// Sender bookkeeping shared by the live scenarios and im-sync's preload.
void CollectSenders(const std::vector<ImDevice*>& senders, Report& rep, uint64_t* last_ack,
                    uint64_t* first_send) {
  rep.window = UINT32_MAX;
  for (ImDevice* s : senders) {
    rep.sent += s->sent();
    rep.acked += s->acked();
    rep.rejected += s->refused();
    rep.unacked += s->pending();
    rep.im->duplicate_acks += s->duplicate_acks();
    rep.im->e2e_stalls += s->stalls();
    rep.window = std::min(rep.window, s->window());
    *last_ack = std::max(*last_ack, s->last_ack_ns());
    if (s->first_send_ns() && (*first_send == 0 || s->first_send_ns() < *first_send))
      *first_send = s->first_send_ns();
    AddRefusals(*s, &*rep.im);
  }
  if (senders.empty()) rep.window = 0;
}

// im-direct and im-group: connect, open the conversations, send for --duration, drain, verify.
Status RunLive(const Options& o, const RunConfig& cfg, ImShared& shared, Report& rep) {
  Report::Im& im = *rep.im;
  const bool group = o.scenario == "im-group";
  const std::string& p = shared.prefix;
  std::vector<ImDevicePlan> plans;
  uint32_t nsenders = 0;
  if (group) {
    nsenders = o.senders;
    im.members = o.members;
    im.online = o.online;
    std::vector<std::string> users;
    for (uint32_t i = 0; i < o.members; ++i) users.push_back(p + "-m" + std::to_string(i));
    for (uint32_t i = 0; i < o.online; ++i) {
      ImDevicePlan d;
      d.user = users[i];
      d.client_id = users[i] + "-phone";
      if (i < nsenders) {
        d.sender = static_cast<int32_t>(i);
        d.quota = o.count == 0 ? 0 : o.count / nsenders + (i < o.count % nsenders ? 1 : 0);
      }
      for (uint32_t s = 0; s < nsenders; ++s)
        if (s != i) d.sources.push_back(s);  // the server never echoes a message to the device that sent it
      if (i == 0) {
        d.setup = ImDevicePlan::Setup::kCreateGroup;
        d.members.assign(users.begin() + 1, users.end());
      }
      plans.push_back(std::move(d));
    }
  } else {
    nsenders = o.pairs;
    for (uint32_t i = 0; i < o.pairs; ++i) {
      ImDevicePlan a, b;
      a.user = p + "-a" + std::to_string(i);
      b.user = p + "-b" + std::to_string(i);
      a.client_id = a.user + "-phone";
      b.client_id = b.user + "-phone";
      a.setup = ImDevicePlan::Setup::kOpenDirect;
      a.peer = b.user;
      a.sender = static_cast<int32_t>(i);
      a.quota = o.count == 0 ? 0 : o.count / nsenders + (i < o.count % nsenders ? 1 : 0);
      b.sources = {i};
      plans.push_back(std::move(b));  // receivers connect first: they are subscribed before anyone sends
      plans.push_back(std::move(a));
    }
  }
  if (Status s = EnsureFiles(plans.size(), o.threads); !s.ok()) return s;
  if (Status s = CheckPorts(plans.size(), cfg.sources.size()); !s.ok()) return s;

  Stage st(&cfg, o.threads, plans.size());
  std::vector<ImDevice*> senders(nsenders, nullptr), receivers;
  for (ImDevicePlan& d : plans) {
    ImDevice* dev = st.Add(&shared, std::move(d));
    if (dev->plan().sender >= 0) senders[static_cast<size_t>(dev->plan().sender)] = dev;
    if (!dev->plan().sources.empty()) receivers.push_back(dev);
  }
  im.senders = nsenders;
  im.receivers = static_cast<uint32_t>(receivers.size());
  if (group) {
    // End-to-end window: a group sender waits for its messages to reach every online member's device, so the
    // run measures sustained fan-out, not how long the broker's queues take to overflow.
    for (ImDevice* r : receivers)
      for (uint32_t s : r->plan().sources) senders[s]->Watch(r->received_count(s));
  }

  uint64_t t_setup = uv_hrtime();
  st.Start();
  if (Status s = st.WaitReady(o.connect_timeout, group ? "the group created" : "their conversation opened");
      !s.ok())
    return s;
  for (ImDevice* s : senders)
    if (!s->conv_id().empty()) ++im.conversations;
  if (group) im.conversations = 1;

  // Send until the duration ends or every sender sent its share of --count.
  Control& ctl = st.ctl();
  uint64_t start = uv_hrtime();
  rep.setup_s = Secs(start - t_setup);
  ctl.SetStart(start);
  st.SetPhase(Phase::kPublish);
  uint64_t stop_deadline = start + Ns(o.duration);
  for (;;) {
    if (ctl.failed()) return Status::Error(ctl.error());
    if (g_interrupts.load() > 0) {
      rep.stop_reason = "interrupted";
      break;
    }
    if (o.count > 0 && ctl.publishers_done.load() == senders.size()) {
      rep.stop_reason = "count";
      break;
    }
    if (uv_hrtime() >= stop_deadline) {
      rep.stop_reason = "duration";
      break;
    }
    Nap();
  }
  uint64_t stop = uv_hrtime();
  rep.publish_s = Secs(stop - start);

  // Drain: answers to the sends outstanding, deliveries of what was acked, within the grace period.
  st.SetPhase(Phase::kDrain);
  auto drained = [&] {
    if (!st.AllSeen(Phase::kDrain)) return false;
    for (ImDevice* s : senders)
      if (s->pending_mon.load(std::memory_order_relaxed) > 0) return false;
    for (ImDevice* r : receivers) {
      uint64_t owed = 0;
      for (uint32_t s : r->plan().sources) owed += senders[s]->acked_mon.load(std::memory_order_relaxed);
      if (r->unique_mon.load(std::memory_order_relaxed) < owed) return false;
    }
    return true;
  };
  uint64_t grace_deadline = stop + Ns(o.grace);
  for (;;) {
    if (ctl.failed()) return Status::Error(ctl.error());
    if (drained()) {
      rep.drained = true;
      break;
    }
    if (uv_hrtime() >= grace_deadline || g_interrupts.load() > 1) break;
    Nap();
  }
  rep.drain_s = Secs(uv_hrtime() - stop);
  if (rep.has_broker) {
    std::string err;
    auto b = ReadProc(o.broker_pid, &err);
    if (!b) return Status::Error("broker process: " + err);
    rep.broker_after = *b;
  }
  st.ShutDown();

  // Results. The threads have been joined: everything below reads plain fields.
  for (auto& w : st.workers()) {
    rep.ack_latency.Merge(w->ack_latency());
    rep.e2e_latency.Merge(w->e2e_latency());
  }
  uint64_t last_ack = 0, first_send = 0, last_delivery = 0;
  CollectSenders(senders, rep, &last_ack, &first_send);
  for (ImDevice* d : st.devices()) {
    im.other_events += d->other_events();
    rep.stale += d->stale();
    rep.unexpected += d->unexpected();
  }
  std::vector<SeqSet> missing(senders.size());
  for (ImDevice* r : receivers) {
    rep.delivered += r->unique();
    rep.duplicates += r->duplicates();
    rep.reordered += r->reordered();
    last_delivery = std::max(last_delivery, r->last_delivery_ns());
    for (uint32_t s : r->plan().sources) {
      const SeqSet& acked = senders[s]->acked_set();
      const SeqSet* got = r->received(s);
      rep.expected += senders[s]->acked();
      std::string conv = r->received_conv(s);
      if (!conv.empty() && conv != senders[s]->conv_id()) {
        rep.warnings.push_back(r->client_id() + " received messages of sender " + std::to_string(s) + " in " +
                               (conv == "*" ? "several conversations" : conv) + ", not in " +
                               senders[s]->conv_id());
      }
      size_t words = std::max(acked.words(), got ? got->words() : 0);
      for (size_t i = 0; i < words; ++i) {
        uint64_t a = acked.word(i), g = got ? got->word(i) : 0;
        if (uint64_t extra = g & ~a) im.received_unacked += static_cast<uint64_t>(std::popcount(extra));
        uint64_t miss = a & ~g;
        if (!miss) continue;
        rep.lost += static_cast<uint64_t>(std::popcount(miss));
        missing[s].mutable_word(i) |= miss;
        for (uint64_t m = miss; m != 0 && rep.missing_examples.size() < kMissingExamples; m &= m - 1) {
          uint64_t seq = i * 64 + static_cast<uint64_t>(std::countr_zero(m));
          rep.missing_examples.push_back({s, seq, r->client_id()});
        }
      }
    }
  }
  for (const SeqSet& m : missing) rep.lost_messages += m.Count();
  if (rep.publish_s > 0) rep.sent_per_s = static_cast<double>(rep.sent) / rep.publish_s;
  if (last_ack > start) rep.last_ack_s = Secs(last_ack - start);
  if (last_delivery > start) rep.last_delivery_s = Secs(last_delivery - start);
  if (rep.acked > 0)
    rep.acked_per_s = static_cast<double>(rep.acked) / Secs(std::max(last_ack, stop) - start);
  if (rep.delivered > 0) {
    rep.delivered_per_s = static_cast<double>(rep.delivered) / Secs(std::max(last_delivery, stop) - start);
  }

  if (rep.window < o.inflight)
    rep.warnings.push_back("the broker's Receive Maximum limited the window to " +
                           std::to_string(rep.window));
  RefusalWarnings(rep);
  if (rep.unacked > 0 && rep.last_ack_s + 1 < rep.publish_s) {
    char b[160];
    std::snprintf(b, sizeof b, "acks stopped %.2f s into the sending phase (%.2f s long)", rep.last_ack_s,
                  rep.publish_s);
    rep.warnings.emplace_back(b);
  }
  if (!rep.drained) {
    char b[160];
    std::snprintf(b, sizeof b, "the grace period (%g s) ended before every answer and delivery arrived",
                  o.grace);
    rep.warnings.emplace_back(b);
  }
  if (im.e2e_stalls > 0) {
    rep.warnings.push_back("the end-to-end window stalled " + std::to_string(im.e2e_stalls) +
                           " times (nothing delivered for 1 s; the window was written off)");
  }
  if (im.duplicate_acks > 0)
    rep.warnings.push_back(std::to_string(im.duplicate_acks) +
                           " acks flagged duplicate for unique client_msg_ids");
  if (im.received_unacked > 0)
    rep.warnings.push_back(std::to_string(im.received_unacked) +
                           " messages delivered whose send was never acked");
  if (rep.stale > 0)
    rep.warnings.push_back(std::to_string(rep.stale) + " text messages from another run were received");
  if (rep.unexpected > 0)
    rep.warnings.push_back(std::to_string(rep.unexpected) +
                           " frames not expected (unknown sender or req_id, undecodable)");
  return Status::Ok();
}

// im-sync: a sender preloads the backlog into a direct conversation with an offline reader; then the reader's
// device connects, subscribes, syncs from cursor 0 and pages history until it holds every acked message.
Status RunSync(const Options& o, const RunConfig& cfg, ImShared& shared, Report& rep) {
  Report::Im& im = *rep.im;
  const std::string sender_user = shared.prefix + "-sender", reader_user = shared.prefix + "-reader";
  im.senders = 1;
  im.receivers = 1;
  if (Status s = EnsureFiles(1); !s.ok()) return s;

  // Stage 1: the preload, bounded by --duration (and --grace for the last answers).
  SeqSet acked;
  uint64_t acked_n = 0;
  {
    Stage st(&cfg, 1, 1);
    ImDevicePlan d;
    d.user = sender_user;
    d.client_id = sender_user + "-phone";
    d.setup = ImDevicePlan::Setup::kOpenDirect;
    d.peer = reader_user;
    d.sender = 0;
    d.quota = o.backlog;
    ImDevice* sender = st.Add(&shared, std::move(d));
    uint64_t t_setup = uv_hrtime();
    st.Start();
    if (Status s = st.WaitReady(o.connect_timeout, "their conversation opened"); !s.ok()) return s;
    im.conversations = 1;
    Control& ctl = st.ctl();
    uint64_t start = uv_hrtime();
    rep.setup_s = Secs(start - t_setup);
    ctl.SetStart(start);
    st.SetPhase(Phase::kPublish);
    uint64_t deadline = start + Ns(o.duration);
    for (;;) {
      if (ctl.failed()) return Status::Error(ctl.error());
      if (g_interrupts.load() > 0) {
        rep.stop_reason = "interrupted";
        break;
      }
      if (sender->answered_mon.load(std::memory_order_relaxed) >= o.backlog) {
        rep.stop_reason = "count";
        break;
      }
      if (uv_hrtime() >= deadline) {
        rep.stop_reason = "duration";
        break;
      }
      Nap();
    }
    uint64_t stop = uv_hrtime();
    rep.publish_s = Secs(stop - start);
    st.SetPhase(Phase::kDrain);
    uint64_t grace_deadline = stop + Ns(o.grace);
    for (;;) {
      if (ctl.failed()) return Status::Error(ctl.error());
      if (st.AllSeen(Phase::kDrain) && sender->pending_mon.load(std::memory_order_relaxed) == 0) {
        rep.drained = true;
        break;
      }
      if (uv_hrtime() >= grace_deadline || g_interrupts.load() > 1) break;
      Nap();
    }
    rep.drain_s = Secs(uv_hrtime() - stop);
    st.ShutDown();
    for (auto& w : st.workers()) rep.ack_latency.Merge(w->ack_latency());
    uint64_t last_ack = 0, first_send = 0;
    CollectSenders({sender}, rep, &last_ack, &first_send);
    if (last_ack > first_send && first_send > 0) im.preload_s = Secs(last_ack - first_send);
    if (last_ack > start) rep.last_ack_s = Secs(last_ack - start);
    if (rep.acked > 0)
      rep.acked_per_s = static_cast<double>(rep.acked) / Secs(std::max(last_ack, stop) - start);
    if (rep.publish_s > 0) rep.sent_per_s = static_cast<double>(rep.sent) / rep.publish_s;
    acked = sender->acked_set();
    acked_n = sender->acked();
    im.other_events += sender->other_events();
    rep.unexpected += sender->unexpected();
  }
  RefusalWarnings(rep);
  std::string err;
  if (rep.stop_reason == "interrupted") {
    if (rep.has_broker) {
      auto b = ReadProc(o.broker_pid, &err);
      if (!b) return Status::Error("broker process: " + err);
      rep.broker_after = *b;
    }
    return Status::Ok();
  }
  if (acked_n < o.backlog) {
    char b[200];
    std::snprintf(b, sizeof b, "the preload ended with %llu of %llu messages acked (stop reason: %s)",
                  static_cast<unsigned long long>(acked_n), static_cast<unsigned long long>(o.backlog),
                  rep.stop_reason.c_str());
    rep.warnings.emplace_back(b);
  }
  if (acked_n == 0) return Status::Error("nothing was preloaded: no send was acked");
  im.backlog = acked_n;

  // Stage 2: the reader, bounded by --connect-timeout and --sync-timeout.
  std::optional<ProcSample> b0;
  if (rep.has_broker) {
    b0 = ReadProc(o.broker_pid, &err);
    if (!b0) return Status::Error("broker process: " + err);
  }
  Stage st(&cfg, 1, 1);
  ImDevicePlan d;
  d.user = reader_user;
  d.client_id = reader_user + "-phone";
  d.sync = true;
  d.sync_peer = sender_user;
  d.sync_expect = acked_n;
  d.page = o.page;
  ImDevice* reader = st.Add(&shared, std::move(d));
  st.Start();
  if (Status s = st.WaitReady(o.connect_timeout, "subscribed"); !s.ok()) return s;
  st.SetPhase(Phase::kPublish);
  uint64_t deadline = uv_hrtime() + Ns(o.sync_timeout);
  bool timed_out = false;
  for (;;) {
    if (st.ctl().failed()) return Status::Error(st.ctl().error());
    if (reader->sync_over_mon.load(std::memory_order_acquire)) break;
    if (g_interrupts.load() > 0) {
      rep.stop_reason = "interrupted";
      break;
    }
    if (uv_hrtime() >= deadline) {
      timed_out = true;
      break;
    }
    Nap();
  }
  if (rep.has_broker) {
    auto b1 = ReadProc(o.broker_pid, &err);
    if (!b1) return Status::Error("broker process: " + err);
    rep.broker_after = *b1;
    im.sync_broker_cpu_s = b1->cpu_s - b0->cpu_s;
    im.sync_broker_cpu_known = true;
  }
  st.ShutDown();

  const ImDevice::SyncStats& ss = reader->sync_stats();
  im.synced = ss.complete;
  im.connect_ms = static_cast<double>(ss.connect_ns) / 1e6;
  im.sync_ms = static_cast<double>(ss.sync_ns) / 1e6;
  im.sync_requests = ss.sync_requests;
  im.history_requests = ss.history_requests;
  im.bytes_received = ss.bytes;
  im.payload_bytes = ss.payload_bytes;
  im.messages_received = ss.entries;
  im.request_latency = reader->request_latency();
  im.other_events += reader->other_events();
  rep.delivered = reader->unique();
  rep.duplicates = reader->duplicates();
  rep.stale += reader->stale();
  rep.unexpected += reader->unexpected();
  rep.expected = acked_n;
  const SeqSet& held = reader->held();
  for (size_t i = 0; i < std::max(acked.words(), held.words()); ++i) {
    uint64_t miss = acked.word(i) & ~held.word(i);
    if (uint64_t extra = held.word(i) & ~acked.word(i))
      im.received_unacked += static_cast<uint64_t>(std::popcount(extra));
    if (!miss) continue;
    rep.lost += static_cast<uint64_t>(std::popcount(miss));
    for (uint64_t m = miss; m != 0 && rep.missing_examples.size() < kMissingExamples; m &= m - 1) {
      rep.missing_examples.push_back(
          {0, i * 64 + static_cast<uint64_t>(std::countr_zero(m)), reader->client_id()});
    }
  }
  rep.lost_messages = rep.lost;
  if (ss.sync_ns > 0) rep.delivered_per_s = static_cast<double>(rep.delivered) / Secs(ss.sync_ns);
  if (timed_out) {
    char b[200];
    std::snprintf(b, sizeof b,
                  "the reader was not synced within %g s (--sync-timeout): it held %llu of %llu messages",
                  o.sync_timeout, static_cast<unsigned long long>(reader->unique()),
                  static_cast<unsigned long long>(acked_n));
    rep.warnings.emplace_back(b);
  } else if (!ss.complete && !ss.problem.empty()) {
    rep.warnings.push_back("the sync stopped short: " + ss.problem);
  }
  if (rep.duplicates > 0)
    rep.warnings.push_back(std::to_string(rep.duplicates) + " messages came twice in the sync");
  if (im.received_unacked > 0)
    rep.warnings.push_back(std::to_string(im.received_unacked) +
                           " messages synced whose send was never acked");
  if (rep.stale > 0)
    rep.warnings.push_back(std::to_string(rep.stale) + " text messages from another run were received");
  if (rep.unexpected > 0)
    rep.warnings.push_back(std::to_string(rep.unexpected) +
                           " frames not expected (unknown req_id, undecodable)");
  return Status::Ok();
}

}  // namespace

Result<Report> RunImScenario(const Options& o) {
  Report rep;
  rep.opts = o;
  rep.im.emplace();
  RunConfig cfg;
  if (Status s = Resolve(o, &cfg); !s.ok()) return s;
  cfg.version = o.mqtt_version == 5 ? mqtt::Version::kV5 : mqtt::Version::kV311;
  cfg.qos = 1;
  cfg.payload = o.payload;
  cfg.window = o.inflight;
  cfg.keep_alive = o.keep_alive;
  std::random_device rd;
  cfg.run_id = rd() | 1u;
  rep.run_id = cfg.run_id;
  ImShared shared;
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "b%08x", cfg.run_id);
  shared.prefix = prefix;

  if (Status s = SampleBrokerBefore(o, &rep); !s.ok()) return s;
  rep.broker_after = rep.broker_before;
  double cpu0 = SelfCpuSeconds();
  Status s = o.scenario == "im-sync" ? RunSync(o, cfg, shared, rep) : RunLive(o, cfg, shared, rep);
  if (!s.ok()) return s;
  rep.bench_cpu_s = SelfCpuSeconds() - cpu0;
  return rep;
}

}  // namespace parley::bench
