// RingQueue: FIFO order across growth and wraparound, erase_at, clear, moves, and element lifetimes
// (every constructed element destroyed exactly once; ASan catches double frees and leaks).
#include "broker/core/ring_queue.h"

#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <random>
#include <string>

namespace parley::broker {
namespace {

// Counts live instances; a shared_ptr<Tracker> in the queue lets us see when the queue lets go.
struct Tracker {
  static inline int live = 0;
  int value;
  explicit Tracker(int v) : value(v) { ++live; }
  ~Tracker() { --live; }
};

std::shared_ptr<Tracker> T(int v) { return std::make_shared<Tracker>(v); }

std::string S(int i) {
  // Long enough to defeat the small-string optimisation, so a bad move or double destroy shows in ASan.
  return "message-number-" + std::to_string(i) + "-with-a-payload-longer-than-sso";
}

TEST_CASE("ring queue: empty queue allocates nothing and behaves") {
  RingQueue<std::string> q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  q.clear();  // clear on empty is fine
  CHECK(q.empty());
}

TEST_CASE("ring queue: FIFO order through growth") {
  RingQueue<std::string> q;
  for (int i = 0; i < 100; ++i) q.push_back(S(i));
  CHECK(q.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(q[i] == S(i));
  for (int i = 0; i < 100; ++i) {
    REQUIRE(q.front() == S(i));
    q.pop_front();
  }
  CHECK(q.empty());
}

TEST_CASE("ring queue: wraparound, then growth while wrapped keeps order") {
  RingQueue<std::string> q;
  // Capacity 4 after the first push. Move head to the middle so the live range wraps.
  for (int i = 0; i < 4; ++i) q.push_back(S(i));
  q.pop_front();
  q.pop_front();
  q.push_back(S(4));
  q.push_back(S(5));  // now wrapped: slots hold 4 5 2 3, head at 2
  REQUIRE(q.size() == 4);
  for (int i = 0; i < 4; ++i) CHECK(q[i] == S(i + 2));
  q.push_back(S(6));  // full and wrapped: grows, must unwrap in order
  REQUIRE(q.size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(q[i] == S(i + 2));
  int next = 2;
  while (!q.empty()) {
    CHECK(q.front() == S(next++));
    q.pop_front();
  }
  CHECK(next == 7);
}

TEST_CASE("ring queue: erase_at keeps the order of the rest, also when wrapped") {
  RingQueue<std::string> q;
  for (int i = 0; i < 8; ++i) q.push_back(S(i));
  for (int i = 0; i < 5; ++i) q.pop_front();
  for (int i = 8; i < 12; ++i) q.push_back(S(i));  // 5..11 in a wrapped buffer of 8
  REQUIRE(q.size() == 7);
  q.erase_at(2);  // removes 7
  q.erase_at(0);  // removes 5
  q.erase_at(q.size() - 1);  // removes 11
  std::vector<std::string> want = {S(6), S(8), S(9), S(10)};
  REQUIRE(q.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(q[i] == want[i]);
  // Erase down to empty; the queue is usable afterwards.
  while (!q.empty()) q.erase_at(0);
  q.push_back(S(42));
  CHECK(q.size() == 1);
  CHECK(q.front() == S(42));
}

TEST_CASE("ring queue: every element destroyed exactly once") {
  Tracker::live = 0;
  {
    RingQueue<std::shared_ptr<Tracker>> q;
    for (int i = 0; i < 10; ++i) q.push_back(T(i));
    CHECK(Tracker::live == 10);
    q.pop_front();
    CHECK(Tracker::live == 9);
    q.erase_at(3);  // value 4
    CHECK(Tracker::live == 8);
    CHECK(q[3]->value == 5);
    // Elements that moved through growth are still owned once.
    for (int i = 10; i < 40; ++i) q.push_back(T(i));
    CHECK(Tracker::live == 38);
    q.clear();
    CHECK(Tracker::live == 0);
    CHECK(q.empty());
    q.push_back(T(99));  // reusable after clear
    CHECK(Tracker::live == 1);
  }
  CHECK(Tracker::live == 0);  // the destructor releases what is left
}

TEST_CASE("ring queue: an element kept outside survives the queue") {
  Tracker::live = 0;
  auto keep = T(7);
  {
    RingQueue<std::shared_ptr<Tracker>> q;
    q.push_back(keep);
    CHECK(keep.use_count() == 2);
    std::shared_ptr<Tracker> moved = std::move(q.front());
    q.pop_front();
    CHECK(keep.use_count() == 2);  // moved out, not copied; pop_front destroyed an empty pointer
  }
  CHECK(keep.use_count() == 1);
  CHECK(Tracker::live == 1);
}

TEST_CASE("ring queue: move construction and assignment transfer ownership") {
  Tracker::live = 0;
  {
    RingQueue<std::shared_ptr<Tracker>> a;
    for (int i = 0; i < 5; ++i) a.push_back(T(i));
    RingQueue<std::shared_ptr<Tracker>> b(std::move(a));
    CHECK(a.empty());
    REQUIRE(b.size() == 5);
    CHECK(b.front()->value == 0);
    RingQueue<std::shared_ptr<Tracker>> c;
    c.push_back(T(100));
    c = std::move(b);  // c's old element is destroyed
    CHECK(Tracker::live == 5);
    REQUIRE(c.size() == 5);
    CHECK(c[4]->value == 4);
    a.push_back(T(200));  // a moved-from queue is usable
    CHECK(a.size() == 1);
  }
  CHECK(Tracker::live == 0);
}

TEST_CASE("ring queue: random operations match std::deque") {
  std::mt19937 rng(12345);
  Tracker::live = 0;
  {
    RingQueue<std::string> q;
    std::deque<std::string> ref;
    int next = 0;
    for (int step = 0; step < 20000; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 5) {
        q.push_back(S(next));
        ref.push_back(S(next));
        ++next;
      } else if (op < 8) {
        if (!ref.empty()) {
          REQUIRE(q.front() == ref.front());
          q.pop_front();
          ref.pop_front();
        }
      } else if (op < 9) {
        if (!ref.empty()) {
          const size_t i = rng() % ref.size();
          q.erase_at(i);
          ref.erase(ref.begin() + static_cast<std::ptrdiff_t>(i));
        }
      } else if (rng() % 50 == 0) {
        q.clear();
        ref.clear();
      }
      REQUIRE(q.size() == ref.size());
      if (!ref.empty()) {
        const size_t i = rng() % ref.size();
        REQUIRE(q[i] == ref[i]);
      }
    }
    for (size_t i = 0; i < ref.size(); ++i) REQUIRE(q[i] == ref[i]);
  }
}

}  // namespace
}  // namespace parley::broker
