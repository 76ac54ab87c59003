// FaultStore: injected failures change nothing, count down or last until Heal; counters; delays.
#include "storage/fault_store.h"

#include <doctest/doctest.h>

#include <chrono>

#include "test_util.h"

namespace parley::storage {
namespace {

using testing::Must;
using testing::MustGet;

enum class Fam : uint32_t { kA };

WriteBatch PutKV(std::string_view k, std::string_view v) {
  WriteBatch b;
  b.Put(Fam::kA, k, v);
  return b;
}

TEST_CASE("fault store: failing the next N writes, then forever until Heal") {
  auto fault = FaultStore(Must(MemStore::Open({"a"})));
  fault.FailWrites(Code::kNoSpace, 2);
  CHECK(fault.Write(PutKV("k1", "v"), Sync::kSync).code() == Code::kNoSpace);
  CHECK(fault.Write(PutKV("k2", "v"), Sync::kSync).code() == Code::kNoSpace);
  CHECK(fault.Write(PutKV("k3", "v"), Sync::kSync).ok());
  CHECK_FALSE(MustGet(fault, Fam::kA, "k1").has_value());  // a failed write changes nothing
  CHECK(MustGet(fault, Fam::kA, "k3") == "v");
  CHECK(fault.failed_writes() == 2);
  CHECK(fault.writes() == 1);
  CHECK(fault.synced_writes() == 1);

  fault.FailWrites(Code::kIo);
  for (int i = 0; i < 5; ++i) CHECK(fault.Write(PutKV("k", "v"), Sync::kNoSync).code() == Code::kIo);
  fault.Heal();
  CHECK(fault.Write(PutKV("k", "v"), Sync::kNoSync).ok());
  CHECK(fault.synced_writes() == 1);
  CHECK(fault.writes() == 2);
}

TEST_CASE("fault store: reads and WAL syncs fail on demand; the rest passes through") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  REQUIRE(fault.Write(PutKV("k", "v"), Sync::kSync).ok());
  fault.FailReads(Code::kCorruption, 1);
  CHECK(fault.Get(Fam::kA, "k").status().code() == Code::kCorruption);
  CHECK(MustGet(fault, Fam::kA, "k") == "v");
  fault.FailSyncs(Code::kIo, 1);
  CHECK(fault.SyncWal().code() == Code::kIo);
  CHECK(fault.SyncWal().ok());
  CHECK(fault.wal_syncs() == 1);
  CHECK(fault.family_count() == 1);
  CHECK(fault.family_name(Fam::kA) == "a");
  CHECK(testing::Dump(fault, Fam::kA).size() == 1);
  auto snap = fault.GetSnapshot();
  CHECK(MustGet(fault, Fam::kA, "k", snap.get()) == "v");
  CHECK(fault.ApproximateSize(Fam::kA) == 2);
  CHECK(fault.CompactRange(Fam::kA).ok());
}

TEST_CASE("fault store: delayed writes") {
  auto mem = Must(MemStore::Open({"a"}));
  FaultStore fault(mem.get());
  fault.DelayWrites(std::chrono::milliseconds(30));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(fault.Write(PutKV("k", "v"), Sync::kSync).ok());
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(30));
  fault.Heal();
  const auto again = std::chrono::steady_clock::now();
  REQUIRE(fault.Write(PutKV("k", "v"), Sync::kSync).ok());
  CHECK(std::chrono::steady_clock::now() - again < std::chrono::milliseconds(30));
}

TEST_CASE("status: codes, names, conversion to the base status") {
  Status s = Status::NoSpace("disk full");
  CHECK_FALSE(s.ok());
  CHECK(s.IsNoSpace());
  CHECK(s.ToString() == "no_space: disk full");
  CHECK(s.ToBase().message() == "no_space: disk full");
  CHECK(Status().ToBase().ok());
  CHECK(Status::Ok().ToString() == "ok");
  Result<int> r = Status::Busy("locked");
  CHECK(r.status().IsBusy());
  Result<int> v = 5;
  CHECK(v.ok());
  CHECK(*v == 5);
  CHECK(v.status().ok());
}

}  // namespace
}  // namespace parley::storage
