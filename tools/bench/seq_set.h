// A set of message sequence numbers as a bitmap: one bit per sequence number up to the highest seen.
// A publisher numbers its messages 0, 1, 2, ... so the bitmap is dense; a run of N messages costs N/8
// bytes per (publisher, subscriber) pair. Single-threaded.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace parley::bench {

class SeqSet {
 public:
  // Adds `seq`; returns false if it was already present.
  bool Insert(uint64_t seq) {
    size_t w = static_cast<size_t>(seq >> 6);
    if (w >= words_.size()) words_.resize(std::max(w + 1, words_.size() * 2), 0);
    uint64_t bit = uint64_t{1} << (seq & 63);
    if (words_[w] & bit) return false;
    words_[w] |= bit;
    return true;
  }
  bool Contains(uint64_t seq) const {
    size_t w = static_cast<size_t>(seq >> 6);
    return w < words_.size() && (words_[w] >> (seq & 63)) & 1;
  }
  size_t words() const { return words_.size(); }
  uint64_t word(size_t i) const { return i < words_.size() ? words_[i] : 0; }
  uint64_t& mutable_word(size_t i) {
    if (i >= words_.size()) words_.resize(i + 1, 0);
    return words_[i];
  }
  uint64_t Count() const {
    uint64_t n = 0;
    for (uint64_t w : words_) n += static_cast<uint64_t>(std::popcount(w));
    return n;
  }

 private:
  std::vector<uint64_t> words_;
};

}  // namespace parley::bench
