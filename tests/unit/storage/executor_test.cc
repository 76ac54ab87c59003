// WriteExecutor: every callback exactly once, group commit that really groups, ordering with Post, the
// three durability policies, backpressure, draining shutdown, error propagation — and, with RocksDB, that
// under kFsync every acknowledged write survives kill -9 of the writing process.
#include "storage/executor.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "storage/fault_store.h"
#include "storage/format.h"
#include "test_util.h"

namespace parley::storage {
namespace {

using namespace std::chrono_literals;
using testing::Child;
using testing::Must;
using testing::MustGet;
using testing::TempDir;

enum class Fam : uint32_t { kA };

WriteBatch One(uint64_t i, std::string_view value = "v") {
  WriteBatch b;
  b.Put(Fam::kA, KeyBuilder().U64(i).Release(), value);
  return b;
}

// Waits until `pred` holds or 10 s pass.
template <typename P>
bool WaitFor(P pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST_CASE("executor: many threads submitting; every done called exactly once; writes are grouped") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  fault.DelayWrites(1ms);  // a slow disk: work piles up while a group is written
  constexpr int kThreads = 8, kPerThread = 2000;
  std::vector<std::atomic<int>> calls(kThreads * kPerThread);
  std::atomic<int> failures{0};
  {
    WriteExecutor ex(&fault, {});
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const int id = t * kPerThread + i;
          while (!ex.Submit(One(id), [&, id](const Status& s) {
            calls[id].fetch_add(1);
            if (!s.ok()) failures.fetch_add(1);
          })) {
            std::this_thread::sleep_for(100us);
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ex.Shutdown();
    const auto st = ex.stats();
    CHECK(st.batches == kThreads * kPerThread);
    CHECK(st.groups < st.batches / 10);
    CHECK(st.max_group > 1);
    CHECK(st.synced_groups == st.groups);  // kFsync is the default
    CHECK(fault.synced_writes() == st.groups);
    CHECK(st.queued_bytes == 0);
    MESSAGE("MemStore + 1 ms writes: " << st.batches << " batches in " << st.groups << " groups (max "
                                       << st.max_group << ")");
  }
  for (auto& c : calls) REQUIRE(c.load() == 1);
  CHECK(failures.load() == 0);
  CHECK(testing::Dump(*mem, Fam::kA).size() == kThreads * kPerThread);
}

TEST_CASE("executor: done runs on the executor thread, in submission order; Post sees earlier writes") {
  auto mem = Must(MemStore::Open({"a"}));
  std::vector<int> order;  // touched only on the executor thread
  std::atomic<bool> off_thread{false};
  std::atomic<bool> ran{false};
  std::optional<std::string> seen;
  WriteExecutor ex(mem.get(), {});
  for (int i = 0; i < 500; ++i) {
    REQUIRE(ex.Submit(One(i), [&, i](const Status& s) {
      if (!ex.OnExecutorThread()) off_thread = true;
      order.push_back(i);
    }));
  }
  REQUIRE(ex.Post([&] {
    CHECK(ex.OnExecutorThread());
    seen = MustGet(*mem, Fam::kA, KeyBuilder().U64(499).Release());
    CHECK(order.size() == 500);  // every earlier done has run
    ran = true;
  }));
  REQUIRE(WaitFor([&] { return ran.load(); }));
  CHECK(seen == "v");
  CHECK_FALSE(off_thread.load());
  CHECK_FALSE(ex.OnExecutorThread());
  for (int i = 0; i < 500; ++i) REQUIRE(order[i] == i);
}

TEST_CASE("executor: a transaction is written in one group; what follows it waits for EndTxn") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  ExecutorOptions o;
  o.max_group_bytes = 64;  // tiny: only the transaction rule keeps its batches together
  WriteExecutor ex(&fault, o);
  const uint64_t txn = ex.BeginTxn();
  REQUIRE(ex.Submit(One(1), {}, txn));
  REQUIRE(ex.Submit(One(2), {}));  // another thread's batch, after the transaction began
  std::this_thread::sleep_for(30ms);
  CHECK(fault.writes() == 0);  // held back: nothing at or after the transaction's first batch
  for (uint64_t i = 3; i < 40; ++i) REQUIRE(ex.Submit(One(i, std::string(16, 'x')), {}, txn));
  const uint64_t before = fault.writes();
  ex.EndTxn(txn);
  REQUIRE(WaitFor([&] { return ex.stats().batches == 39; }));
  // The transaction's 38 batches (and the one between them) went in as one store write, although each
  // group is otherwise cut at 64 bytes.
  CHECK(before == 0);
  CHECK(ex.stats().max_group >= 39);
  for (uint64_t i = 1; i < 40; ++i) CHECK(MustGet(*mem, Fam::kA, KeyBuilder().U64(i).Release()));

  // Batches before a transaction's first one are not held back.
  const uint64_t t2 = ex.BeginTxn();
  REQUIRE(ex.Submit(One(100), {}));
  REQUIRE(WaitFor([&] { return MustGet(*mem, Fam::kA, KeyBuilder().U64(100).Release()).has_value(); }));
  REQUIRE(ex.Submit(One(101), {}, t2));
  ex.EndTxn(t2);
  REQUIRE(WaitFor([&] { return MustGet(*mem, Fam::kA, KeyBuilder().U64(101).Release()).has_value(); }));
}

TEST_CASE("executor: a callback may submit again") {
  auto mem = Must(MemStore::Open({"a"}));
  std::atomic<int> chain{0};
  std::function<void(const Status&)> next;
  WriteExecutor ex(mem.get(), {});
  next = [&](const Status& s) {
    CHECK(s.ok());
    if (chain.fetch_add(1) + 1 < 50) CHECK(ex.Submit(One(chain.load()), next));
  };
  REQUIRE(ex.Submit(One(0), next));
  REQUIRE(WaitFor([&] { return chain.load() == 50; }));
}

TEST_CASE("executor: backpressure refuses work past max_queue_bytes, accepts again once drained") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  fault.DelayWrites(30ms);
  ExecutorOptions o;
  o.max_queue_bytes = 4096;
  const std::string value(1000, 'x');
  std::atomic<int> done{0};
  WriteExecutor ex(&fault, o);
  int accepted = 0;
  while (ex.Submit(One(accepted, value), [&](const Status&) { done++; })) ++accepted;
  CHECK(accepted >= 3);
  CHECK(accepted <= 5);
  CHECK(ex.queued_bytes() > 3000);
  // A refused batch's done is never called.
  REQUIRE(WaitFor([&] { return done.load() == accepted; }));
  CHECK(ex.queued_bytes() == 0);
  CHECK(ex.Submit(One(1000, value), [&](const Status&) { done++; }));
  // Always accepted into an empty queue, however large.
  REQUIRE(WaitFor([&] { return done.load() == accepted + 1; }));
  CHECK(ex.Submit(One(1001, std::string(10000, 'y')), nullptr));
}

TEST_CASE("executor: Shutdown drains everything accepted, then refuses") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  fault.DelayWrites(2ms);
  ExecutorOptions o;
  o.max_group_bytes = 64;  // small groups, so the drain takes several writes
  std::atomic<int> done{0}, tasks{0};
  WriteExecutor ex(&fault, o);
  for (int i = 0; i < 200; ++i) {
    REQUIRE(ex.Submit(One(i), [&](const Status& s) {
      CHECK(s.ok());
      done++;
    }));
    if (i % 50 == 0) REQUIRE(ex.Post([&] { tasks++; }));
  }
  ex.Shutdown();
  CHECK(done.load() == 200);
  CHECK(tasks.load() == 4);
  CHECK(ex.stats().groups > 1);
  CHECK_FALSE(ex.Submit(One(1), [&](const Status&) { done++; }));
  CHECK_FALSE(ex.Post([] {}));
  ex.Shutdown();  // idempotent
  CHECK(done.load() == 200);
  CHECK(testing::Dump(*mem, Fam::kA).size() == 200);
}

