// Value encodings of the broker's durable rows: round trips, and no decoder accepts a truncated or
// altered row.
#include <doctest/doctest.h>

#include "broker/persist/layout.h"
#include "broker/persist/records.h"

namespace parley::broker::persist {
namespace {

TimeBase Base() { return TimeBase{SteadyTime{} + std::chrono::hours(5), 1'700'000'000'000}; }

// Every proper prefix of `row` must be rejected.
template <typename F>
void RejectsEveryTruncation(const std::string& row, F&& decode) {
  for (size_t n = 0; n < row.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(decode(std::string_view(row).substr(0, n)));
  }
  CHECK_FALSE(decode(row + "x"));  // and trailing garbage
}

TEST_CASE("records: session") {
  for (const SessionRecord& r : {SessionRecord{60, std::nullopt, std::nullopt},
                                 SessionRecord{0xFFFFFFFFu, std::string("alice\0bob", 9), int64_t{1'700'000'123'456}},
                                 SessionRecord{1, std::string(), int64_t{-5}}}) {
    std::string row;
    EncodeSession(r, &row);
    SessionRecord back;
    REQUIRE(DecodeSession(row, &back));
    CHECK(back.expiry_interval == r.expiry_interval);
    CHECK(back.username == r.username);
    CHECK(back.disconnected_at_ms == r.disconnected_at_ms);
    RejectsEveryTruncation(row, [](std::string_view in) {
      SessionRecord x;
      return DecodeSession(in, &x);
    });
  }
  std::string wrong_version;
  EncodeSession(SessionRecord{}, &wrong_version);
  wrong_version[0] = static_cast<char>(kRecordVersion + 1);
  SessionRecord x;
  CHECK_FALSE(DecodeSession(wrong_version, &x));
}

TEST_CASE("records: subscription options and id") {
  mqtt::SubscribeOptions o;
  o.qos = 2;
  o.no_local = true;
  o.retain_as_published = true;
  o.retain_handling = 2;
  std::string row;
  EncodeSubscription(o, 268'435'455, &row);
  mqtt::SubscribeOptions back;
  uint32_t id = 0;
  REQUIRE(DecodeSubscription(row, &back, &id));
  CHECK(back == o);
  CHECK(id == 268'435'455);
  RejectsEveryTruncation(row, [](std::string_view in) {
    mqtt::SubscribeOptions x;
    uint32_t i;
    return DecodeSubscription(in, &x, &i);
  });
  row[1] = 3;  // QoS 3
  CHECK_FALSE(DecodeSubscription(row, &back, &id));
}

TEST_CASE("records: delivery") {
  std::string row;
  EncodeDelivery(1234567890123ull, 2, true, {1, 300, 268'435'455}, "$share/g/a/+", &row);
  DeliveryRecord r;
  REQUIRE(DecodeDelivery(row, &r));
  CHECK(r.message_id == 1234567890123ull);
  CHECK(r.qos == 2);
  CHECK(r.retain);
  CHECK(r.sub_ids == std::vector<uint32_t>{1, 300, 268'435'455});
  CHECK(r.shared_group == "$share/g/a/+");
  RejectsEveryTruncation(row, [](std::string_view in) {
    DeliveryRecord x;
    return DecodeDelivery(in, &x);
  });
  std::string released;
  EncodeDelivery(0, 2, false, {}, {}, &released);
  REQUIRE(DecodeDelivery(released, &r));
  CHECK(r.message_id == 0);
  CHECK(r.sub_ids.empty());
  std::string qos0;
  EncodeDelivery(5, 0, false, {}, {}, &qos0);
  CHECK_FALSE(DecodeDelivery(qos0, &r));  // QoS 0 is never stored
}

TEST_CASE("records: message with expiry and every pass-through property") {
  const TimeBase tb = Base();
  Message m;
  m.topic = "a/b";
  m.payload = std::string("\0\1\2binary", 9);
  m.qos = 1;
  m.retain = true;
  m.origin_client_id = "pub";
  m.expires_at = tb.steady_now + std::chrono::seconds(90);
  auto props = std::make_unique<mqtt::Properties>();
  props->payload_format_indicator = 1;
  props->content_type = "text/plain";
  props->response_topic = "reply/here";
  props->correlation_data = std::string("\xff\0", 2);
  props->user_properties = {{"k", "v"}, {"k", "v2"}, {"", ""}};
  m.props = std::move(props);
  std::string row;
  EncodeMessage(m, tb, &row);

  // Loaded later: the expiry keeps its wall-clock time.
  const TimeBase later{SteadyTime{} + std::chrono::hours(100), tb.unix_ms_now + 30'000};
  Message back;
  REQUIRE(DecodeMessage(row, later, &back));
  CHECK(back.topic == m.topic);
  CHECK(back.payload == m.payload);
  CHECK(back.qos == 1);
  CHECK(back.retain);
  CHECK(back.origin_client_id == "pub");
  REQUIRE(back.expires_at);
  CHECK(*back.expires_at == later.steady_now + std::chrono::seconds(60));
  REQUIRE(back.props);
  CHECK(*back.props == *m.props);
  RejectsEveryTruncation(row, [&](std::string_view in) {
    Message x;
    return DecodeMessage(in, tb, &x);
  });

  Message plain;
  plain.topic = "t";
  std::string row2;
  EncodeMessage(plain, tb, &row2);
  Message back2;
  REQUIRE(DecodeMessage(row2, tb, &back2));
  CHECK_FALSE(back2.expires_at);
  CHECK_FALSE(back2.props);
}

TEST_CASE("records: will keeps its delay and expiry interval") {
  mqtt::Will w;
  w.topic = "status/x";
  w.payload = "gone";
  w.qos = 2;
  w.retain = true;
  w.props.will_delay_interval = 30;
  w.props.message_expiry_interval = 600;
  w.props.content_type = "text/plain";
  w.props.user_properties = {{"a", "b"}};
  std::string row;
  EncodeWill(w, &row);
  mqtt::Will back;
  REQUIRE(DecodeWill(row, &back));
  CHECK(back == w);
  RejectsEveryTruncation(row, [](std::string_view in) {
    mqtt::Will x;
    return DecodeWill(in, &x);
  });
}

TEST_CASE("layout: a client's keys never cover another client's") {
  const std::string a = ClientPrefix("a");
  const std::string end = storage::PrefixSuccessor(a);
  for (const std::string& other : {std::string("ab"), std::string("a\0", 2), std::string("b"), std::string("")}) {
    CAPTURE(other);
    const std::string k = DeliveryKey(other, 1);
    CHECK_FALSE((k >= a && k < end));
  }
  CHECK((DeliveryKey("a", 1) >= a && DeliveryKey("a", 1) < end));
  CHECK((SubscriptionKey("a", "x/#") >= a && SubscriptionKey("a", "x/#") < end));
  CHECK(DeliveryKey("a", 2) < DeliveryKey("a", 10));  // seq order
  CHECK(FamilyNames().size() == static_cast<size_t>(Fam::kCount));
}

}  // namespace
}  // namespace parley::broker::persist
