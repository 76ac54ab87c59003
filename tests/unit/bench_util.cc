// The allocation counter behind AllocCount(): the global operator new and delete, replaced for the whole
// benchmark binary (C++ [replacement.functions]). The array, nothrow and sized forms of the standard
// library forward to these two, so every allocation is counted once; aligned new is not replaced and not
// counted (nothing measured here uses over-aligned types).
#include "tests/unit/bench_util.h"

#include <cstdlib>
#include <new>

namespace parley::testing {
namespace {
thread_local uint64_t alloc_count = 0;
}  // namespace

uint64_t AllocCount() {
  return alloc_count;
}

}  // namespace parley::testing

void* operator new(std::size_t n) {
  ++parley::testing::alloc_count;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