TEST_CASE("executor: errors reach every done of the group; a bad batch fails alone") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  std::atomic<bool> release{false};
  std::vector<Status> results(4);
  std::atomic<int> n{0};
  WriteExecutor ex(&fault, {});
  // Hold the executor so the next submissions land in one group.
  REQUIRE(ex.Post([&] { WaitFor([&] { return release.load(); }); }));
  fault.FailWrites(Code::kNoSpace, 1);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(ex.Submit(One(i), [&, i](const Status& s) {
      results[i] = s;
      n++;
    }));
  }
  release = true;
  REQUIRE(WaitFor([&] { return n.load() == 3; }));
  for (int i = 0; i < 3; ++i) CHECK(results[i].code() == Code::kNoSpace);
  CHECK_FALSE(MustGet(*mem, Fam::kA, KeyBuilder().U64(0).Release()).has_value());

  release = false;
  REQUIRE(ex.Post([&] { WaitFor([&] { return release.load(); }); }));
  n = 0;
  WriteBatch bad;
  bad.Put(FamilyId(5), "k", "v");
  REQUIRE(ex.Submit(One(10), [&](const Status& s) {
    results[0] = s;
    n++;
  }));
  REQUIRE(ex.Submit(std::move(bad), [&](const Status& s) {
    results[1] = s;
    n++;
  }));
  REQUIRE(ex.Submit(One(11), [&](const Status& s) {
    results[2] = s;
    n++;
  }));
  release = true;
  REQUIRE(WaitFor([&] { return n.load() == 3; }));
  CHECK(results[0].ok());
  CHECK(results[1].code() == Code::kInvalidArgument);
  CHECK(results[2].ok());
  CHECK(MustGet(*mem, Fam::kA, KeyBuilder().U64(11).Release()) == "v");
  CHECK(ex.stats().failed_batches == 4);
}

