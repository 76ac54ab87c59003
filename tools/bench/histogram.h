// A log-linear latency histogram: exact below 128 ns, then 64 buckets per power of two (each bucket at
// most 1/64 ≈ 1.6 % wide). Fixed size (≈30 KB), so a run of any length records in constant memory.
// Not thread-safe: each worker loop keeps its own and the coordinator merges them after the run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace parley::bench {

class Histogram {
 public:
  Histogram();

  void Record(uint64_t ns);
  void Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
  // The value at quantile q (0 < q <= 1): the highest value its bucket can hold, capped at max().
  // 0 when empty.
  uint64_t Quantile(double q) const;

  // Bucket arithmetic, public for tests.
  static size_t BucketOf(uint64_t ns);
  static uint64_t BucketHigh(size_t bucket);

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  double sum_ = 0;  // ns; a double keeps the mean exact enough for any run
};

}  // namespace parley::bench
