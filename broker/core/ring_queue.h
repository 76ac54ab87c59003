// A FIFO on one growable ring buffer. Unlike std::deque it allocates nothing while empty (std::deque
// allocates ~600 bytes up front), which matters with 20,000 idle sessions per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>

namespace parley::broker {

template <typename T>
class RingQueue {
 public:
  RingQueue() = default;
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;
  RingQueue(RingQueue&& o) noexcept { swap(o); }
  RingQueue& operator=(RingQueue&& o) noexcept {
    RingQueue tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~RingQueue() { clear(); }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  void push_back(T v) {
    if (size_ == cap_) Grow();
    new (&buf_[(head_ + size_) & (cap_ - 1)]) T(std::move(v));
    ++size_;
  }
  T& front() { return buf_[head_]; }
  T& back() { return (*this)[size_ - 1]; }
  T& operator[](size_t i) { return buf_[(head_ + i) & (cap_ - 1)]; }
  void pop_front() {
    buf_[head_].~T();
    head_ = (head_ + 1) & (cap_ - 1);
    if (--size_ == 0) head_ = 0;
  }
  // Removes element i (O(n)); order of the rest is kept.
  void erase_at(size_t i) {
    for (size_t k = i; k + 1 < size_; ++k) (*this)[k] = std::move((*this)[k + 1]);
    (*this)[size_ - 1].~T();
    if (--size_ == 0) head_ = 0;
  }
  void clear() {
    while (size_) pop_front();
    ::operator delete(buf_);
    buf_ = nullptr;
    cap_ = head_ = 0;
  }
  void swap(RingQueue& o) noexcept {
    std::swap(buf_, o.buf_);
    std::swap(cap_, o.cap_);
    std::swap(head_, o.head_);
    std::swap(size_, o.size_);
  }

 private:
  void Grow() {
    // 32-bit counters keep an empty queue at 24 bytes (one per idle session). 2^31 entries (tens of GB) is far
    // beyond any sensible queue limit; past it the queue throws, as a full std::vector would.
    if (cap_ > UINT32_MAX / 2) throw std::length_error("RingQueue: more than 2^31 entries");
    uint32_t ncap = cap_ ? cap_ * 2 : 4;
    T* nbuf = static_cast<T*>(::operator new(ncap * sizeof(T)));
    for (uint32_t i = 0; i < size_; ++i) {
      T& src = (*this)[i];
      new (&nbuf[i]) T(std::move(src));
      src.~T();
    }
    ::operator delete(buf_);
    buf_ = nbuf;
    cap_ = ncap;
    head_ = 0;
  }
  T* buf_ = nullptr;
  uint32_t cap_ = 0;  // power of two
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};

}  // namespace parley::broker
