// Helpers shared by the micro-benchmarks (tests/unit/<module>/*_bench.cc): an allocation counter, so that
// each benchmark can report heap allocations per operation beside its time.
//
// bench_util.cc replaces the global operator new / delete of the binary it is linked into (malloc and free
// underneath, plus a per-thread count). Link it into benchmark binaries only: sanitizer builds replace the
// allocator themselves, and the doctest binaries have no use for it.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>

namespace parley::testing {

// Allocations made through the global operator new by the calling thread since it started.
uint64_t AllocCount();

// Counts the allocations from its construction to Report(), which sets the benchmark's "allocs/op"
// counter: allocations per operation, an iteration being `ops_per_iteration` operations (the packets of a
// stream, say). Construct it just before the timing loop.
class AllocsPerOp {
 public:
  AllocsPerOp() : start_(AllocCount()) {}
  void Report(benchmark::State& state, uint64_t ops_per_iteration = 1) const {
    const double ops = static_cast<double>(state.iterations()) * static_cast<double>(ops_per_iteration);
    state.counters["allocs/op"] = ops > 0 ? static_cast<double>(AllocCount() - start_) / ops : 0.0;
  }

 private:
  uint64_t start_;
};

}  // namespace parley::testing
