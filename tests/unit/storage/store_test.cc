// The Store contract, run against MemStore and RocksStore through the same test bodies: every operation,
// iterators (bounds, prefix, seeks, both directions) against a model, snapshots, DeleteRange, checkpoints.
#include "storage/store.h"

#include <doctest/doctest.h>

#include <map>
#include <random>

#include "storage/format.h"
#include "storage/internal.h"
#include "storage/mem_store.h"
#include "storage/rocks_store.h"
#include "test_util.h"

namespace parley::storage {
namespace {

using testing::Dump;
using testing::Must;
using testing::MustGet;
using testing::TempDir;
using namespace std::string_literals;

enum class Fam : uint32_t { kA, kB };
const std::vector<std::string> kFamilies = {"alpha", "beta"};

struct MemFactory {
  std::unique_ptr<Store> Open(const std::string& /*dir*/, std::vector<std::string> families = kFamilies) {
    return Must(MemStore::Open(std::move(families)));
  }
  std::unique_ptr<Store> OpenCheckpoint(const std::string& dir) {
    return Must(MemStore::LoadCheckpoint(dir, kFamilies));
  }
};

struct RocksFactory {
  std::unique_ptr<Store> Open(const std::string& dir, std::vector<std::string> families = kFamilies) {
    OpenOptions o;
    o.families = std::move(families);
    o.block_cache_mb = 8;
    o.write_buffer_mb = 4;
    return Must(RocksStore::Open(dir + "/db", o));
  }
  std::unique_ptr<Store> OpenCheckpoint(const std::string& dir) {
    OpenOptions o;
    o.families = kFamilies;
    o.create_if_missing = false;
    return Must(RocksStore::Open(dir, o));
  }
};

#define STORE_TEST(name) TEST_CASE_TEMPLATE("store: " name, F, MemFactory, RocksFactory)

void Put(Store& s, FamilyId f, std::string_view k, std::string_view v) {
  WriteBatch b;
  b.Put(f, k, v);
  REQUIRE(s.Write(b, Sync::kNoSync).ok());
}

STORE_TEST("put, get, overwrite, delete; binary keys and values") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  CHECK(s->family_count() == 2);
  CHECK(s->family_name(Fam::kB) == "beta");
  CHECK_FALSE(MustGet(*s, Fam::kA, "missing").has_value());
  Put(*s, Fam::kA, "k", "v1");
  CHECK(MustGet(*s, Fam::kA, "k") == "v1");
  Put(*s, Fam::kA, "k", "v2");
  CHECK(MustGet(*s, Fam::kA, "k") == "v2");
  CHECK_FALSE(MustGet(*s, Fam::kB, "k").has_value());  // families are separate
  const std::string bin_key = "\0\xff\x01"s, bin_val = "\0\0\xfe"s;
  Put(*s, Fam::kB, bin_key, bin_val);
  Put(*s, Fam::kB, "", "empty key");
  Put(*s, Fam::kB, "empty value", "");
  CHECK(MustGet(*s, Fam::kB, bin_key) == bin_val);
  CHECK(MustGet(*s, Fam::kB, "") == "empty key");
  CHECK(MustGet(*s, Fam::kB, "empty value") == "");
  WriteBatch del;
  del.Delete(Fam::kA, "k");
  del.Delete(Fam::kA, "never existed");
  CHECK(s->Write(del, Sync::kSync).ok());
  CHECK_FALSE(MustGet(*s, Fam::kA, "k").has_value());
  CHECK(s->SyncWal().ok());
}

STORE_TEST("a batch is atomic across families and applied in order") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  WriteBatch b;
  b.Put(Fam::kA, "x", "1");
  b.Put(Fam::kB, "x", "2");
  b.Put(Fam::kA, "y", "first");
  b.Delete(Fam::kA, "y");
  b.Put(Fam::kA, "z", "first");
  b.Put(Fam::kA, "z", "second");
  CHECK(b.Count() == 6);
  CHECK(b.ByteSize() > 0);
  CHECK(b.FamilyLimit() == 2);
  REQUIRE(s->Write(b, Sync::kSync).ok());
  CHECK(MustGet(*s, Fam::kA, "x") == "1");
  CHECK(MustGet(*s, Fam::kB, "x") == "2");
  CHECK_FALSE(MustGet(*s, Fam::kA, "y").has_value());
  CHECK(MustGet(*s, Fam::kA, "z") == "second");

