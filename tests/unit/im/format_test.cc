// IM payload formats: the same request through protobuf, JSON and MsgPack; errors for bad input.
#include <doctest/doctest.h>

#include "im.pb.h"
#include "im/format.h"
#include "im/topics.h"

namespace parley::im {
namespace {

v1::Request SampleSend() {
  v1::Request r;
  r.set_req_id("r1");
  v1::SendReq* s = r.mutable_send();
  s->set_conv_id("d_abc");
  s->set_client_msg_id("m-1");
  s->set_text("héllo");
  s->set_body(std::string("\x00\xff", 2));
  s->add_mentions("bob");
  s->set_reply_to(uint64_t{1} << 40);
  return r;
}

TEST_CASE("every format round-trips a request") {
  const v1::Request in = SampleSend();
  for (Format f : {Format::kProtobuf, Format::kJson, Format::kMsgPack}) {
    CAPTURE(static_cast<int>(f));
    const std::string bytes = Encode(in, f);
    v1::Request out;
    REQUIRE(Decode(bytes, f, &out).ok());
    CHECK(out.SerializeAsString() == in.SerializeAsString());
  }
}

TEST_CASE("JSON is protobuf's JSON mapping and ignores unknown fields") {
  v1::Request out;
  REQUIRE(Decode(R"({"reqId":"x","send":{"convId":"c","clientMsgId":"m","text":"t","replyTo":"7"},"future":1})",
                 Format::kJson, &out)
              .ok());
  CHECK(out.req_id() == "x");
  CHECK(out.send().reply_to() == 7);
  CHECK(Encode(out, Format::kJson).find("\"clientMsgId\":\"m\"") != std::string::npos);
}

TEST_CASE("bad payloads are errors, never crashes") {
  v1::Request out;
  CHECK_FALSE(Decode("{not json", Format::kJson, &out).ok());
  CHECK_FALSE(Decode(std::string("\xc1", 1), Format::kMsgPack, &out).ok());  // 0xc1 is never valid MsgPack
  CHECK_FALSE(Decode(std::string("\x0a\xff\xff\xff\xff\x0f", 6), Format::kProtobuf, &out).ok());
  CHECK_FALSE(Decode(R"({"send":{"replyTo":"-1"}})", Format::kJson, &out).ok());
  // An unknown enum name is a mistake, not a newer field: refused rather than read as the zero value.
  CHECK_FALSE(Decode(R"({"send":{"type":"MSG_FOO"}})", Format::kJson, &out).ok());
  CHECK(Decode(R"({"send":{"type":"MSG_CUSTOM","newField":{"x":1}}})", Format::kJson, &out).ok());
  CHECK(out.send().type() == v1::MSG_CUSTOM);
}

TEST_CASE("deeply nested input is refused, not a stack overflow") {
  v1::Request out;
  CHECK_FALSE(Decode(std::string(1 << 20, '\x91'), Format::kMsgPack, &out).ok());  // [[[[...]]]]
  CHECK_FALSE(Decode(std::string(1 << 20, '\x81'), Format::kMsgPack, &out).ok());  // {{{{...}}}}
  CHECK_FALSE(Decode(std::string(1 << 20, '['), Format::kJson, &out).ok());
  CHECK_FALSE(Decode(std::string(1 << 20, '\x0a'), Format::kProtobuf, &out).ok());
}

TEST_CASE("topics") {
  CHECK(ParseRequestTopic("$im/v1/req") == Format::kProtobuf);
  CHECK(ParseRequestTopic("$im/v1/req/json") == Format::kJson);
  CHECK(ParseRequestTopic("$im/v1/req/msgpack") == Format::kMsgPack);
  CHECK_FALSE(ParseRequestTopic("$im/v1/req/xml"));
  CHECK_FALSE(ParseRequestTopic("$im/v1/reqjson"));
  CHECK(ParseDeviceTopic("$im/v1/d/phone/json", "phone") == Format::kJson);
  CHECK_FALSE(ParseDeviceTopic("$im/v1/d/phone2/json", "phone"));
  CHECK_FALSE(ParseDeviceTopic("$im/v1/d/+/json", "+"));
  CHECK(DeviceTopic("phone", Format::kMsgPack) == "$im/v1/d/phone/msgpack");
  CHECK(FormatFromContentType("application/json; charset=utf-8") == Format::kJson);
  CHECK_FALSE(FormatFromContentType("text/plain"));
}

}  // namespace
}  // namespace parley::im
