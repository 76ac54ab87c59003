// The IM layer's numbers for /metrics (docs/metrics.md): requests by operation, error answers by code, acks and
// duplicate acks, and two latency histograms — a send from its arrival to its ack, a sync from its arrival to its
// answer. Updated on whatever thread sees the event (loop threads count requests, the strand and the reader
// answer them), so everything here is a relaxed atomic or a metrics::Histogram.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "im.pb.h"

namespace parley::im {

class ImMetrics {
 public:
  ImMetrics();

  // A request arrived from a device: `op` is its v1::Request::OpCase (OP_NOT_SET: it could not be decoded or
  // named no operation). Any thread.
  void Request(int op);
  // An answer is going out: `op` and `received` are those of the request it answers (received unset: an
  // in-process caller, not timed). Counts errors by code, acks and duplicates; times sends and syncs that
  // succeeded. Any thread.
  void Response(int op, SteadyTime received, const v1::Response& response, SteadyTime now);

  // parley_im_requests_total{op}, parley_im_errors_total{code}, parley_im_acks_total,
  // parley_im_duplicates_total, parley_im_send_seconds, parley_im_sync_seconds. Any thread.
  void Collect(std::vector<metrics::Family>& out) const;

 private:
  static constexpr int kOps = 64;    // field numbers of Request's oneof stay below this (im.proto)
  static constexpr int kCodes = 32;  // ErrorCode values stay below this
  std::atomic<uint64_t> requests_[kOps] = {};
  std::atomic<uint64_t> errors_[kCodes] = {};
  std::atomic<uint64_t> acks_{0};
  std::atomic<uint64_t> duplicates_{0};
  metrics::Histogram send_seconds_;
  metrics::Histogram sync_seconds_;
};

}  // namespace parley::im
