#pragma once

namespace parley::broker {
inline constexpr const char* kParleyVersion = "0.1.0";
}  // namespace parley::broker
