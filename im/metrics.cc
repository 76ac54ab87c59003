#include "im/metrics.h"

#include <string>

namespace parley::im {

ImMetrics::ImMetrics() : send_seconds_(metrics::LatencyBounds()), sync_seconds_(metrics::LatencyBounds()) {}

void ImMetrics::Request(int op) {
  requests_[op > 0 && op < kOps ? op : 0].fetch_add(1, std::memory_order_relaxed);
}

void ImMetrics::Response(int op, SteadyTime received, const v1::Response& r, SteadyTime now) {
  const bool failed = r.has_error() && r.error().code() != v1::OK;
  if (failed) {
    const int code = r.error().code();
    errors_[code > 0 && code < kCodes ? code : 0].fetch_add(1, std::memory_order_relaxed);
  } else if (r.has_ack()) {
    acks_.fetch_add(1, std::memory_order_relaxed);
    if (r.ack().duplicate()) duplicates_.fetch_add(1, std::memory_order_relaxed);
  }
  if (failed || received == SteadyTime{}) return;
  const double seconds = std::chrono::duration<double>(now - received).count();
  if (op == v1::Request::kSend && r.has_ack()) {
    send_seconds_.Observe(seconds);
  } else if (op == v1::Request::kSync) {
    sync_seconds_.Observe(seconds);
  }
}

void ImMetrics::Collect(std::vector<metrics::Family>& out) const {
  {
    metrics::Family f{"parley_im_requests_total",
                      "IM requests received from devices, by operation (invalid: undecodable or no operation).",
                      metrics::Type::kCounter, {}, {}};
    const google::protobuf::OneofDescriptor* ops = v1::Request::descriptor()->FindOneofByName("op");
    for (int i = 0; ops && i < ops->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* field = ops->field(i);
      if (field->number() >= kOps) continue;
      f.samples.push_back(metrics::Sample{{{"op", field->name()}},
                                          static_cast<double>(requests_[field->number()].load(std::memory_order_relaxed))});
    }
    f.samples.push_back(metrics::Sample{{{"op", "invalid"}}, static_cast<double>(requests_[0].load(std::memory_order_relaxed))});
    out.push_back(std::move(f));
  }
  {
    metrics::Family f{"parley_im_errors_total", "IM requests answered with an error, by error code.",
                      metrics::Type::kCounter, {}, {}};
    const google::protobuf::EnumDescriptor* codes = v1::ErrorCode_descriptor();
    for (int i = 0; i < codes->value_count(); ++i) {
      const int code = codes->value(i)->number();
      if (code <= 0 || code >= kCodes) continue;
      f.samples.push_back(metrics::Sample{{{"code", codes->value(i)->name()}},
                                          static_cast<double>(errors_[code].load(std::memory_order_relaxed))});
    }
    out.push_back(std::move(f));
  }
  out.push_back(metrics::Family{"parley_im_acks_total",
                                "IM acks answered (sends, edits, recalls, group changes), duplicates included.",
                                metrics::Type::kCounter,
                                {metrics::Sample{{}, static_cast<double>(acks_.load(std::memory_order_relaxed))}},
                                {}});
  out.push_back(metrics::Family{"parley_im_duplicates_total",
                                "IM acks for a client_msg_id already stored (a resend answered, nothing stored twice).",
                                metrics::Type::kCounter,
                                {metrics::Sample{{}, static_cast<double>(duplicates_.load(std::memory_order_relaxed))}},
                                {}});
  out.push_back(metrics::Family{"parley_im_send_seconds",
                                "IM sends: from the request's arrival to its ack (after the entry is durable).",
                                metrics::Type::kHistogram, {}, {send_seconds_.Snapshot()}});
  out.push_back(metrics::Family{"parley_im_sync_seconds", "IM syncs: from the request's arrival to its answer.",
                                metrics::Type::kHistogram, {}, {sync_seconds_.Snapshot()}});
}

}  // namespace parley::im
