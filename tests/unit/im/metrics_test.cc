// The IM metrics through the service's hooks: requests by operation, errors by code, acks and duplicates, and
// the send and sync latency histograms.
#include <doctest/doctest.h>

#include "rig.h"

namespace parley::im {
namespace {

using testing::Rig;

double Value(const ImService& s, std::string_view name, const metrics::Labels& match = {}) {
  std::vector<metrics::Family> out;
  s.CollectMetrics(out);
  return metrics::Sum(out, name, match).value_or(-1);
}

TEST_CASE("im metrics: requests by op, acks, duplicates, errors by code, send and sync latency") {
  auto mem = Rig::NewStore();
  Rig rig(mem.get());
  rig.Connect("alice", "a1");
  const std::string conv = rig.OpenDirect("alice", "a1", "bob").conv_id();
  rig.Send("alice", "a1", conv, "hello", "m1");
  CHECK(rig.Send("alice", "a1", conv, "hello", "m1").duplicate());
  rig.Sync("alice", "a1");

  v1::Request bad;
  bad.mutable_send()->set_conv_id("no-such-conversation");
  bad.mutable_send()->set_text("x");
  bad.mutable_send()->set_client_msg_id("m2");
  const v1::Response r = rig.Call("alice", "a1", bad);
  REQUIRE(r.has_error());
  const std::string code = v1::ErrorCode_Name(r.error().code());

  // Undecodable: counted as op="invalid", answered ERR_BAD_REQUEST.
  auto msg = std::make_shared<broker::Message>();
  msg->topic = std::string(kRequestTopic);
  msg->payload = std::string("\x0a\x10short", 7);  // field 1 says 16 bytes, 5 follow: truncated
  rig.service().OnPublish(broker::ClientIdentity{"a1", std::string_view("alice")}, msg, nullptr);
  rig.broker().WaitResponse("a1", "");

  const ImService& s = rig.service();
  CHECK(Value(s, "parley_im_requests_total", {{"op", "open_direct"}}) == 1);
  CHECK(Value(s, "parley_im_requests_total", {{"op", "send"}}) == 3);
  CHECK(Value(s, "parley_im_requests_total", {{"op", "sync"}}) == 1);
  CHECK(Value(s, "parley_im_requests_total", {{"op", "invalid"}}) == 1);
  CHECK(Value(s, "parley_im_requests_total", {{"op", "edit"}}) == 0);  // every op listed, zeros too
  CHECK(Value(s, "parley_im_acks_total") == 2);
  CHECK(Value(s, "parley_im_duplicates_total") == 1);
  CHECK(Value(s, "parley_im_errors_total", {{"code", code}}) == 1);
  CHECK(Value(s, "parley_im_errors_total", {{"code", "ERR_BAD_REQUEST"}}) == 1);
  CHECK(Value(s, "parley_im_errors_total") == 2);
  CHECK(Value(s, "parley_im_send_seconds") == 2);  // the two acked sends; not the refused one
  CHECK(Value(s, "parley_im_sync_seconds") == 1);
  std::vector<metrics::Family> out;
  s.CollectMetrics(out);
  const auto send = metrics::MergedHistogram(out, "parley_im_send_seconds");
  REQUIRE(send.has_value());
  CHECK(send->sum > 0);     // the first waited for its write
  CHECK(send->sum < 10.0);
}

}  // namespace
}  // namespace parley::im
