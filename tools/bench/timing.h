// Time helpers shared by the scenario coordinators (which poll their loops' progress from the main thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace parley::bench {

inline double Secs(uint64_t ns) { return static_cast<double>(ns) / 1e9; }
inline uint64_t Ns(double s) { return static_cast<uint64_t>(s * 1e9); }
// The coordinator's polling interval.
inline void Nap() { std::this_thread::sleep_for(std::chrono::milliseconds(1)); }

}  // namespace parley::bench
