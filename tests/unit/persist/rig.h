// A durable-state rig for tests: an in-memory store that outlives "restarts", a FaultStore in front of it
// for failures and slow disks, the write executor, DurableState, and a Broker on a ManualClock wired to it.
// Restart() drops the broker and everything but the store, then loads a new broker from it.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "broker/persist/durable_state.h"
#include "broker/persist/layout.h"
#include "storage/executor.h"
#include "storage/fault_store.h"
#include "storage/mem_store.h"
#include "tests/unit/core/client_harness.h"

namespace parley::broker::persist::testing {

struct Rig {
  Rig() {
    auto m = storage::MemStore::Open(FamilyNames());
    REQUIRE(m.ok());
    mem = std::move(m.value());
    Start();
  }
  ~Rig() { Stop(); }

  // Everything above the store, as parleyd wires it.
  void Start() {
    fault = std::make_unique<storage::FaultStore>(mem.get());
    exec = std::make_unique<storage::WriteExecutor>(fault.get(), storage::ExecutorOptions{});
    state = std::make_unique<DurableState>(fault.get(), exec.get(), clock);
    BrokerOptions o;
    o.sys_enabled = false;
    broker = std::make_unique<Broker>(o, clock, 1);
    auto loaded = state->Load();
    REQUIRE(loaded.ok());
    last_load = loaded.value().deliveries;
    broker->SetPersistence(state.get());
    broker->Restore(std::move(loaded.value().sessions), std::move(loaded.value().retained));
  }
  // Peers must be gone (their Clients point at the broker). What the executor accepted reaches the store,
  // as it does when parleyd is killed after the WAL write: nothing else survives.
  void Stop() {
    if (exec) exec->Shutdown();
    broker.reset();
    state.reset();
    exec.reset();
    fault.reset();
  }
  void Restart() {
    Stop();
    Start();
  }
  // Waits until every write submitted so far has been applied.
  void Drain() {
    std::promise<void> p;
    REQUIRE(exec->Post([&] { p.set_value(); }));
    p.get_future().wait();
  }
  size_t Rows(Fam f) {
    size_t n = 0;
    auto it = mem->NewIterator(f);
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }

  ManualClock clock;
  std::unique_ptr<storage::MemStore> mem;
  std::unique_ptr<storage::FaultStore> fault;
  std::unique_ptr<storage::WriteExecutor> exec;
  std::unique_ptr<DurableState> state;
  std::unique_ptr<Broker> broker;
  size_t last_load = 0;
};

// Collects what `p` writes until it has at least `n` packets, or 5 s pass. Like the network layer, it pumps
// the client only when its link was woken (acks arrive when the storage thread completes them and wakes the
// connection), so a completion that fails to wake the connection fails the test.
inline std::vector<mqtt::Packet> Await(broker::testing::Peer& p, size_t n) {
  std::vector<mqtt::Packet> got = p.Take();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
    if (p.link->wakes.exchange(0) > 0) {
      p.client->Pump();
      for (auto& x : p.Take()) got.push_back(std::move(x));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return got;
}

}  // namespace parley::broker::persist::testing
