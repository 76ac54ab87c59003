// Prints a Report: a human-readable block, or one JSON object (--json).
#pragma once

#include <cstdio>

#include "tools/bench/scenario.h"

namespace parley::bench {

void PrintText(const Report& r, std::FILE* out);
void PrintJson(const Report& r, std::FILE* out);

}  // namespace parley::bench
