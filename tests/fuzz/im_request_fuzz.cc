// libFuzzer target for the IM layer's request decoding (im/format.h, im/topics.h): everything
// ImService::OnPublish does with the bytes of a client's PUBLISH under "$im/" before a request is posted to
// the writer or the reader (docs/protocol.md "Topics", "Payload formats", "Envelope").
//
// Input: byte 0 picks the mode, the rest is the mode's data.
//   mode % 4 == 0, 1, 2: a request payload in protobuf, JSON, MsgPack.
//   mode % 4 == 3:       a PUBLISH as the service sees it: topic, MQTT 5 Content Type and the publisher's
//                        client id, each ended by a NUL, then the payload (NULs allowed). The topic and the
//                        Content Type pick the format as OnPublish does, and the topic helpers are checked
//                        against each other (and against the client id) on the way.
// A decoded request must then keep these contracts (a broken one aborts, so libFuzzer reports it):
//   - an error is a Status with a message, and the ERR_BAD_REQUEST answer carrying it (in Error.message, a
//     proto3 string) encodes in every format and decodes back equal;
//   - the request re-encodes in every format and decodes back equal (unknown fields aside): a client in any
//     format can be answered, and what the server stores can be served to every format;
//   - JSON and MsgPack: an unknown enum name is refused, never read as the enum's zero value.
// Not covered: OnPublish's Response Topic rule (written inline there); and what the writer and the reader
// check afterwards (client_msg_id length, sizes, membership, ...), which is interleaved with conversation
// state and storage (im/writer.cc, im/reader.cc) and exercised by tests/unit/im and tests/im instead.
// libprotobuf and its JSON parser are Debian's uninstrumented shared library: libFuzzer sees only the
// generated im.pb.cc, nlohmann_json (header-only) and im/ itself.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "im.pb.h"
#include "im/format.h"
#include "im/topics.h"

namespace {

using namespace parley::im;  // NOLINT(google-build-using-namespace)
namespace pb = google::protobuf;

constexpr Format kFormats[] = {Format::kProtobuf, Format::kJson, Format::kMsgPack};

[[noreturn]] void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "im_request_fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// ---- topics and properties (mode 3)

// Cuts the next NUL-terminated field off `in`; nullopt if there is no NUL left.
std::optional<std::string_view> Field(std::string_view* in) {
  const size_t nul = in->find('\0');
  if (nul == std::string_view::npos) return std::nullopt;
  std::string_view f = in->substr(0, nul);
  in->remove_prefix(nul + 1);
  return f;
}

// The topic helpers agree with each other and with what they build.
void CheckTopics(std::string_view topic, std::string_view content_type, std::string_view client_id) {
  const std::optional<Format> req = ParseRequestTopic(topic);
  if (req && !IsImTopic(topic)) Fail("a request topic outside $im/", topic);
  if (req && topic != kRequestTopic &&
      topic != std::string(kRequestTopic) + "/" + std::string(FormatSuffix(*req)))
    Fail("ParseRequestTopic accepted a topic it would not build", topic);

  // A device topic is exactly DeviceTopic(client_id, f), for a valid client id only.
  std::optional<Format> expect;
  if (IsValidDeviceId(client_id))
    for (Format f : kFormats)
      if (topic == DeviceTopic(client_id, f)) expect = f;
  if (ParseDeviceTopic(topic, client_id) != expect)
    Fail("ParseDeviceTopic disagrees with DeviceTopic", topic);
  if (IsValidDeviceId(client_id)) {
    const std::string prefix = DeviceTopicPrefix(client_id);
    for (Format f : kFormats) {
      const std::string t = DeviceTopic(client_id, f);
      if (!t.starts_with(prefix) || !IsImTopic(t) || ParseRequestTopic(t))
        Fail("a device topic outside its prefix, or a request topic", t);
    }
  }
  if (const std::optional<Format> f = FormatFromContentType(content_type)) {
    // Parameters and trailing spaces do not change the format.
    if (FormatFromContentType(std::string(content_type) + "; charset=utf-8") != f)
      Fail("a Content Type parameter changed the format", content_type);
  }
  for (Format f : kFormats) {
    if (FormatFromSuffix(FormatSuffix(f)) != f || FormatFromContentType(FormatContentType(f)) != f)
      Fail("format names do not round-trip");
  }
}

// OnPublish's choice: the topic's suffix, unless a Content Type names a known format. nullopt: refused
// (0x87). (OnPublish's Response Topic rule is written inline there, so it is not exercised here.)
std::optional<Format> RequestFormat(std::string_view topic, std::string_view content_type) {
  if (!IsImTopic(topic)) return std::nullopt;
  std::optional<Format> format = ParseRequestTopic(topic);
  if (!format) return std::nullopt;
  if (std::optional<Format> f = FormatFromContentType(content_type)) format = f;
  return format;
}

// ---- decoded requests

std::string Describe(const pb::Message& m) {
  return m.ShortDebugString();
}

void CheckRoundTrip(const v1::Request& req, Format from) {
  v1::Request canon = req;
  canon.DiscardUnknownFields();
  for (Format f : kFormats) {
    const std::string bytes = Encode(req, f);
    v1::Request back;
    const parley::Status st = Decode(bytes, f, &back);
    if (!st.ok()) {
      std::fprintf(stderr, "decoded from format %d, re-encoded as %d: %s\n", static_cast<int>(from),
                   static_cast<int>(f), st.message().c_str());
      Fail("a decoded request, re-encoded, does not decode", Describe(req));
    }
    back.DiscardUnknownFields();
    if (!pb::util::MessageDifferencer::Equals(canon, back)) {
      std::fprintf(stderr, "decoded from format %d, re-encoded as %d: %s\n", static_cast<int>(from),
                   static_cast<int>(f), Describe(back).c_str());
      Fail("a decoded request, re-encoded, decodes differently", Describe(req));
    }
  }
}

const pb::FieldDescriptor* FieldFor(const pb::Descriptor* d, const std::string& key) {
  for (int i = 0; i < d->field_count(); ++i)
    if (d->field(i)->json_name() == key) return d->field(i);
  return d->FindFieldByName(key);
}

bool IsInteger(const std::string& s) {
  size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// Every enum written by name in `doc` must have been read as that value (docs/protocol.md: "An unknown enum
// name is an error, not ignored").
void CheckEnumNames(const nlohmann::json& doc, const pb::Message& m) {
  if (!doc.is_object()) return;
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  for (const auto& [key, value] : doc.items()) {
    const pb::FieldDescriptor* f = FieldFor(d, key);
    if (f == nullptr || value.is_null()) continue;
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM && !f->is_repeated() && value.is_string()) {
      const std::string name = value.get<std::string>();
      const pb::EnumValueDescriptor* want = f->enum_type()->FindValueByName(name);
      if (want == nullptr && !IsInteger(name))
        Fail("an unknown enum name was accepted", key + ": " + name + " -> " + Describe(m));
      if (want != nullptr && r->GetEnumValue(m, f) != want->number())
        Fail("an enum name was read as another value", key + ": " + name + " -> " + Describe(m));
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!f->is_repeated()) {
        if (r->HasField(m, f)) CheckEnumNames(value, r->GetMessage(m, f));
      } else if (value.is_array() && value.size() == static_cast<size_t>(r->FieldSize(m, f))) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) CheckEnumNames(value[i], r->GetRepeatedMessage(m, f, i));
      }
    }
  }
}

