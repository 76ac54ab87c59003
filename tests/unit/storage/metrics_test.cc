// The storage metrics: the executor's write latency histogram, failed batches and queued bytes; the store's size
// and the data directory's free space.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "storage/executor.h"
#include "storage/fault_store.h"
#include "storage/format.h"
#include "storage/rocks_store.h"
#include "storage/store_metrics.h"
#include "test_util.h"

namespace parley::storage {
namespace {

using namespace std::chrono_literals;
using testing::Must;
using testing::TempDir;

enum class Fam : uint32_t { kA };

WriteBatch Put(uint64_t i, size_t value_size = 8) {
  WriteBatch b;
  b.Put(Fam::kA, KeyBuilder().U64(i).Release(), std::string(value_size, 'v'));
  return b;
}

std::vector<metrics::Family> Collect(const WriteExecutor& ex) {
  std::vector<metrics::Family> out;
  ex.CollectMetrics(out);
  return out;
}

TEST_CASE("storage metrics: every batch's latency from Submit to written, failures counted") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  fault.DelayWrites(20ms);
  WriteExecutor ex(&fault, {});
  std::atomic<int> done{0};
  for (uint64_t i = 0; i < 5; ++i) REQUIRE(ex.Submit(Put(i), [&](const Status&) { done++; }));
  ex.Post([] {});  // tasks are not writes: not observed
  while (done.load() < 5) std::this_thread::sleep_for(1ms);

  auto fams = Collect(ex);
  auto h = metrics::MergedHistogram(fams, "parley_storage_write_seconds");
  REQUIRE(h.has_value());
  CHECK(h->count == 5);
  CHECK(metrics::Quantile(*h, 0.5).value() >= 0.01);  // each waited for at least one 20 ms write
  CHECK(h->sum >= 5 * 0.02 * 0.9);
  CHECK(metrics::Sum(fams, "parley_storage_write_errors_total") == 0);
  CHECK(metrics::Sum(fams, "parley_storage_queue_bytes") == 0);

  fault.DelayWrites(0ms);
  fault.FailWrites(Code::kNoSpace, 2);
  for (uint64_t i = 10; i < 12; ++i) {
    REQUIRE(ex.Submit(Put(i), [&](const Status&) { done++; }));
    while (done.load() < static_cast<int>(i) - 4) std::this_thread::sleep_for(1ms);
  }
  fams = Collect(ex);
  CHECK(metrics::Sum(fams, "parley_storage_write_errors_total") == 2);
  CHECK(metrics::Sum(fams, "parley_storage_write_seconds") == 7);  // failed writes took time too
}

TEST_CASE("storage metrics: queued bytes while the disk is slow") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  fault.DelayWrites(200ms);
  WriteExecutor ex(&fault, {});
  std::atomic<int> done{0};
  REQUIRE(ex.Submit(Put(0), [&](const Status&) { done++; }));
  std::this_thread::sleep_for(20ms);  // the first one is being written; the next ones wait
  for (uint64_t i = 1; i <= 3; ++i) REQUIRE(ex.Submit(Put(i, 1000), [&](const Status&) { done++; }));
  CHECK(metrics::Sum(Collect(ex), "parley_storage_queue_bytes").value() >= 3000);
  while (done.load() < 4) std::this_thread::sleep_for(1ms);
  CHECK(metrics::Sum(Collect(ex), "parley_storage_queue_bytes") == 0);
}

TEST_CASE("storage metrics: store size and the data directory's free space") {
  TempDir dir;
  OpenOptions o;
  o.families = {"a"};
  auto store = Must(RocksStore::Open(dir.Sub("db"), o));
  for (uint64_t i = 0; i < 100; ++i) REQUIRE(store->Write(Put(i, 1000), Sync::kNoSync).ok());
  std::vector<metrics::Family> fams;
  CollectStoreMetrics(*store, dir.Sub("db"), fams);
  CHECK(metrics::Sum(fams, "parley_storage_disk_bytes").value() >= 100 * 1000);
  CHECK(metrics::Sum(fams, "parley_storage_disk_free_bytes").value() > 0);
  const double ratio = metrics::Sum(fams, "parley_storage_disk_free_ratio").value();
  CHECK(ratio > 0);
  CHECK(ratio <= 1);

  // A dir that cannot be read: the size still, no free-space figures (rather than a made-up 0).
  fams.clear();
  CollectStoreMetrics(*store, dir.Sub("no/such/dir"), fams);
  CHECK(metrics::Find(fams, "parley_storage_disk_bytes") != nullptr);
  CHECK(metrics::Find(fams, "parley_storage_disk_free_bytes") == nullptr);
}

}  // namespace
}  // namespace parley::storage
