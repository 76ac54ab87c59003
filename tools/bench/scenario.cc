#include "tools/bench/scenario.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <uv.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "tools/bench/control.h"
#include "tools/bench/payload.h"
#include "tools/bench/publisher.h"
#include "tools/bench/reasons.h"
#include "tools/bench/subscriber.h"
#include "tools/bench/timing.h"
#include "tools/bench/worker.h"

namespace parley::bench {

std::atomic<int> g_interrupts{0};

namespace {

struct ClientPlan {
  bool publisher = false;
  uint32_t id = 0;            // publisher id (publishers only)
  std::string client_id;
  std::string topic;          // publisher: topic; subscriber: filter
  bool persistent = false;    // subscriber with a persistent session
  std::vector<uint32_t> sources;
  uint64_t quota = 0;
};

std::vector<ClientPlan> Plan(const Options& o) {
  std::vector<ClientPlan> plan;
  uint32_t pubs = o.publishers, subs = o.subscribers;
  const std::string& sc = o.scenario;
  std::vector<uint32_t> all(pubs);
  for (uint32_t i = 0; i < pubs; ++i) all[i] = i;
  for (uint32_t i = 0; i < pubs; ++i) {
    ClientPlan p;
    p.publisher = true;
    p.id = i;
    p.quota = o.count == 0 ? 0 : o.count / pubs + (i < o.count % pubs ? 1 : 0);
    if (sc == "durable") {
      p.client_id = "bench-pub-" + std::to_string(i);
      p.topic = "bench/durable/" + std::to_string(i);
    } else {
      p.client_id = "bench-" + sc + "-pub-" + std::to_string(i);
      p.topic = sc == "fanout" ? "bench/fanout" : "bench/" + sc + "/" + std::to_string(i);
    }
    plan.push_back(std::move(p));
  }
  for (uint32_t j = 0; j < subs; ++j) {
    ClientPlan s;
    if (sc == "durable") {
      s.client_id = "bench-sub-" + std::to_string(j);
      s.topic = "bench/durable/#";
      s.persistent = true;
      s.sources = all;
    } else {
      s.client_id = "bench-" + sc + "-sub-" + std::to_string(j);
      if (sc == "p2p") {
        s.topic = "bench/p2p/" + std::to_string(j);
        s.sources = {j};
      } else if (sc == "fanin") {
        s.topic = "bench/fanin/#";
        s.sources = all;
      } else if (sc == "shared") {
        s.topic = "$share/bench/bench/shared/#";  // one group: each message goes to one member
        s.sources = all;
      } else {
        s.topic = "bench/fanout";
        s.sources = all;
      }
    }
    plan.push_back(std::move(s));
  }
  return plan;
}

constexpr size_t kMissingExamples = 8;

// shared: each acked message is owed once to the whole group. A message some member received counts as
// delivered once; every further copy (another member's, or the same member's again) is a duplicate; an acked
// message no member received is lost.
void CountShared(const std::vector<Publisher*>& pubs, const std::vector<Subscriber*>& subs, Report* rep) {
  Report::Shared sh;
  sh.min = UINT64_MAX;
  for (Subscriber* s : subs) {
    sh.per_subscriber.push_back(s->unique());
    sh.min = std::min(sh.min, s->unique());
    sh.max = std::max(sh.max, s->unique());
  }
  if (subs.empty()) sh.min = 0;
  rep->delivered = 0;
  rep->expected = 0;
  for (Publisher* p : pubs) {
    const SeqSet& acked = p->acked_set();
    rep->expected += p->acked();
    size_t words = acked.words();
    for (Subscriber* s : subs) words = std::max(words, s->received(p->id())->words());
    for (size_t i = 0; i < words; ++i) {
      uint64_t seen = 0;
      for (Subscriber* s : subs) {
        uint64_t got = s->received(p->id())->word(i);
        sh.duplicates_across += static_cast<uint64_t>(std::popcount(seen & got));
        seen |= got;
      }
      rep->delivered += static_cast<uint64_t>(std::popcount(seen));
      uint64_t miss = acked.word(i) & ~seen;
      if (!miss) continue;
      rep->lost += static_cast<uint64_t>(std::popcount(miss));
      for (uint64_t m = miss; m != 0 && rep->missing_examples.size() < kMissingExamples; m &= m - 1) {
        uint64_t seq = i * 64 + static_cast<uint64_t>(std::countr_zero(m));
        rep->missing_examples.push_back({p->id(), seq, "$share/" + sh.group});
      }
    }
  }
  rep->lost_messages = rep->lost;
  rep->duplicates += sh.duplicates_across;
  rep->shared = std::move(sh);
}


}  // namespace

std::string ParseSources(const std::string& spec, std::vector<sockaddr_storage>* addrs,
                         std::vector<std::string>* names) {
  addrs->clear();
  names->clear();
  auto add = [&](const std::string& text) -> bool {
    sockaddr_storage ss{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
    } else {
      return false;
    }
    addrs->push_back(ss);
    names->push_back(text);
    return true;
  };
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    if (item.empty()) return "--source: empty address in \"" + spec + "\"";
    size_t dash = item.find('-');
    if (dash == std::string::npos) {
      if (!add(item)) return "--source: not an IPv4 or IPv6 address: " + item;
      continue;
    }
    // A range of IPv4 addresses differing in the last octet: 127.0.0.1-8 or 127.0.0.1-127.0.0.8.
    std::string first = item.substr(0, dash), last = item.substr(dash + 1);
    in_addr a{}, b{};
    if (inet_pton(AF_INET, first.c_str(), &a) != 1) return "--source: not an IPv4 address: " + first;
    uint32_t lo = ntohl(a.s_addr), hi = 0;
    if (last.find('.') != std::string::npos) {
      if (inet_pton(AF_INET, last.c_str(), &b) != 1) return "--source: not an IPv4 address: " + last;
      hi = ntohl(b.s_addr);
    } else {
      char* end = nullptr;
      unsigned long octet = std::strtoul(last.c_str(), &end, 10);
      if (last.empty() || *end != '\0' || octet > 255) return "--source: bad range end in " + item;
      hi = (lo & 0xFFFFFF00u) | static_cast<uint32_t>(octet);
    }
    if ((hi & 0xFFFFFF00u) != (lo & 0xFFFFFF00u) || hi < lo) {
      return "--source: a range must go up within the last octet (like 127.0.0.1-8): " + item;
    }
    for (uint32_t x = lo; x <= hi; ++x) {
      in_addr ia{htonl(x)};
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &ia, text, sizeof text);
      add(text);
    }
  }
  if (addrs->size() > 65536) return "--source: at most 65,536 addresses";
  return "";
}