// The ERR_BAD_REQUEST answer to a request that failed, as Context::RespondError builds it, must reach a
// client in every format: encode, decode back equal.
void CheckErrorAnswer(const std::string& req_id, const std::string& message) {
  v1::ServerFrame frame;
  v1::Response* r = frame.mutable_response();
  r->set_req_id(req_id);
  r->mutable_error()->set_code(v1::ERR_BAD_REQUEST);
  r->mutable_error()->set_message(message);
  for (Format f : kFormats) {
    v1::ServerFrame back;
    const parley::Status st = Decode(Encode(frame, f), f, &back);
    if (!st.ok() || !pb::util::MessageDifferencer::Equals(frame, back)) {
      std::fprintf(stderr, "format %d: %s\n", static_cast<int>(f), st.message().c_str());
      Fail("the ERR_BAD_REQUEST answer does not survive its own encoding", Describe(frame));
    }
  }
}

void DecodeRequest(std::string_view payload, Format format) {
  v1::Request req;
  const parley::Status st = Decode(payload, format, &req);
  if (!st.ok()) {
    if (st.message().empty()) Fail("decode error without a message");
    CheckErrorAnswer("", st.message());
    return;
  }
  // What OnPublish does next: a request naming no operation is refused with its req_id; the rest are posted.
  if (req.op_case() == v1::Request::OP_NOT_SET)
    CheckErrorAnswer(req.req_id(), "the request names no operation");
  CheckRoundTrip(req, format);
  if (format == Format::kJson || format == Format::kMsgPack) {
    // Decode succeeded, so the document nests at most 32 deep (MsgPack) or within protobuf's limit (JSON).
    const nlohmann::json doc = format == Format::kJson
                                   ? nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false)
                                   : nlohmann::json::from_msgpack(payload, /*strict=*/true,
                                                                  /*allow_exceptions=*/false);
    if (!doc.is_discarded()) CheckEnumNames(doc, req);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs every proto3 string with invalid UTF-8 it parses; silence it, the Status tells us.
  pb::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0] % 4;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode < 3) {
    DecodeRequest(in, kFormats[mode]);
    return 0;
  }
  const std::optional<std::string_view> topic = Field(&in);
  const std::optional<std::string_view> content_type = Field(&in);
  const std::optional<std::string_view> client_id = Field(&in);
  if (!topic || !content_type || !client_id) return 0;
  CheckTopics(*topic, *content_type, *client_id);
  if (const std::optional<Format> f = RequestFormat(*topic, *content_type)) DecodeRequest(in, *f);
  return 0;
}