  // A batch naming an unknown family is refused whole.
  WriteBatch bad;
  bad.Put(Fam::kA, "ok-part", "v");
  bad.Put(FamilyId(7), "k", "v");
  Status st = s->Write(bad, Sync::kSync);
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK_FALSE(MustGet(*s, Fam::kA, "ok-part").has_value());
  CHECK(s->Get(FamilyId(2), "k").status().code() == Code::kInvalidArgument);
  CHECK(s->NewIterator(FamilyId(2))->status().code() == Code::kInvalidArgument);
  CHECK(s->CompactRange(FamilyId(2)).code() == Code::kInvalidArgument);
  CHECK(s->ApproximateSize(FamilyId(2)) == 0);
  // An empty batch is fine.
  CHECK(s->Write(WriteBatch(), Sync::kSync).ok());
}

STORE_TEST("DeleteRange removes [begin, end) only, in batch order") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  WriteBatch b;
  for (std::string k : {"a"s, "b"s, "b\0"s, "c"s, "c\xff"s, "d"s, "e"s}) b.Put(Fam::kA, k, "v");
  b.Put(Fam::kB, "c", "other family");
  REQUIRE(s->Write(b, Sync::kNoSync).ok());
  WriteBatch r;
  r.Put(Fam::kA, "c1", "deleted by the range that follows");
  r.DeleteRange(Fam::kA, "b", "d");
  r.Put(Fam::kA, "c2", "written after the range: survives");
  r.DeleteRange(Fam::kA, "e", "a");  // empty range (begin > end): nothing
  r.DeleteRange(Fam::kA, "e", "e");  // empty range: nothing
  REQUIRE(s->Write(r, Sync::kNoSync).ok());
  std::vector<std::pair<std::string, std::string>> expect = {
      {"a", "v"}, {"c2", "written after the range: survives"}, {"d", "v"}, {"e", "v"}};
  CHECK(Dump(*s, Fam::kA) == expect);
  CHECK(MustGet(*s, Fam::kB, "c") == "other family");
}

// ---- Iterators against a model
// -----------------------------------------------------------------------------

using Model = std::map<std::string, std::string>;

// What an iterator should yield: positions in the model restricted to [lower, upper).
struct ModelCursor {
  const Model& m;
  internal::Bounds b;
  Model::const_iterator it;
  bool valid = false;
  bool In(Model::const_iterator i) const {
    return i != m.end() && b.AboveLower(i->first) && b.BelowUpper(i->first);
  }
  void SeekToFirst() {
    it = b.lower ? m.lower_bound(*b.lower) : m.begin();
    valid = In(it);
  }
  void SeekToLast() {
    it = b.upper ? m.lower_bound(*b.upper) : m.end();
    Back();
  }
  void Seek(const std::string& t) {
    it = m.lower_bound(b.AboveLower(t) ? t : *b.lower);
    valid = In(it);
  }
  void SeekForPrev(const std::string& t) {
    if (!b.BelowUpper(t)) return SeekToLast();
    it = m.upper_bound(t);
    Back();
  }
  void Next() {
    ++it;
    valid = In(it);
  }
  void Back() {
    if (it == m.begin()) {
      valid = false;
      return;
    }
    --it;
    valid = In(it);
  }
};

std::string RandomKey(std::mt19937_64& rng) {
  static const char alphabet[] = {'\x00', 'a', 'b', 'c', '\xff'};
  std::string k(1 + rng() % 3, 'a');
  for (char& c : k) c = alphabet[rng() % sizeof alphabet];
  return k;
}

