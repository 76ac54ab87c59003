#include "storage/mem_store.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "base/check.h"
#include "storage/format.h"
#include "storage/internal.h"

namespace parley::storage {
namespace {

constexpr std::string_view kDumpMagic = "PARLEY-MEMSTORE\n";
constexpr std::string_view kDumpFile = "memstore.dump";

}  // namespace

class MemStore::MemSnapshot final : public Snapshot {
 public:
  MemSnapshot(MemStore* owner, std::vector<std::shared_ptr<const Map>> maps)
      : owner_(owner), maps_(std::move(maps)) {
    owner_->live_objects_.fetch_add(1);
  }
  ~MemSnapshot() override { owner_->live_objects_.fetch_sub(1); }
  const MemStore* owner() const { return owner_; }
  const std::shared_ptr<const Map>& map(uint32_t family) const { return maps_[family]; }

 private:
  MemStore* const owner_;
  const std::vector<std::shared_ptr<const Map>> maps_;
};

class MemStore::MemIterator final : public Iterator {
 public:
  MemIterator(MemStore* owner, std::shared_ptr<const Map> map, internal::Bounds bounds)
      : owner_(owner), map_(std::move(map)), bounds_(std::move(bounds)), it_(map_->end()) {
    owner_->live_objects_.fetch_add(1);
  }
  ~MemIterator() override { owner_->live_objects_.fetch_sub(1); }

  bool Valid() const override { return valid_; }
  void SeekToFirst() override {
    it_ = bounds_.lower ? map_->lower_bound(*bounds_.lower) : map_->begin();
    CheckUpper();
  }
  void SeekToLast() override {
    it_ = bounds_.upper ? map_->lower_bound(*bounds_.upper) : map_->end();
    StepBack();
  }
  void Seek(std::string_view target) override {
    if (!bounds_.AboveLower(target)) target = *bounds_.lower;
    it_ = map_->lower_bound(target);
    CheckUpper();
  }
  void SeekForPrev(std::string_view target) override {
    if (!bounds_.BelowUpper(target)) return SeekToLast();
    it_ = map_->upper_bound(target);
    StepBack();
  }
  void Next() override {
    PARLEY_DCHECK(valid_);
    ++it_;
    CheckUpper();
  }
  void Prev() override {
    PARLEY_DCHECK(valid_);
    StepBack();
  }
  std::string_view key() const override {
    PARLEY_DCHECK(valid_);
    return it_->first;
  }
  std::string_view value() const override {
    PARLEY_DCHECK(valid_);
    return it_->second;
  }
  Status status() const override { return Status::Ok(); }

 private:
  void CheckUpper() {
    valid_ = it_ != map_->end() && bounds_.BelowUpper(it_->first) && bounds_.AboveLower(it_->first);
  }
  // Moves to the entry before it_ (which may be end()), if that entry is in bounds.
  void StepBack() {
    if (it_ == map_->begin()) {
      valid_ = false;
      return;
    }
    --it_;
    valid_ = bounds_.AboveLower(it_->first) && bounds_.BelowUpper(it_->first);
  }

