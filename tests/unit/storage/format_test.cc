// storage/format.h: round trips, golden bytes (the examples in docs/storage-format.md), order preservation
// on random values, and malformed input.
#include "storage/format.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace parley::storage {
namespace {

using namespace std::string_literals;

std::string Hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (!out.empty()) out += ' ';
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

std::string EncU64(uint64_t v) {
  std::string s;
  PutU64(&s, v);
  return s;
}
std::string EncI64(int64_t v) {
  std::string s;
  PutI64(&s, v);
  return s;
}
std::string EncStr(std::string_view v) {
  std::string s;
  PutOrderedString(&s, v);
  return s;
}

// Random strings rich in the bytes the escaping cares about.
std::string RandomString(std::mt19937_64& rng) {
  static const char alphabet[] = {'\x00', '\x01', '\x02', 'a', 'b', '\x7f', '\x80', '\xfe', '\xff'};
  std::string s(rng() % 6, '\0');
  for (char& c : s) c = alphabet[rng() % sizeof alphabet];
  return s;
}

TEST_CASE("format: golden bytes (as documented in docs/storage-format.md)") {
  std::string s;
  PutU16(&s, 0x0102);
  CHECK(Hex(s) == "01 02");
  s.clear();
  PutU32(&s, 1);
  CHECK(Hex(s) == "00 00 00 01");
  CHECK(Hex(EncU64(0x0102030405060708ull)) == "01 02 03 04 05 06 07 08");
  CHECK(Hex(EncI64(-1)) == "7f ff ff ff ff ff ff ff");
  CHECK(Hex(EncI64(0)) == "80 00 00 00 00 00 00 00");
  CHECK(Hex(EncI64(1)) == "80 00 00 00 00 00 00 01");
  CHECK(Hex(EncStr("")) == "00 01");
  CHECK(Hex(EncStr("a\0b"s)) == "61 00 ff 62 00 01");
  s.clear();
  PutVarint32(&s, 300);
  CHECK(Hex(s) == "ac 02");
  s.clear();
  PutLengthPrefixed(&s, "hi");
  CHECK(Hex(s) == "02 68 69");
  CHECK(Hex(KeyBuilder().U8(3).Str("ab").U64(7).key()) == "03 61 62 00 01 00 00 00 00 00 00 00 07");
  s.clear();
  PutU32(&s, kFormatVersion);
  CHECK(Hex(s) == "00 00 00 01");
}

TEST_CASE("format: fixed-width integers round trip and reject truncation") {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    std::string s;
    PutU16(&s, static_cast<uint16_t>(v));
    PutU32(&s, static_cast<uint32_t>(v));
    PutU64(&s, v);
    PutI64(&s, static_cast<int64_t>(v) * ((i & 1) ? -1 : 1));
    PutU8(&s, static_cast<uint8_t>(v));
    std::string_view in = s;
    uint16_t a;
    uint32_t b;
    uint64_t c;
    int64_t d;
    uint8_t e;
    REQUIRE(GetU16(&in, &a));
    REQUIRE(GetU32(&in, &b));
    REQUIRE(GetU64(&in, &c));
    REQUIRE(GetI64(&in, &d));
    REQUIRE(GetU8(&in, &e));
    CHECK(in.empty());
    CHECK(a == static_cast<uint16_t>(v));
    CHECK(b == static_cast<uint32_t>(v));
    CHECK(c == v);
    CHECK(d == static_cast<int64_t>(v) * ((i & 1) ? -1 : 1));
    CHECK(e == static_cast<uint8_t>(v));
  }
  std::string s = EncU64(5);
  std::string_view in = std::string_view(s).substr(0, 7);
  uint64_t v = 99;
  CHECK_FALSE(GetU64(&in, &v));
  CHECK(in.size() == 7);  // nothing consumed
  CHECK(v == 99);
  std::string_view empty;
  uint8_t b;
  CHECK_FALSE(GetU8(&empty, &b));
}

TEST_CASE("format: integer encodings preserve order") {
  std::mt19937_64 rng(2);
  std::vector<uint64_t> edges = {
      0, 1, 255, 256, 65535, 65536, UINT32_MAX, uint64_t{UINT32_MAX} + 1, UINT64_MAX - 1, UINT64_MAX};
  for (int i = 0; i < 20000; ++i) {
    const uint64_t a = (i < 100) ? edges[i % edges.size()] : rng() >> (rng() % 64);
    const uint64_t b = (i < 100) ? edges[(i / edges.size()) % edges.size()] : rng() >> (rng() % 64);
    CHECK((a < b) == (EncU64(a) < EncU64(b)));
    const int64_t x = static_cast<int64_t>(a), y = static_cast<int64_t>(b);
    CHECK((x < y) == (EncI64(x) < EncI64(y)));
  }
  CHECK(EncI64(std::numeric_limits<int64_t>::min()) < EncI64(-1));
  CHECK(EncI64(-1) < EncI64(0));
  CHECK(EncI64(std::numeric_limits<int64_t>::max() - 1) < EncI64(std::numeric_limits<int64_t>::max()));
}

