#include "tools/bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace parley::bench {
namespace {

constexpr size_t kLinear = 128;   // values 0..127 have a bucket each
constexpr size_t kPerOctave = 64;  // then 64 buckets per power of two, 2^7 .. 2^63
constexpr size_t kBuckets = kLinear + (64 - 7) * kPerOctave;

}  // namespace

Histogram::Histogram() : buckets_(kBuckets, 0) {}

size_t Histogram::BucketOf(uint64_t v) {
  if (v < kLinear) return static_cast<size_t>(v);
  int k = 63 - std::countl_zero(v);  // 7..63
  int shift = k - 6;                 // v >> shift is in [64, 128)
  return kLinear + static_cast<size_t>(k - 7) * kPerOctave + static_cast<size_t>((v >> shift) - 64);
}

uint64_t Histogram::BucketHigh(size_t b) {
  if (b < kLinear) return b;
  size_t j = b - kLinear;
  int k = static_cast<int>(j / kPerOctave) + 7;
  uint64_t m = j % kPerOctave + 64;
  int shift = k - 6;
  uint64_t low = m << shift;
  return low + ((uint64_t{1} << shift) - 1);
}

void Histogram::Record(uint64_t ns) {
  ++buckets_[BucketOf(ns)];
  ++count_;
  min_ = std::min(min_, ns);
  max_ = std::max(max_, ns);
  sum_ += static_cast<double>(ns);
}

void Histogram::Merge(const Histogram& o) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  sum_ += o.sum_;
}

uint64_t Histogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(BucketHigh(i), max_);
  }
  return max_;
}

}  // namespace parley::bench
