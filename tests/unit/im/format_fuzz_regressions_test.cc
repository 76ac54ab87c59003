// Regressions found by the IM request fuzzer (tests/fuzz/im_request_fuzz.cc), each named after its bug.
#include <doctest/doctest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "im.pb.h"
#include "im/format.h"

namespace parley::im {
namespace {

// What Context::RespondError sends for a request that does not decode.
v1::ServerFrame BadRequestAnswer(const std::string& message) {
  v1::ServerFrame frame;
  frame.mutable_response()->mutable_error()->set_code(v1::ERR_BAD_REQUEST);
  frame.mutable_response()->mutable_error()->set_message(message);
  return frame;
}

bool IsUtf8(const std::string& s) {
  v1::Error e;
  e.set_message(s);
  v1::Error back;
  return back.ParseFromString(e.SerializeAsString());  // proto3 strings are checked on parse
}

// Bug: protobuf's JSON parser quotes the offending input in its error, and Decode passed that on as the error
// text. A JSON request with invalid UTF-8 was answered with an Error.message holding invalid UTF-8, which no
// protobuf client can parse (the whole ServerFrame is refused), and protobuf logged an ERROR per answer.
TEST_CASE("a JSON request with invalid UTF-8 gets an ERR_BAD_REQUEST every format can carry") {
  const char* const kInvalid[] = {
      "\xff\xfe",          // never valid
      "\x80",              // a lone continuation byte
      "\xc0\x80",          // overlong NUL
      "\xe2\x82",          // truncated 3-byte form
      "\xed\xa0\x80",      // a UTF-16 surrogate
      "\xf4\x90\x80\x80",  // past U+10FFFF
      "\xc3\xa9\xff",      // a valid character, then an invalid byte
  };
  for (const char* bad : kInvalid) {
    const std::string payload = std::string(R"({"reqId":"r","send":{"text":"é)") + bad + R"(😀"}})";
    CAPTURE(payload);
    v1::Request req;
    const Status st = Decode(payload, Format::kJson, &req);
    REQUIRE_FALSE(st.ok());
    CHECK(IsUtf8(st.message()));
    const v1::ServerFrame frame = BadRequestAnswer(st.message());
    for (Format f : {Format::kProtobuf, Format::kJson, Format::kMsgPack}) {
      CAPTURE(static_cast<int>(f));
      v1::ServerFrame back;
      REQUIRE(Decode(Encode(frame, f), f, &back).ok());
      CHECK(back.response().error().message() == st.message());
    }
  }
}

// Bug: when strict parsing failed on an unknown field, the request was parsed again with protobuf's
// ignore_unknown_fields, which also drops unknown enum names: {"send":{"type":"MSG_CUSTb","zz":1}} was read
// as a send with no type (a text message), against docs/protocol.md ("An unknown enum name is an error").
TEST_CASE("an unknown enum name is refused even next to an unknown field") {
  const std::string bad[] = {
      R"({"send":{"type":"MSG_CUSTb","MOody":"AAH/","contentType":"x","clientMsgId":"m"}})",
      R"({"send":{"type":"MSG_X","zz":1}})",
      R"({"zz":1,"send":{"type":"MSG_X"}})",
      R"({"setRole":{"convId":"g","role":"ROLE_KING","future":true}})",
  };
  for (const std::string& json : bad) {
    CAPTURE(json);
    v1::Request req;
    CHECK_FALSE(Decode(json, Format::kJson, &req).ok());
    const std::vector<uint8_t> mp = nlohmann::json::to_msgpack(nlohmann::json::parse(json));
    CHECK_FALSE(Decode(std::string(mp.begin(), mp.end()), Format::kMsgPack, &req).ok());
  }
}

TEST_CASE("unknown fields are still ignored, at every level, with strict parsing of the rest") {
  v1::Request req;
  REQUIRE(Decode(R"({"future":[1,{"a":null}],"req_id":"r","send":{"type":"MSG_FILE","newField":{"x":1},)"
                 R"("attachments":[{"fileId":"f","zz":1},{"file_id":"g"}],"replyTo":"7"}})",
                 Format::kJson, &req)
              .ok());
  CHECK(req.req_id() == "r");
  CHECK(req.send().type() == v1::MSG_FILE);
  REQUIRE(req.send().attachments_size() == 2);
  CHECK(req.send().attachments(0).file_id() == "f");
  CHECK(req.send().attachments(1).file_id() == "g");
  CHECK(req.send().reply_to() == 7);
  // Still strict about the known fields.
  CHECK_FALSE(Decode(R"({"future":1,"send":{"replyTo":"-1"}})", Format::kJson, &req).ok());
  CHECK_FALSE(Decode(R"({"future":1,"reqId":5})", Format::kJson, &req).ok());
}

TEST_CASE("deep nesting beside an unknown field is refused, not a stack overflow") {
  v1::Request req;
  const std::string deep =
      R"({"zz":1,"send":{"text":)" + std::string(1 << 20, '[') + std::string(1 << 20, ']') + "}}";
  CHECK_FALSE(Decode(deep, Format::kJson, &req).ok());
  const std::string deep_unknown = R"({"zz":)" + std::string(1 << 20, '[') + std::string(1 << 20, ']') + "}";
  CHECK_FALSE(Decode(deep_unknown, Format::kJson, &req).ok());
}

}  // namespace
}  // namespace parley::im