TEST_CASE("format: ordered strings round trip and preserve order, also inside composite keys") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const std::string a = RandomString(rng), b = RandomString(rng);
    const std::string ea = EncStr(a), eb = EncStr(b);
    CHECK((a < b) == (ea < eb));
    CHECK((a == b) == (ea == eb));
    std::string_view in = ea;
    std::string back;
    REQUIRE(GetOrderedString(&in, &back));
    CHECK(back == a);
    CHECK(in.empty());
  }
  // Composite keys (string, u64, string) sort as tuples: random keys, encoded byte order == logical order.
  using Tuple = std::tuple<std::string, uint64_t, std::string>;
  std::vector<std::pair<Tuple, std::string>> keys;
  for (int i = 0; i < 3000; ++i) {
    Tuple t{RandomString(rng), rng() % 4, RandomString(rng)};
    keys.emplace_back(t, KeyBuilder().Str(std::get<0>(t)).U64(std::get<1>(t)).Str(std::get<2>(t)).Release());
  }
  auto by_tuple = keys, by_bytes = keys;
  std::stable_sort(by_tuple.begin(), by_tuple.end(), [](auto& x, auto& y) { return x.first < y.first; });
  std::stable_sort(by_bytes.begin(), by_bytes.end(), [](auto& x, auto& y) { return x.second < y.second; });
  for (size_t i = 0; i < keys.size(); ++i) CHECK(by_tuple[i].first == by_bytes[i].first);
  // And they read back.
  for (auto& [t, k] : keys) {
    KeyReader r(k);
    std::string s1, s2;
    uint64_t n;
    REQUIRE(r.Str(&s1));
    REQUIRE(r.U64(&n));
    REQUIRE(r.Str(&s2));
    CHECK(r.done());
    CHECK(Tuple{s1, n, s2} == t);
  }
}

TEST_CASE("format: malformed ordered strings are rejected without consuming") {
  for (std::string bad : {"abc"s, "a\0"s, "a\0\x02"s, "\0\x00"s, ""s}) {
    std::string_view in = bad;
    std::string out = "unchanged";
    CHECK_FALSE(GetOrderedString(&in, &out));
    CHECK(in.size() == bad.size());
    CHECK(out == "unchanged");
  }
}

TEST_CASE("format: varints and length-prefixed strings") {
  std::mt19937_64 rng(4);
  for (int i = 0; i < 5000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    std::string s;
    PutVarint64(&s, v);
    PutVarint32(&s, static_cast<uint32_t>(v));
    std::string_view in = s;
    uint64_t a;
    uint32_t b;
    REQUIRE(GetVarint64(&in, &a));
    REQUIRE(GetVarint32(&in, &b));
    CHECK(a == v);
    CHECK(b == static_cast<uint32_t>(v));
    CHECK(in.empty());
  }
  std::string max;
  PutVarint64(&max, UINT64_MAX);
  CHECK(max.size() == 10);
  // Truncated, overlong and overflowing varints.
  for (std::string bad :
       {"\x80"s, "\xff\xff"s, std::string(10, '\xff') + "\x01"s, std::string(9, '\xff') + "\x02"s}) {
    std::string_view in = bad;
    uint64_t v;
    CHECK_FALSE(GetVarint64(&in, &v));
    CHECK(in.size() == bad.size());
  }
  std::string big;
  PutVarint64(&big, uint64_t{UINT32_MAX} + 1);
  std::string_view in = big;
  uint32_t v32;
  CHECK_FALSE(GetVarint32(&in, &v32));
  CHECK(in.size() == big.size());

  std::string s;
  PutLengthPrefixed(&s, "hello");
  PutLengthPrefixed(&s, std::string("\0\xff", 2));
  PutLengthPrefixed(&s, "");
  in = s;
  std::string_view a, b, c;
  REQUIRE(GetLengthPrefixed(&in, &a));
  REQUIRE(GetLengthPrefixed(&in, &b));
  REQUIRE(GetLengthPrefixed(&in, &c));
  CHECK(a == "hello");
  CHECK(b == std::string("\0\xff", 2));
  CHECK(c.empty());
  CHECK(in.empty());
  std::string_view trunc = std::string_view(s).substr(0, 4);
  CHECK_FALSE(GetLengthPrefixed(&trunc, &a));
  CHECK(trunc.size() == 4);
}

TEST_CASE("format: PrefixSuccessor bounds every key with the prefix") {
  CHECK(PrefixSuccessor("abc") == "abd");
  CHECK(PrefixSuccessor("ab\xff") == "ac");
  CHECK(PrefixSuccessor("a\xff\xff") == "b");
  CHECK(PrefixSuccessor("\xff\xff").empty());
  CHECK(PrefixSuccessor("").empty());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5000; ++i) {
    const std::string p = RandomString(rng), k = RandomString(rng);
    const std::string succ = PrefixSuccessor(p);
    const bool has_prefix = k.compare(0, p.size(), p) == 0 && k.size() >= p.size();
    if (has_prefix) {
      CHECK(k >= p);
      if (!succ.empty()) CHECK(k < succ);
    } else if (k > p && !succ.empty()) {
      CHECK(k >= succ);  // nothing without the prefix falls in [p, succ)
    }
  }
}

TEST_CASE("format: KeyReader fails without consuming and reads raw tails") {
  const std::string key = KeyBuilder("T").U32(9).Raw("tail").Release();
  KeyReader r(key);
  std::string_view tag;
  REQUIRE(r.Raw(1, &tag));
  CHECK(tag == "T");
  uint64_t wrong;
  CHECK_FALSE(KeyReader("\x01\x02").U64(&wrong));
  std::string s;
  CHECK_FALSE(r.Str(&s));  // 00 00 ...: an escape byte followed by neither ff nor 01
  uint32_t n;
  REQUIRE(r.U32(&n));
  CHECK(n == 9);
  CHECK(r.rest() == "tail");
  std::string_view rest;
  CHECK_FALSE(r.Raw(5, &rest));
  REQUIRE(r.Raw(4, &rest));
  CHECK(r.done());
}

}  // namespace
}  // namespace parley::storage
