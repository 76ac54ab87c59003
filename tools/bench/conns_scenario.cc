// The conns scenario (tools/README.md): a connection ramp, then an idle hold, then DISCONNECT for everyone.
// The phases of control.h are reused: kSetup is the ramp (each worker starts its share of the connections
// at --ramp-rate / threads, at most --inflight / threads handshakes in flight), kPublish the hold (nothing
// is sent but keep alive), kClose the end. Failures of single connections are counted, not fatal: that is
// what a ramp measures. The broker's RSS and CPU are sampled before the ramp, after it and at the end of the
// hold, so memory per connection and the CPU cost of idle connections come out separately.
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "tools/bench/control.h"
#include "tools/bench/idle_conn.h"
#include "tools/bench/scenario.h"
#include "tools/bench/timing.h"
#include "tools/bench/worker.h"

namespace parley::bench {

namespace {


constexpr const char* kRampEnded = "not ready when the ramp ended";

std::string Top(const std::map<std::string, uint64_t>& by_reason) {
  std::string out;
  for (const auto& [why, n] : by_reason) out += (out.empty() ? "" : ", ") + why + " " + std::to_string(n);
  return out;
}

}  // namespace

Result<Report> RunConnsScenario(const Options& o) {
  Report rep;
  rep.opts = o;
  rep.conns.emplace();
  Report::Conns& cr = *rep.conns;
  cr.connections = o.connections;
  RunConfig cfg;
  if (Status s = Resolve(o, &cfg); !s.ok()) return s;
  cfg.version = o.mqtt_version == 5 ? mqtt::Version::kV5 : mqtt::Version::kV311;
  cfg.keep_alive = o.keep_alive;
  std::random_device rd;
  cfg.run_id = rd() | 1u;
  rep.run_id = cfg.run_id;
  const size_t n = o.connections;
  const size_t nthreads = std::max<size_t>(1, std::min<size_t>(o.threads, n));
  cfg.connect_rate = o.ramp_rate / static_cast<double>(nthreads);
  cfg.max_connecting = std::max<uint32_t>(1, static_cast<uint32_t>((o.inflight + nthreads - 1) / nthreads));
  cfg.handshake_timeout_ns = Ns(o.connect_timeout);
  if (Status s = EnsureFiles(n, nthreads); !s.ok()) return s;
  if (Status s = CheckPorts(n, cfg.sources.size()); !s.ok()) return s;

  // Client ids carry the run id, so two parley-bench processes (for more connections than one may hold)
  // never take over each other's sessions.
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "bench-conns-%08x-", cfg.run_id);
  Control ctl;
  std::vector<std::unique_ptr<Worker>> workers;
  for (size_t i = 0; i < nthreads; ++i) workers.push_back(std::make_unique<Worker>(&ctl, &cfg));
  std::vector<IdleConn*> conns;
  conns.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Worker* w = workers[i % nthreads].get();
    auto c = std::make_unique<IdleConn>(w, prefix + std::to_string(i),
                                        o.subscribe ? "bench/conns/" + std::to_string(i) : std::string());
    conns.push_back(c.get());
    w->AddIdle(std::move(c));
  }

  std::string err;
  if (Status s = SampleBrokerBefore(o, &rep); !s.ok()) return s;
  double cpu0 = SelfCpuSeconds();

  auto wake_all = [&] {
    for (auto& w : workers) w->Wake();
  };
  auto shut_down = [&] { StopWorkers(ctl, workers); };
  auto fail = [&](std::string msg) -> Result<Report> {
    shut_down();
    return Status::Error(std::move(msg));
  };

  // Ramp: until every connection is ready or refused, at most N / rate + --connect-timeout.
  uint64_t t0 = uv_hrtime();
  for (auto& w : workers) w->Start();
  double budget = (o.ramp_rate > 0 ? static_cast<double>(n) / o.ramp_rate : 0) + o.connect_timeout;
  uint64_t ramp_deadline = t0 + Ns(budget);
  bool interrupted = false;
  for (;;) {
    if (ctl.failed()) return fail(ctl.error());
    if (ctl.ready.load() + ctl.refused.load() >= n) {
      cr.ramp_complete = true;
      break;
    }
    if (g_interrupts.load() > 0) {
      interrupted = true;
      break;
    }
    if (uv_hrtime() >= ramp_deadline) break;
    Nap();
  }
  uint64_t t_ramp = uv_hrtime();
  cr.ramp_s = Secs(t_ramp - t0);
  // A broker that died is the ultimate drop: report what happened rather than fail the run.
  auto broker_gone = [&](const char* when) {
    rep.has_broker = false;
    rep.warnings.push_back(std::string("broker process gone ") + when + ": " + err);
  };
  if (rep.has_broker) {
    auto b = ReadProc(o.broker_pid, &err);
    if (b) {
      cr.broker_ramp = *b;
    } else {
      broker_gone("after the ramp");
    }
  }
  double cpu1 = SelfCpuSeconds();
  cr.bench_cpu_ramp_s = cpu1 - cpu0;

  // Hold: nothing but keep alive, for --hold seconds after the ramp (none if nothing was established). The
  // coordinator looks every 10 ms only, so that its own wake-ups stay out of the idle figures.
  ctl.SetStart(t_ramp);
  ctl.SetPhase(Phase::kPublish);
  wake_all();
  uint64_t hold_end = t_ramp + Ns(o.hold);
  bool skip_hold = ctl.ready.load() == 0;
  while (!interrupted && !skip_hold) {
    if (ctl.failed()) return fail(ctl.error());
    if (g_interrupts.load() > 0) {
      interrupted = true;
      break;
    }
    uint64_t now = uv_hrtime();
    if (now >= hold_end) break;
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<uint64_t>(hold_end - now, 10'000'000)));
  }
  uint64_t t_hold = uv_hrtime();
  cr.hold_s = Secs(t_hold - t_ramp);
  rep.stop_reason = interrupted ? "interrupted" : "hold";
  if (rep.has_broker) {
    auto b = ReadProc(o.broker_pid, &err);
    if (b) {
      rep.broker_after = *b;
    } else {
      broker_gone("at the end of the hold");
    }
  }
  cr.bench_cpu_hold_s = SelfCpuSeconds() - cpu1;
  shut_down();
  cr.close_s = Secs(uv_hrtime() - t_hold);
  rep.bench_cpu_s = SelfCpuSeconds() - cpu0;

  // Results. The threads have been joined: everything below reads plain fields.
  for (auto& w : workers) {
    cr.connect_latency.Merge(w->connect_latency());
    cr.subscribe_latency.Merge(w->subscribe_latency());
    cr.attempted += w->started();
  }
  uint64_t last_ready = 0, last_start = 0;
  for (IdleConn* c : conns) {
    last_start = std::max(last_start, c->connect_start_ns());
    switch (c->outcome()) {
      case IdleConn::Outcome::kReady:
        ++cr.established;
        last_ready = std::max(last_ready, c->ready_ns());
        if (!cfg.sources.empty()) ++cr.per_source[c->source_name()];
        break;
      case IdleConn::Outcome::kRefused:
        ++cr.refused;
        ++cr.refusals[c->reason()];
        break;
      case IdleConn::Outcome::kPending:
        // Started, neither ready nor refused when the ramp ended (the loop may have gone straight to closing
        // without giving it up first): a refusal like the others.
        if (c->connect_start_ns() != 0) {
          ++cr.refused;
          ++cr.refusals[kRampEnded];
        }
        break;
    }
    if (c->dropped()) {
      ++(c->drop_ns() < t_ramp ? cr.dropped_ramp : cr.dropped_hold);
      ++cr.drops[c->reason()];
    }
    cr.pings_sent += c->pings_sent();
    cr.pingresps += c->pingresps();
    cr.unexpected += c->unexpected();
  }
  cr.not_attempted = cr.connections - cr.attempted;
  if (last_start > t0) cr.attempt_rate = cr.attempted / Secs(last_start - t0);
  if (last_ready > t0) cr.established_rate = cr.established / Secs(last_ready - t0);

  if (!cr.ramp_complete && !interrupted) {
    char b[300];
    std::snprintf(b, sizeof b,
                  "the ramp did not finish within %.1f s (--connections / --ramp-rate + --connect-timeout): "
                  "%u attempted, %u established, %u refused, %u never attempted",
                  budget, cr.attempted, cr.established, cr.refused, cr.not_attempted);
    rep.warnings.emplace_back(b);
  }
  if (skip_hold && !interrupted) rep.warnings.emplace_back("no connection was established: no hold");
  if (cr.refused > 0)
    rep.warnings.push_back(std::to_string(cr.refused) + " connections refused (" + Top(cr.refusals) + ")");
  if (cr.dropped_ramp + cr.dropped_hold > 0) {
    rep.warnings.push_back(std::to_string(cr.dropped_ramp + cr.dropped_hold) +
                           " established connections dropped (" + Top(cr.drops) + ")");
  }
  if (o.ramp_rate > 0 && cr.established >= 100 && cr.established_rate < 0.9 * o.ramp_rate) {
    char b[200];
    std::snprintf(b, sizeof b,
                  "the ramp reached %.0f connections/s of the %.0f asked (the broker, --inflight %u or "
                  "the tool held it back)",
                  cr.established_rate, o.ramp_rate, o.inflight);
    rep.warnings.emplace_back(b);
  }
  if (cr.pings_sent > 0 && cr.pingresps == 0)
    rep.warnings.emplace_back("no PINGRESP came back for any PINGREQ");
  if (cr.ramp_s > 0.5 && cr.bench_cpu_ramp_s > 0.8 * cr.ramp_s * static_cast<double>(nthreads)) {
    char b[200];
    std::snprintf(b, sizeof b, "parley-bench used %.2f CPU s in a %.2f s ramp: the tool may be the limit",
                  cr.bench_cpu_ramp_s, cr.ramp_s);
    rep.warnings.emplace_back(b);
  }
  if (cr.unexpected > 0)
    rep.warnings.push_back(std::to_string(cr.unexpected) +
                           " PUBLISHes received (nobody should publish to bench/conns/...)");
  return rep;
}

}  // namespace parley::bench