TEST_CASE("executor: durability policies decide the sync of each write and the WAL sync timer") {
  auto mem = Must(MemStore::Open({"a"}));
  SUBCASE("kFsync: every group synced, no timer") {
    FaultStore fault(mem.get());
    WriteExecutor ex(&fault, {});
    for (int i = 0; i < 20; ++i) REQUIRE(ex.Submit(One(i), nullptr));
    ex.Shutdown();
    CHECK(fault.synced_writes() == fault.writes());
    CHECK(fault.wal_syncs() == 0);
  }
  SUBCASE("kBatch: unsynced writes, a WAL sync every interval while there is something to sync") {
    FaultStore fault(mem.get());
    ExecutorOptions o;
    o.durability = Durability::kBatch;
    o.batch_sync_interval = 20ms;
    std::atomic<int> acked{0};
    WriteExecutor ex(&fault, o);
    for (int i = 0; i < 20; ++i) REQUIRE(ex.Submit(One(i), [&](const Status&) { acked++; }));
    REQUIRE(WaitFor([&] { return acked.load() == 20; }));
    CHECK(fault.synced_writes() == 0);
    REQUIRE(WaitFor([&] { return fault.wal_syncs() >= 1; }));
    // Idle: nothing new to sync, so no more syncs.
    const uint64_t syncs = fault.wal_syncs();
    std::this_thread::sleep_for(100ms);
    CHECK(fault.wal_syncs() == syncs);
    // A failed sync is retried.
    fault.FailSyncs(Code::kIo, 1);
    REQUIRE(ex.Submit(One(100), nullptr));
    REQUIRE(WaitFor([&] { return fault.wal_syncs() == syncs + 1; }));
    ex.Shutdown();
    CHECK(ex.stats().wal_syncs >= 2);
  }
  SUBCASE("kBatch: shutdown syncs what is pending") {
    FaultStore fault(mem.get());
    ExecutorOptions o;
    o.durability = Durability::kBatch;
    o.batch_sync_interval = 10s;
    WriteExecutor ex(&fault, o);
    REQUIRE(ex.Submit(One(1), nullptr));
    ex.Shutdown();
    CHECK(fault.wal_syncs() == 1);
  }
  SUBCASE("kNone: never synced by the executor") {
    FaultStore fault(mem.get());
    ExecutorOptions o;
    o.durability = Durability::kNone;
    WriteExecutor ex(&fault, o);
    for (int i = 0; i < 20; ++i) REQUIRE(ex.Submit(One(i), nullptr));
    ex.Shutdown();
    CHECK(fault.writes() >= 1);
    CHECK(fault.synced_writes() == 0);
    CHECK(fault.wal_syncs() == 0);
  }
  CHECK(ParseDurability("fsync") == Durability::kFsync);
  CHECK(ParseDurability("batch") == Durability::kBatch);
  CHECK(ParseDurability("none") == Durability::kNone);
  CHECK_FALSE(ParseDurability("sometimes").has_value());
  CHECK(std::string(DurabilityName(Durability::kBatch)) == "batch");
}