  MemStore* const owner_;
  const std::shared_ptr<const Map> map_;
  const internal::Bounds bounds_;
  Map::const_iterator it_;
  bool valid_ = false;
};

MemStore::MemStore(std::vector<std::string> names) : names_(std::move(names)) {
  maps_.reserve(names_.size());
  for (size_t i = 0; i < names_.size(); ++i) maps_.push_back(std::make_shared<Map>());
}

MemStore::~MemStore() {
  // Same contract as RocksStore, where a live snapshot or iterator would dangle.
  PARLEY_CHECK(live_objects_.load() == 0);
}

Result<std::unique_ptr<MemStore>> MemStore::Open(std::vector<std::string> families) {
  if (Status s = internal::ValidateFamilyNames(families); !s.ok()) return s;
  return std::unique_ptr<MemStore>(new MemStore(std::move(families)));
}

const std::string& MemStore::family_name(FamilyId family) const {
  PARLEY_CHECK(family.index() < names_.size());
  return names_[family.index()];
}

Status MemStore::Write(const WriteBatch& batch, Sync /*sync*/) {
  if (batch.FamilyLimit() > family_count()) {
    return Status::InvalidArgument("write batch uses unknown column family index " +
                                   std::to_string(batch.FamilyLimit() - 1));
  }
  std::unique_lock lock(mu_);
  std::vector<bool> owned(maps_.size(), false);
  WriteBatch::Reader reader(batch);
  WriteBatch::Op op;
  while (reader.Next(&op)) {
    const uint32_t f = op.family.index();
    if (!owned[f]) {
      // Copy on write: a snapshot or iterator still reads this map.
      if (maps_[f].use_count() > 1) maps_[f] = std::make_shared<Map>(*maps_[f]);
      owned[f] = true;
    }
    Map& m = *maps_[f];
    switch (op.kind) {
      case WriteBatch::OpKind::kPut:
        m.insert_or_assign(std::string(op.key), std::string(op.value));
        break;
      case WriteBatch::OpKind::kDelete:
        if (auto it = m.find(op.key); it != m.end()) m.erase(it);
        break;
      case WriteBatch::OpKind::kDeleteRange:
        if (op.key < op.value) m.erase(m.lower_bound(op.key), m.lower_bound(op.value));
        break;
    }
  }
  return Status::Ok();
}

Result<std::optional<std::string>> MemStore::Get(FamilyId family, std::string_view key,
                                                 const Snapshot* snapshot) {
  if (family.index() >= family_count()) return Status::InvalidArgument("unknown column family index");
  std::shared_ptr<const Map> map;
  if (snapshot != nullptr) {
    auto* snap = dynamic_cast<const MemSnapshot*>(snapshot);
    if (snap == nullptr || snap->owner() != this) {
      return Status::InvalidArgument("snapshot belongs to another store");
    }
    map = snap->map(family.index());
  } else {
    std::shared_lock lock(mu_);
    auto it = maps_[family.index()]->find(key);
    if (it == maps_[family.index()]->end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  auto it = map->find(key);
  if (it == map->end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

std::unique_ptr<Iterator> MemStore::NewIterator(FamilyId family, const IteratorOptions& options) {
  if (family.index() >= family_count()) {
    return std::make_unique<internal::ErrorIterator>(Status::InvalidArgument("unknown column family index"));
  }
  std::shared_ptr<const Map> map;
  if (options.snapshot != nullptr) {
    auto* snap = dynamic_cast<const MemSnapshot*>(options.snapshot);
    if (snap == nullptr || snap->owner() != this) {
      return std::make_unique<internal::ErrorIterator>(
          Status::InvalidArgument("snapshot belongs to another store"));
    }
    map = snap->map(family.index());
  } else {
    std::shared_lock lock(mu_);
    map = maps_[family.index()];
  }
  return std::make_unique<MemIterator>(this, std::move(map), internal::ResolveBounds(options));
}

std::unique_ptr<Snapshot> MemStore::GetSnapshot() {
  std::vector<std::shared_ptr<const Map>> maps;
  {
    std::shared_lock lock(mu_);
    maps.assign(maps_.begin(), maps_.end());
  }
  return std::make_unique<MemSnapshot>(this, std::move(maps));
}

Status MemStore::Checkpoint(const std::string& dir) {
  std::unique_ptr<Snapshot> snap = GetSnapshot();
  const auto& s = static_cast<const MemSnapshot&>(*snap);
  std::string out(kDumpMagic);
  PutU32(&out, kFormatVersion);
  PutU32(&out, family_count());
  for (uint32_t f = 0; f < family_count(); ++f) {
    PutLengthPrefixed(&out, names_[f]);
    PutU64(&out, s.map(f)->size());
    for (const auto& [k, v] : *s.map(f)) {
      PutLengthPrefixed(&out, k);
      PutLengthPrefixed(&out, v);
    }
  }
  if (::mkdir(dir.c_str(), 0755) != 0) {
    const int e = errno;
    if (e == EEXIST) return Status::InvalidArgument("checkpoint dir '" + dir + "' already exists");
    return Status::Io("cannot create checkpoint dir '" + dir + "': " + std::strerror(e));
  }
  std::ofstream f(dir + "/" + std::string(kDumpFile), std::ios::binary);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) return Status::Io("cannot write checkpoint '" + dir + "'");
  return Status::Ok();
}

Result<std::unique_ptr<MemStore>> MemStore::LoadCheckpoint(const std::string& dir,
                                                           std::vector<std::string> families) {
  auto opened = Open(std::move(families));
  if (!opened.ok()) return opened.status();
  std::unique_ptr<MemStore> store = std::move(opened).value();
  const std::string path = dir + "/" + std::string(kDumpFile);
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound("no MemStore checkpoint at '" + path + "'");
  std::stringstream buf;
  buf << f.rdbuf();
  const std::string data = buf.str();
  std::string_view in = data;
  const Status corrupt = Status::Corruption("MemStore checkpoint '" + path + "' is damaged");
  uint32_t version, count;
  if (in.substr(0, kDumpMagic.size()) != kDumpMagic) return corrupt;
  in.remove_prefix(kDumpMagic.size());
  if (!GetU32(&in, &version) || !GetU32(&in, &count)) return corrupt;
  if (version > kFormatVersion) {
    return Status::Incompatible("MemStore checkpoint '" + path + "' has format version " +
                                std::to_string(version));
  }
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view name;
    uint64_t n;
    if (!GetLengthPrefixed(&in, &name) || !GetU64(&in, &n)) return corrupt;
    Map* target = nullptr;
    for (size_t j = 0; j < store->names_.size(); ++j) {
      if (store->names_[j] == name) target = store->maps_[j].get();
    }
    for (uint64_t e = 0; e < n; ++e) {
      std::string_view k, v;
      if (!GetLengthPrefixed(&in, &k) || !GetLengthPrefixed(&in, &v)) return corrupt;
      if (target != nullptr) target->emplace(std::string(k), std::string(v));
    }
  }
  if (!in.empty()) return corrupt;
  return store;
}

Status MemStore::CompactRange(FamilyId family) {
  if (family.index() >= family_count()) return Status::InvalidArgument("unknown column family index");
  return Status::Ok();
}

uint64_t MemStore::ApproximateSize(FamilyId family) {
  if (family.index() >= family_count()) return 0;
  std::shared_lock lock(mu_);
  uint64_t n = 0;
  for (const auto& [k, v] : *maps_[family.index()]) n += k.size() + v.size();
  return n;
}

}  // namespace parley::storage
