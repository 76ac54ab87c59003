// Backups (checkpoint + manifest) and compaction on a real RocksDB store.
#include "broker/admin/backup.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../temp_dir.h"
#include "storage/rocks_store.h"

namespace {

std::unique_ptr<parley::storage::RocksStore> OpenStore(const std::string& dir) {
  parley::storage::OpenOptions o;
  o.families = {"a", "b"};
  auto s = parley::storage::RocksStore::Open(dir, o);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s.value());
}

}  // namespace

TEST_CASE("backup: a checkpoint with a manifest that lists every file with its size and SHA-256") {
  parley::testing::TempDir tmp("backup");
  auto store = OpenStore(tmp.Sub("data"));
  parley::storage::WriteBatch b;
  for (int i = 0; i < 1000; ++i)
    b.Put(parley::storage::FamilyId(i % 2), "key" + std::to_string(i), std::string(100, static_cast<char>('a' + i % 26)));
  REQUIRE(store->Write(b, parley::storage::Sync::kSync).ok());

  const std::string target = tmp.Sub("backup-1");
  REQUIRE(parley::admin::CheckBackupTarget(target).ok());
  parley::admin::JobProgress progress;
  REQUIRE(parley::admin::RunBackup(*store, target, progress).ok());
  CHECK_FALSE(parley::admin::CheckBackupTarget(target).ok());  // exists now
  CHECK_FALSE(parley::admin::CheckBackupTarget("relative/dir").ok());
  CHECK_FALSE(parley::admin::CheckBackupTarget(tmp.Sub("no/such/parent")).ok());

  std::ifstream in(target + "/" + parley::admin::kBackupManifest);
  const auto manifest = nlohmann::json::parse(in);
  CHECK(manifest["format"] == 1);
  REQUIRE(manifest["files"].size() > 2);
  for (const auto& f : manifest["files"]) {
    const std::string path = target + "/" + f["name"].get<std::string>();
    CHECK(std::filesystem::file_size(path) == f["bytes"].get<uint64_t>());
    auto sum = parley::admin::Sha256File(path, nullptr);
    REQUIRE(sum.ok());
    CHECK(sum.value() == f["sha256"].get<std::string>());
  }

  // The backup opens as a store with every key.
  store.reset();
  auto copy = OpenStore(target);
  for (int i = 0; i < 1000; i += 97) {
    auto v = copy->Get(parley::storage::FamilyId(i % 2), "key" + std::to_string(i));
    REQUIRE(v.ok());
    CHECK(v.value().has_value());
  }
}

TEST_CASE("backup: Sha256File matches a known vector; compaction reports every family") {
  parley::testing::TempDir tmp("backup");
  const std::string p = tmp.Write("abc", "abc");
  CHECK(parley::admin::Sha256File(p, nullptr).value() ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_FALSE(parley::admin::Sha256File(tmp.Sub("missing"), nullptr).ok());

  auto store = OpenStore(tmp.Sub("data"));
  parley::admin::JobProgress progress;
  REQUIRE(parley::admin::RunCompaction(*store, progress).ok());
}

TEST_CASE("jobs: one job of a kind at a time; progress and results are reported") {
  parley::admin::Jobs jobs;
  std::atomic<bool> release{false};
  auto first = jobs.Start("backup", "bytes", [&](parley::admin::JobProgress& p) {
    p.Phase("copying", 10);
    p.Add(4);
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    p.SetResult({{"files", 3}});
    return parley::Status::Ok();
  });
  REQUIRE(first.ok());
  const std::string id = first.value()["id"];
  CHECK_FALSE(jobs.Start("backup", "bytes", [](auto&) { return parley::Status::Ok(); }).ok());
  auto failing = jobs.Start("compact", "families", [](auto&) { return parley::Status::Error("disk on fire"); });
  REQUIRE(failing.ok());
  for (int i = 0; i < 500 && jobs.Get(id)["done"] != 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(jobs.Get(id)["state"] == "running");
  CHECK(jobs.Get(id)["total"] == 10);
  release = true;
  for (int i = 0; i < 1000 && jobs.Get(id)["state"] == "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(jobs.Get(id)["state"] == "done");
  CHECK(jobs.Get(id)["result"]["files"] == 3);
  const std::string fid = failing.value()["id"];
  for (int i = 0; i < 1000 && jobs.Get(fid)["state"] == "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(jobs.Get(fid)["state"] == "failed");
  CHECK(jobs.Get(fid)["error"] == "disk on fire");
  CHECK(jobs.Get("nope").is_null());
  CHECK(jobs.List().size() == 2);
}
