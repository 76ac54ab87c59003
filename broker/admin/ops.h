// The operator endpoints of the admin API (docs/admin-api.md): health and readiness, /metrics, status, users,
// bans, configuration check and reload, log level, backup and compaction jobs.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "broker/admin/jobs.h"
#include "broker/admin/live_config.h"
#include "broker/api/admin.h"
#include "broker/core/broker.h"
#include "storage/store.h"

namespace parley::admin {

// What the endpoints read and change. Pointers are not owned and outlive the admin server.
struct OpsContext {
  broker::Broker* broker = nullptr;
  LiveConfig* live = nullptr;
  metrics::Registry* metrics = nullptr;
  Jobs* jobs = nullptr;
  storage::Store* store = nullptr;  // null: storage disabled (backup and compaction answer 503)
  bool metrics_public = false;      // informational: the server decides who may read /metrics
  int workers = 0;
  // Listeners as /api/v1/status shows them (name, protocol, bind, port, connections).
  std::function<nlohmann::json()> listeners;
  // Worker loops that have not ticked for `stall` (healthz).
  std::function<std::vector<int>()> stalled_workers;
  std::function<bool()> draining;
  std::function<int()> alerts_firing;
  // Disconnects connected clients a new ban matches; returns how many.
  std::function<size_t(const broker::guard::BanRule&)> kick_banned;
  std::atomic<bool>* stopping = nullptr;  // set when shutdown begins (readyz)
};

void AddOpsRoutes(broker::AdminRouter& router, const OpsContext& ctx);

}  // namespace parley::admin
