// Three kinds of invariant, kept apart on purpose (STYLE.md rule 9):
//   PARLEY_DCHECK(c)  debug-only invariant; compiled out of release builds.
//   PARLEY_CHECK(c)   fatal invariant: the process cannot continue safely; aborts in every build.
//   PARLEY_BUG(msg)   "should not happen" that the process survives: logged and counted, never aborts.
// None of these may test anything a client can send; client input gets a reason code instead.
#pragma once

#include <atomic>
#include <cstdint>

namespace parley {

// Count of PARLEY_BUG hits since start (exported as a metric).
std::atomic<uint64_t>& BugCounter();
[[noreturn]] void CheckFailed(const char* expr, const char* file, int line);
void ReportBug(const char* msg, const char* file, int line);

}  // namespace parley

#define PARLEY_CHECK(c) \
  do {                  \
    if (!(c)) [[unlikely]] ::parley::CheckFailed(#c, __FILE__, __LINE__); \
  } while (0)

#ifdef NDEBUG
#define PARLEY_DCHECK(c) \
  do {                   \
  } while (0)
#else
#define PARLEY_DCHECK(c) PARLEY_CHECK(c)
#endif

#define PARLEY_BUG(msg) ::parley::ReportBug((msg), __FILE__, __LINE__)