// ---- With RocksDB -----------------------------------------------------------------------------------------

OpenOptions Opts() {
  OpenOptions o;
  o.families = {"a"};
  o.block_cache_mb = 8;
  o.write_buffer_mb = 8;
  return o;
}

TEST_CASE("executor + RocksStore: group commit under kFsync (8 threads x 300 writes, 4 in flight each)") {
  TempDir t;
  auto store = Must(RocksStore::Open(t.Sub("db"), Opts()));
  constexpr int kThreads = 8, kPerThread = 300, kWindow = 4;
  std::vector<std::atomic<int>> in_flights(kThreads);  // outlives the callbacks that touch it
  WriteExecutor ex(store.get(), {});
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      std::atomic<int>& in_flight = in_flights[th];
      for (int i = 0; i < kPerThread; ++i) {
        for (int v = in_flight.load(); v >= kWindow; v = in_flight.load()) in_flight.wait(v);
        in_flight++;
        CHECK(ex.Submit(
            One(th * kPerThread + i, "payload-64-bytes-payload-64-bytes-payload-64-bytes-payload-64"),
            [&](const Status& s) {
              CHECK(s.ok());
              in_flight--;
              in_flight.notify_one();
            }));
      }
      for (int v = in_flight.load(); v > 0; v = in_flight.load()) in_flight.wait(v);
    });
  }
  for (auto& th : threads) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto st = ex.stats();
  CHECK(st.batches == kThreads * kPerThread);
  CHECK(st.groups < st.batches);
  CHECK(st.synced_groups == st.groups);
  MESSAGE("RocksDB kFsync: " << st.batches << " writes in " << st.groups << " fsync'd groups, "
                             << static_cast<int>(st.batches / secs) << " writes/s, avg group "
                             << static_cast<double>(st.batches) / st.groups << ", max " << st.max_group);
  for (int i = 0; i < kThreads * kPerThread; i += 97) {
    CHECK(MustGet(*store, Fam::kA, KeyBuilder().U64(i).Release()).has_value());
  }
}

TEST_CASE("storage helper: fsync writer" * doctest::skip()) {
  auto store = Must(RocksStore::Open(testing::HelperArg(), Opts()));
  WriteExecutor ex(store.get(), {});
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&] {
      for (;;) {
        const uint64_t i = next.fetch_add(1);
        while (!ex.Submit(One(i), [i](const Status& s) {
          if (s.ok()) testing::HelperSay(std::to_string(i));  // acknowledged: must survive kill -9
        })) {
          std::this_thread::sleep_for(1ms);
        }
        if (i % 16 == 0) std::this_thread::sleep_for(100us);
      }
    });
  }
  for (auto& th : threads) th.join();  // never: the parent kills us
}

TEST_CASE("executor + RocksStore: every write acknowledged under kFsync survives kill -9") {
  TempDir t;
  const std::string dir = t.Sub("db");
  std::vector<uint64_t> acked;
  {
    Child child("storage helper: fsync writer", dir);
    while (acked.size() < 1500) {
      auto line = child.ReadLine();
      REQUIRE_MESSAGE(line.has_value(), "the writer stopped acknowledging");
      acked.push_back(std::stoull(*line));
    }
    child.Kill();
    // Acks written to the pipe before the kill count too.
    while (auto line = child.ReadLine(200ms)) acked.push_back(std::stoull(*line));
  }
  auto store = Must(RocksStore::Open(dir, Opts()));
  size_t missing = 0;
  for (uint64_t i : acked) missing += !MustGet(*store, Fam::kA, KeyBuilder().U64(i).Release()).has_value();
  CHECK(missing == 0);
  const size_t present = testing::Dump(*store, Fam::kA).size();
  CHECK(present >= acked.size());
  MESSAGE("acknowledged before kill -9: " << acked.size() << ", present after restart: " << present);
}

}  // namespace
}  // namespace parley::storage