STORE_TEST("iterators match a model: bounds, prefix, Seek, SeekForPrev, Next, Prev") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  std::mt19937_64 rng(42);
  Model model;
  WriteBatch b;
  for (int i = 0; i < 60; ++i) {
    std::string k = RandomKey(rng), v = std::to_string(i);
    model[k] = v;
    b.Put(Fam::kA, k, v);
  }
  REQUIRE(s->Write(b, Sync::kNoSync).ok());
  for (int round = 0; round < 400; ++round) {
    IteratorOptions o;
    if (rng() % 3 == 0) o.lower_bound = RandomKey(rng);
    if (rng() % 3 == 0) o.upper_bound = RandomKey(rng);
    if (rng() % 3 == 0) o.prefix = RandomKey(rng).substr(0, 1 + rng() % 2);
    auto it = s->NewIterator(Fam::kA, o);
    ModelCursor c{model, internal::ResolveBounds(o), model.end()};
    CAPTURE(round);
    for (int step = 0; step < 12; ++step) {
      const int op = static_cast<int>(rng() % 6);
      const std::string t = RandomKey(rng);
      if (op == 0) {
        it->SeekToFirst();
        c.SeekToFirst();
      }
      if (op == 1) {
        it->SeekToLast();
        c.SeekToLast();
      }
      if (op == 2) {
        it->Seek(t);
        c.Seek(t);
      }
      if (op == 3) {
        it->SeekForPrev(t);
        c.SeekForPrev(t);
      }
      if (op == 4 && c.valid) {
        it->Next();
        c.Next();
      }
      if (op == 5 && c.valid) {
        it->Prev();
        c.Back();
      }
      REQUIRE(it->Valid() == c.valid);
      REQUIRE(it->status().ok());
      if (c.valid) {
        REQUIRE(it->key() == c.it->first);
        REQUIRE(it->value() == c.it->second);
      }
    }
  }
}

STORE_TEST("iterator with prefix; an iterator does not see later writes") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  WriteBatch b;
  for (std::string k : {"u/1"s, "u/2"s, "u/3"s, "v/1"s, "u\xff"s, "u"s}) b.Put(Fam::kB, k, k);
  REQUIRE(s->Write(b, Sync::kNoSync).ok());
  IteratorOptions o;
  o.prefix = "u/";
  auto it = s->NewIterator(Fam::kB, o);
  Put(*s, Fam::kB, "u/25", "after the iterator was made");
  std::vector<std::string> keys;
  for (it->SeekToFirst(); it->Valid(); it->Next()) keys.emplace_back(it->key());
  CHECK(keys == std::vector<std::string>{"u/1", "u/2", "u/3"});
  keys.clear();
  for (it->SeekToLast(); it->Valid(); it->Prev()) keys.emplace_back(it->key());
  CHECK(keys == std::vector<std::string>{"u/3", "u/2", "u/1"});
  it->Seek("u/2");
  REQUIRE(it->Valid());
  CHECK(it->key() == "u/2");
  it->Next();
  REQUIRE(it->Valid());
  CHECK(it->key() == "u/3");  // not u/25: written later
  it.reset();
  // Empty bounds: never valid, status ok.
  IteratorOptions empty;
  empty.lower_bound = "z";
  empty.upper_bound = "a";
  auto e = s->NewIterator(Fam::kB, empty);
  e->SeekToFirst();
  CHECK_FALSE(e->Valid());
  e->SeekForPrev("zz");
  CHECK_FALSE(e->Valid());
  CHECK(e->status().ok());
}

