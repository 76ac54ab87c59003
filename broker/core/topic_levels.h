// Splitting topic names and filters into levels, shared by the subscription tree, the retained store and
// the limit checks.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace parley::broker {

// "a//b" -> {"a", "", "b"}; `out` is cleared first. The views point into `s`.
inline void SplitLevels(std::string_view s, std::vector<std::string_view>* out) {
  out->clear();
  size_t start = 0;
  for (;;) {
    const size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out->push_back(s.substr(start));
      return;
    }
    out->push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// Number of levels: one more than the number of '/'.
inline size_t CountLevels(std::string_view topic) {
  size_t n = 1;
  for (char ch : topic) n += ch == '/';
  return n;
}

}  // namespace parley::broker