Status Resolve(const Options& o, RunConfig* cfg) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int r = getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res);
  if (r != 0 || !res) return Status::Error("cannot resolve host " + o.host + ": " + gai_strerror(r));
  std::memcpy(&cfg->addr, res->ai_addr, std::min<size_t>(res->ai_addrlen, sizeof cfg->addr));
  bool v6 = res->ai_family == AF_INET6;
  freeaddrinfo(res);
  cfg->target = (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
  if (!o.source.empty()) {
    if (std::string e = ParseSources(o.source, &cfg->sources, &cfg->source_names); !e.empty()) {
      return Status::Error(e);
    }
    for (size_t i = 0; i < cfg->sources.size(); ++i) {
      if (cfg->sources[i].ss_family != cfg->addr.ss_family) {
        return Status::Error("--source " + cfg->source_names[i] + " is not of the same address family as --host " +
                             o.host);
      }
    }
  }
  return Status::Ok();
}

// Each connection is a file descriptor; besides them the tool needs a few of its own: stdio, and per loop
// an epoll and an eventfd (and /proc files read while connections are open).
Status EnsureFiles(size_t conns, size_t threads) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return Status::Ok();
  const rlim_t spare = 20 + 2 * static_cast<rlim_t>(threads > 1 ? threads - 1 : 0);
  rlim_t need = static_cast<rlim_t>(conns) + spare;
  if (rl.rlim_cur >= need) return Status::Ok();
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    rlim_t most = rl.rlim_max > spare ? rl.rlim_max - spare : 0;
    return Status::Error(std::to_string(conns) + " connections need " + std::to_string(need) +
                         " open files (one per connection, " + std::to_string(spare) +
                         " for the tool), but the hard limit (ulimit -Hn) is " + std::to_string(rl.rlim_max) +
                         ": one parley-bench process can hold at most " + std::to_string(most) +
                         " connections here. Raise the hard limit, or split the load over several processes");
  }
  rlim_t old = rl.rlim_cur;
  // The whole allowance (cheap: the broker side is what we measure); an unlimited hard limit still caps the
  // soft one at fs.nr_open, so ask for what is needed then.
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return Status::Error(std::to_string(conns) + " connections need " + std::to_string(need) +
                         " open files; cannot raise the soft limit from " + std::to_string(old) + " to " +
                         std::to_string(rl.rlim_max) + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status CheckPorts(size_t conns, size_t sources) {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned lo = 0, hi = 0;
  if (!(f >> lo >> hi) || hi < lo) return Status::Ok();
  size_t ports = hi - lo + 1;
  size_t addrs = std::max<size_t>(1, sources);
  size_t per = (conns + addrs - 1) / addrs;
  if (per <= ports) return Status::Ok();
  return Status::Error(std::to_string(conns) + " connections over " + std::to_string(addrs) +
                       " source address" + (addrs == 1 ? "" : "es") + " need " + std::to_string(per) +
                       " ports each, but the ephemeral port range is " + std::to_string(lo) + "-" +
                       std::to_string(hi) + " (" + std::to_string(ports) + " ports): add addresses with --source " +
                       "(e.g. 127.0.0.1-8)");
}

bool IsImScenario(const std::string& scenario) { return scenario.rfind("im-", 0) == 0; }

std::string Validate(const Options& o) {
  if (o.qos < 0 || o.qos > 2) return "--qos must be 0, 1 or 2";
  if (o.scenario == "durable" && o.qos == 0) return "durable needs --qos 1 or 2";
  if (o.payload < kPayloadHeader) return "--payload must be at least " + std::to_string(kPayloadHeader) + " bytes (the header)";
  if (o.payload > 64u << 20) return "--payload must be at most 64 MiB";
  if (!(o.duration > 0) || o.duration > 7 * 86400) return "--duration must be > 0 (and at most a week)";
  if (o.inflight < 1 || o.inflight > 65535) return "--inflight must be 1..65535";
  if (o.rate < 0) return "--rate must be >= 0";
  if (o.publishers < 1 || o.subscribers < 1) return "need at least one publisher and one subscriber";
  if (!o.source.empty()) {
    std::vector<sockaddr_storage> addrs;
    std::vector<std::string> names;
    if (std::string e = ParseSources(o.source, &addrs, &names); !e.empty()) return e;
  }
  if (o.scenario == "conns") {
    if (o.connections < 1 || o.connections > 10'000'000) return "--connections must be 1..10,000,000";
    if (!(o.ramp_rate >= 0)) return "--ramp-rate must be >= 0";
    if (!(o.hold >= 0) || o.hold > 7 * 86400) return "--hold must be >= 0 (and at most a week)";
  }
  if (o.threads < 1 || o.threads > 256) return "--threads must be 1..256";
  if (o.grace < 0 || o.grace > 3600) return "--grace must be 0..3600";
  if (!(o.connect_timeout > 0)) return "--connect-timeout must be > 0";
  if (o.mqtt_version != 3 && o.mqtt_version != 5) return "--mqtt-version must be 3 or 5";
  if (o.scenario == "im-group") {
    if (o.members < 2) return "--members must be at least 2";
    if (o.online < 1 || o.online > o.members) return "--online must be 1..--members";
    if (o.senders < 1 || o.senders > o.online) return "--senders must be 1..--online";
  }
  if (o.scenario == "im-sync") {
    if (o.backlog < 1) return "--backlog must be at least 1";
    if (o.page < 1 || o.page > 200) return "--page must be 1..200";
    if (!(o.sync_timeout > 0)) return "--sync-timeout must be > 0";
  }
  return "";
}

Status SampleBrokerBefore(const Options& o, Report* rep) {
  if (o.broker_pid <= 0) return Status::Ok();
  std::string err;
  auto b = ReadProc(o.broker_pid, &err);
  if (!b) return Status::Error(err);
  rep->has_broker = true;
  rep->broker_before = *b;
  return Status::Ok();
}

Result<Report> RunScenario(const Options& o) {
  Report rep;
  rep.opts = o;
  RunConfig cfg;
  if (Status s = Resolve(o, &cfg); !s.ok()) return s;
  cfg.version = o.mqtt_version == 5 ? mqtt::Version::kV5 : mqtt::Version::kV311;
  cfg.qos = static_cast<uint8_t>(o.qos);
  cfg.payload = o.payload;
  cfg.window = o.inflight;
  cfg.rate_per_publisher = o.rate / o.publishers;
  cfg.keep_alive = o.keep_alive;
  std::random_device rd;
  cfg.run_id = rd() | 1u;
  rep.run_id = cfg.run_id;

  std::vector<ClientPlan> plan = Plan(o);
  if (Status s = EnsureFiles(plan.size(), o.threads); !s.ok()) return s;
  if (Status s = CheckPorts(plan.size(), cfg.sources.size()); !s.ok()) return s;
  const bool shared = o.scenario == "shared";

  std::string err;
  if (Status s = SampleBrokerBefore(o, &rep); !s.ok()) return s;
  double cpu0 = SelfCpuSeconds();

  Control ctl;
  size_t nthreads = std::min<size_t>(o.threads, plan.size());
  std::vector<std::unique_ptr<Worker>> workers;
  for (size_t i = 0; i < nthreads; ++i) workers.push_back(std::make_unique<Worker>(&ctl, &cfg));
  std::vector<Publisher*> pubs;
  std::vector<Subscriber*> subs;
  size_t np = 0, ns = 0;
  for (ClientPlan& c : plan) {
    if (c.publisher) {
      Worker* w = workers[np++ % nthreads].get();
      double offset = std::fmod(c.id * 0.6180339887498949, 1.0);  // spread paced sends over the interval
      auto p = std::make_unique<Publisher>(w, c.id, c.client_id, c.topic, c.quota, offset);
      pubs.push_back(p.get());
      w->Add(std::move(p));
    } else {
      Worker* w = workers[ns++ % nthreads].get();
      auto s = std::make_unique<Subscriber>(w, c.client_id, c.topic, c.persistent, c.sources);
      subs.push_back(s.get());
      w->Add(std::move(s));
    }
  }

  if (o.qos == 0 && o.rate == 0) {
    if (shared) {
      // A message has arrived once any member of the group has it.
      for (Publisher* p : pubs) {
        std::vector<const std::atomic<uint64_t>*> group;
        for (Subscriber* s : subs) group.push_back(s->received_count(p->id()));
        p->Watch(std::move(group));
      }
    } else {
      for (Subscriber* s : subs) {
        for (uint32_t id : s->sources()) pubs[id]->Watch({s->received_count(id)});
      }
    }
  }

  uint64_t t_setup = uv_hrtime();
  for (auto& w : workers) w->Start();
  auto wake_all = [&] {
    for (auto& w : workers) w->Wake();
  };
  auto shut_down = [&] { StopWorkers(ctl, workers); };
  auto fail = [&](std::string msg) -> Result<Report> {
    shut_down();
    return Status::Error(std::move(msg));
  };

  // Setup: every client connected (and subscribed) before anyone publishes.
  const uint32_t total = static_cast<uint32_t>(plan.size());
  uint64_t setup_deadline = t_setup + Ns(o.connect_timeout);
  while (ctl.ready.load() < total) {
    if (ctl.failed()) return fail(ctl.error());
    if (g_interrupts.load() > 0) return fail("interrupted while connecting");
    if (uv_hrtime() > setup_deadline) {
      char b[200];
      std::snprintf(b, sizeof b, "timed out after %g s (--connect-timeout): %u of %u clients connected and subscribed",
                    o.connect_timeout, ctl.ready.load(), total);
      return fail(b);
    }
    Nap();
  }

  // Publish until the duration ends or every publisher sent its share of --count.
  uint64_t start = uv_hrtime();
  rep.setup_s = Secs(start - t_setup);
  ctl.SetStart(start);
  ctl.SetPhase(Phase::kPublish);
  wake_all();
  uint64_t stop_deadline = start + Ns(o.duration);
  for (;;) {
    if (ctl.failed()) return fail(ctl.error());
    if (g_interrupts.load() > 0) {
      rep.stop_reason = "interrupted";
      break;
    }
    if (o.count > 0 && ctl.publishers_done.load() == pubs.size()) {
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

  // Drain: acks of what is outstanding, deliveries of what was acked, within the grace period.
  ctl.SetPhase(Phase::kDrain);
  wake_all();
  auto drained = [&] {
    for (auto& w : workers) {
      if (w->seen_phase() < Phase::kDrain) return false;  // its publishers may still send
    }
    for (Publisher* p : pubs) {
      if (p->outstanding_mon.load(std::memory_order_relaxed) > 0) return false;
    }
    if (shared) {  // each message owed once to the group
      for (Publisher* p : pubs) {
        uint64_t got = 0;
        for (Subscriber* s : subs) got += s->received_count(p->id())->load(std::memory_order_relaxed);
        if (got < p->acked_mon.load(std::memory_order_relaxed)) return false;
      }
      return true;
    }
    for (Subscriber* s : subs) {
      uint64_t owed = 0;
      for (uint32_t id : s->sources()) owed += pubs[id]->acked_mon.load(std::memory_order_relaxed);
      if (s->unique_mon.load(std::memory_order_relaxed) < owed) return false;
    }
    return true;
  };
  uint64_t grace_deadline = stop + Ns(o.grace);
  for (;;) {
    if (ctl.failed()) return fail(ctl.error());
    if (drained()) {
      rep.drained = true;
      break;
    }
    if (uv_hrtime() >= grace_deadline || g_interrupts.load() > 1) break;
    Nap();
  }
  rep.drain_s = Secs(uv_hrtime() - stop);
  if (rep.has_broker) {
    auto b = ReadProc(o.broker_pid, &err);
    if (!b) return fail("broker process: " + err);
    rep.broker_after = *b;
  }
  rep.bench_cpu_s = SelfCpuSeconds() - cpu0;
  shut_down();

  // Results. The threads have been joined: everything below reads plain fields.
  for (auto& w : workers) {
    rep.ack_latency.Merge(w->ack_latency());
    rep.e2e_latency.Merge(w->e2e_latency());
  }
  uint64_t last_ack = 0, last_delivery = 0, stalls = 0;
  rep.window = UINT32_MAX;
  for (Publisher* p : pubs) {
    rep.sent += p->sent();
    rep.acked += p->acked();
    rep.rejected += p->rejected();
    rep.unacked += p->outstanding();
    rep.unknown_acks += p->unknown_acks();
    if (p->rejected()) rep.reject_code = p->last_reject_code();
    last_ack = std::max(last_ack, p->last_ack_ns());
    rep.window = std::min(rep.window, p->window());
    stalls += p->stalls();
  }
  std::vector<SeqSet> missing(pubs.size());
  for (Subscriber* s : subs) {
    rep.delivered += s->unique();
    rep.duplicates += s->duplicates();
    rep.reordered += s->reordered();
    rep.stale += s->stale();
    rep.unexpected += s->unexpected();
    last_delivery = std::max(last_delivery, s->last_delivery_ns());
    if (rep.min_granted_qos < 0 || s->granted_qos() < rep.min_granted_qos) rep.min_granted_qos = s->granted_qos();
    if (s->session_present()) rep.warnings.push_back(s->client_id() + " found an old session after clearing it");
    if (shared) continue;  // owed once to the group: counted below
    for (uint32_t id : s->sources()) {
      const SeqSet& acked = pubs[id]->acked_set();
      const SeqSet* got = s->received(id);
      rep.expected += pubs[id]->acked();
      for (size_t i = 0; i < acked.words(); ++i) {
        uint64_t miss = acked.word(i) & ~(got ? got->word(i) : 0);
        if (miss) {
          rep.lost += static_cast<uint64_t>(std::popcount(miss));
          missing[id].mutable_word(i) |= miss;
          for (uint64_t m = miss; m != 0 && rep.missing_examples.size() < kMissingExamples; m &= m - 1) {
            uint64_t seq = i * 64 + static_cast<uint64_t>(std::countr_zero(m));
            rep.missing_examples.push_back({id, seq, s->client_id()});
          }
        }
      }
    }
  }
  for (const SeqSet& m : missing) rep.lost_messages += m.Count();
  if (shared) CountShared(pubs, subs, &rep);
  if (rep.publish_s > 0) rep.sent_per_s = static_cast<double>(rep.sent) / rep.publish_s;
  if (last_ack > start) rep.last_ack_s = Secs(last_ack - start);
  if (last_delivery > start) rep.last_delivery_s = Secs(last_delivery - start);
  if (o.qos > 0 && rep.unacked > 0 && rep.last_ack_s + 1 < rep.publish_s) {
    char b[160];
    std::snprintf(b, sizeof b, "acks stopped %.2f s into the publishing phase (%.2f s long)", rep.last_ack_s,
                  rep.publish_s);
    rep.warnings.emplace_back(b);
  }
  // Over the publishing time, or up to the last ack / delivery if later (a --count run ends its
  // publishing phase at the last send, before the last acks).
  if (rep.acked > 0) rep.acked_per_s = static_cast<double>(rep.acked) / Secs(std::max(last_ack, stop) - start);
  if (rep.delivered > 0) {
    rep.delivered_per_s = static_cast<double>(rep.delivered) / Secs(std::max(last_delivery, stop) - start);
  }

  if (o.qos > 0 && rep.window < o.inflight) {
    rep.warnings.push_back("the broker's Receive Maximum limited the window to " + std::to_string(rep.window));
  }
  if (rep.min_granted_qos >= 0 && rep.min_granted_qos < o.qos) {
    rep.warnings.push_back("the broker granted QoS " + std::to_string(rep.min_granted_qos) + " to a subscription");
  }
  if (rep.rejected > 0) {
    rep.warnings.push_back(std::to_string(rep.rejected) + " publishes refused (last: " + ReasonText(rep.reject_code) + ")");
  }
  if (!rep.drained) {
    char b[160];
    std::snprintf(b, sizeof b, "the grace period (%g s) ended before every ack and delivery arrived", o.grace);
    rep.warnings.emplace_back(b);
  }
  if (stalls > 0) {
    rep.warnings.push_back("QoS 0 window stalled " + std::to_string(stalls) +
                           " times (nothing delivered for 1 s; the window was written off)");
  }
  if (rep.stale > 0) rep.warnings.push_back(std::to_string(rep.stale) + " messages from another run were received");
  if (rep.unexpected > 0) rep.warnings.push_back(std::to_string(rep.unexpected) + " messages matched no expected publisher");
  if (rep.shared) {
    if (rep.shared->duplicates_across > 0) {
      rep.warnings.push_back(std::to_string(rep.shared->duplicates_across) +
                             " messages reached more than one member of the shared subscription group");
    }
    if (subs.size() > 1 && rep.shared->min == 0 && rep.delivered >= subs.size()) {
      rep.warnings.emplace_back("a member of the shared subscription group received nothing");
    }
  }
  if (rep.unknown_acks > 0) rep.warnings.push_back(std::to_string(rep.unknown_acks) + " acks for unknown packet ids");
  return rep;
}

}  // namespace parley::bench