STORE_TEST("snapshots are isolated from later writes, deletes and ranges") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  Put(*s, Fam::kA, "k1", "old");
  Put(*s, Fam::kA, "k2", "old");
  Put(*s, Fam::kB, "k", "old");
  auto snap1 = s->GetSnapshot();
  WriteBatch b;
  b.Put(Fam::kA, "k1", "new");
  b.Delete(Fam::kB, "k");
  b.Put(Fam::kA, "k3", "new");
  REQUIRE(s->Write(b, Sync::kNoSync).ok());
  auto snap2 = s->GetSnapshot();
  WriteBatch r;
  r.DeleteRange(Fam::kA, "k", "l");
  REQUIRE(s->Write(r, Sync::kNoSync).ok());

  CHECK(MustGet(*s, Fam::kA, "k1", snap1.get()) == "old");
  CHECK(MustGet(*s, Fam::kB, "k", snap1.get()) == "old");
  CHECK_FALSE(MustGet(*s, Fam::kA, "k3", snap1.get()).has_value());
  CHECK(MustGet(*s, Fam::kA, "k1", snap2.get()) == "new");
  CHECK_FALSE(MustGet(*s, Fam::kB, "k", snap2.get()).has_value());
  CHECK_FALSE(MustGet(*s, Fam::kA, "k1").has_value());
  std::vector<std::pair<std::string, std::string>> at1 = {{"k1", "old"}, {"k2", "old"}};
  std::vector<std::pair<std::string, std::string>> at2 = {{"k1", "new"}, {"k2", "old"}, {"k3", "new"}};
  CHECK(Dump(*s, Fam::kA, snap1.get()) == at1);
  CHECK(Dump(*s, Fam::kA, snap2.get()) == at2);
  CHECK(Dump(*s, Fam::kA).empty());
  snap1.reset();
  CHECK(Dump(*s, Fam::kA, snap2.get()) == at2);

  // A snapshot of another store is refused.
  TempDir other_dir;
  auto other = factory.Open(other_dir.path());
  auto foreign = other->GetSnapshot();
  CHECK(s->Get(Fam::kA, "k1", foreign.get()).status().code() == Code::kInvalidArgument);
  IteratorOptions o;
  o.snapshot = foreign.get();
  CHECK(s->NewIterator(Fam::kA, o)->status().code() == Code::kInvalidArgument);
}

STORE_TEST("checkpoint, then open the checkpoint: same contents as at checkpoint time") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  WriteBatch b;
  for (int i = 0; i < 500; ++i) {
    b.Put(Fam::kA, KeyBuilder().U32(i).Release(), std::string(100, 'a' + i % 26));
    if (i % 7 == 0) b.Put(Fam::kB, KeyBuilder().Str("b").U32(i).Release(), std::to_string(i));
  }
  REQUIRE(s->Write(b, Sync::kSync).ok());
  const auto a_then = Dump(*s, Fam::kA), b_then = Dump(*s, Fam::kB);
  const std::string cp = dir.Sub("checkpoint");
  REQUIRE(s->Checkpoint(cp).ok());
  CHECK(s->Checkpoint(cp).code() == Code::kInvalidArgument);  // exists
  Put(*s, Fam::kA, "after", "not in the checkpoint");
  WriteBatch d;
  d.DeleteRange(Fam::kB, "", "\xff");
  REQUIRE(s->Write(d, Sync::kSync).ok());

  auto restored = factory.OpenCheckpoint(cp);
  CHECK(Dump(*restored, Fam::kA) == a_then);
  CHECK(Dump(*restored, Fam::kB) == b_then);
  CHECK(b_then.size() == 72);
  CHECK_FALSE(MustGet(*restored, Fam::kA, "after").has_value());
  CHECK(MustGet(*s, Fam::kA, "after").has_value());  // the original goes on
}

STORE_TEST("ApproximateSize grows with data; CompactRange reclaims deleted ranges") {
  TempDir dir;
  F factory;
  auto s = factory.Open(dir.path());
  const uint64_t empty = s->ApproximateSize(Fam::kA);
  WriteBatch b;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string v(200, ' ');
    for (char& c : v) c = static_cast<char>(rng());
    b.Put(Fam::kA, KeyBuilder().U32(i).Release(), v);
  }
  REQUIRE(s->Write(b, Sync::kNoSync).ok());
  REQUIRE(s->CompactRange(Fam::kA).ok());
  const uint64_t full = s->ApproximateSize(Fam::kA);
  CHECK(full > empty + 200 * 1000);
  WriteBatch d;
  d.DeleteRange(Fam::kA, "", "\xff\xff\xff\xff\xff");
  REQUIRE(s->Write(d, Sync::kNoSync).ok());
  REQUIRE(s->CompactRange(Fam::kA).ok());
  CHECK(s->ApproximateSize(Fam::kA) < full / 10);
  CHECK(Dump(*s, Fam::kA).empty());
}

}  // namespace
}  // namespace parley::storage
