#include "storage/fault_store.h"

#include <thread>

namespace parley::storage {

void FaultStore::FailWrites(Code code, int count) {
  std::lock_guard lock(mu_);
  write_fault_ = {code, count};
}

void FaultStore::FailReads(Code code, int count) {
  std::lock_guard lock(mu_);
  read_fault_ = {code, count};
}

void FaultStore::FailSyncs(Code code, int count) {
  std::lock_guard lock(mu_);
  sync_fault_ = {code, count};
}

void FaultStore::Heal() {
  std::lock_guard lock(mu_);
  write_fault_ = read_fault_ = sync_fault_ = {};
  delay_ms_.store(0);
}

Status FaultStore::Take(Fault* f, const char* what) {
  std::lock_guard lock(mu_);
  if (f->code == Code::kOk || f->remaining == 0) return Status::Ok();
  if (f->remaining > 0) --f->remaining;
  return Status(f->code, std::string("injected failure: ") + what);
}

Status FaultStore::Write(const WriteBatch& batch, Sync sync) {
  if (const int64_t ms = delay_ms_.load(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  if (Status s = Take(&write_fault_, "write"); !s.ok()) {
    failed_writes_.fetch_add(1);
    return s;
  }
  Status s = base_->Write(batch, sync);
  if (s.ok()) {
    writes_.fetch_add(1);
    if (sync == Sync::kSync) synced_writes_.fetch_add(1);
  } else {
    failed_writes_.fetch_add(1);
  }
  return s;
}

Result<std::optional<std::string>> FaultStore::Get(FamilyId family, std::string_view key,
                                                   const Snapshot* snapshot) {
  if (Status s = Take(&read_fault_, "read"); !s.ok()) return s;
  return base_->Get(family, key, snapshot);
}

Status FaultStore::SyncWal() {
  if (Status s = Take(&sync_fault_, "WAL sync"); !s.ok()) return s;
  Status s = base_->SyncWal();
  if (s.ok()) wal_syncs_.fetch_add(1);
  return s;
}

}  // namespace parley::storage
