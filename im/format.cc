#include "im/format.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>

namespace parley::im {

namespace pbutil = google::protobuf::util;

std::string_view FormatSuffix(Format f) {
  switch (f) {
    case Format::kProtobuf: return "pb";
    case Format::kJson: return "json";
    case Format::kMsgPack: return "msgpack";
  }
  return "pb";
}

std::optional<Format> FormatFromSuffix(std::string_view s) {
  if (s == "pb") return Format::kProtobuf;
  if (s == "json") return Format::kJson;
  if (s == "msgpack") return Format::kMsgPack;
  return std::nullopt;
}

std::string_view FormatContentType(Format f) {
  switch (f) {
    case Format::kProtobuf: return "application/x-protobuf";
    case Format::kJson: return "application/json";
    case Format::kMsgPack: return "application/msgpack";
  }
  return "application/x-protobuf";
}

std::optional<Format> FormatFromContentType(std::string_view ct) {
  // Parameters ("; charset=utf-8") do not change the format.
  if (const size_t semi = ct.find(';'); semi != std::string_view::npos) ct = ct.substr(0, semi);
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  if (ct == "application/x-protobuf" || ct == "application/protobuf" || ct == "application/vnd.google.protobuf")
    return Format::kProtobuf;
  if (ct == "application/json" || ct == "text/json") return Format::kJson;
  if (ct == "application/msgpack" || ct == "application/x-msgpack" || ct == "application/vnd.msgpack")
    return Format::kMsgPack;
  return std::nullopt;
}

namespace {

// nlohmann's MsgPack reader recurses once per nested array or map, so hostile input (a megabyte of 0x91,
// "array of one") would overflow the stack. This SAX handler builds the same document as from_msgpack but
// refuses nesting deeper than any request has, which stops the reader before it recurses further.
class DepthLimitedSax : public nlohmann::detail::json_sax_dom_parser<nlohmann::json> {
 public:
  static constexpr int kMaxDepth = 32;
  explicit DepthLimitedSax(nlohmann::json& doc) : json_sax_dom_parser(doc, /*allow_exceptions=*/false) {}
  bool start_object(std::size_t n) { return ++depth_ <= kMaxDepth && json_sax_dom_parser::start_object(n); }
  bool start_array(std::size_t n) { return ++depth_ <= kMaxDepth && json_sax_dom_parser::start_array(n); }
  bool end_object() {
    --depth_;
    return json_sax_dom_parser::end_object();
  }
  bool end_array() {
    --depth_;
    return json_sax_dom_parser::end_array();
  }
  bool too_deep() const { return depth_ > kMaxDepth; }

 private:
  int depth_ = 0;
};

// Unknown fields are ignored (a newer client talking to an older server), but an unknown enum name is an
// error: protobuf's ignore_unknown_fields would quietly read "MSG_FOO" as the enum's zero value.
Status FromJson(std::string_view json, google::protobuf::Message* out) {
  pbutil::JsonParseOptions strict;
  auto st = pbutil::JsonStringToMessage(json, out, strict);
  if (!st.ok() && st.message().find("Cannot find field") != std::string_view::npos) {
    out->Clear();
    pbutil::JsonParseOptions lenient;
    lenient.ignore_unknown_fields = true;
    st = pbutil::JsonStringToMessage(json, out, lenient);
  }
  if (!st.ok()) return Status::Error("invalid JSON request: " + std::string(st.message()));
  return Status::Ok();
}

std::string ToJson(const google::protobuf::Message& msg) {
  std::string out;
  pbutil::JsonPrintOptions opts;
  opts.add_whitespace = false;
  (void)pbutil::MessageToJsonString(msg, &out, opts);  // fails only for invalid UTF-8 in a string field
  return out;
}

}  // namespace

Status Decode(std::string_view payload, Format format, google::protobuf::Message* out) {
  out->Clear();
  switch (format) {
    case Format::kProtobuf:
      if (!out->ParseFromArray(payload.data(), static_cast<int>(payload.size())))
        return Status::Error("invalid protobuf request");
      return Status::Ok();
    case Format::kJson:
      return FromJson(payload, out);
    case Format::kMsgPack: {
      nlohmann::json doc;
      DepthLimitedSax sax(doc);
      bool ok = false;
      try {
        ok = nlohmann::json::sax_parse(payload.begin(), payload.end(), &sax, nlohmann::json::input_format_t::msgpack,
                                       /*strict=*/true);
      } catch (const std::exception&) {
        ok = false;
      }
      if (sax.too_deep()) return Status::Error("invalid MsgPack request: nested too deeply");
      if (!ok || sax.is_errored()) return Status::Error("invalid MsgPack request");
      std::string json;
      try {
        json = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
      } catch (const std::exception& e) {
        return Status::Error(std::string("invalid MsgPack request: ") + e.what());
      }
      return FromJson(json, out);
    }
  }
  return Status::Error("unknown format");
}

std::string Encode(const google::protobuf::Message& msg, Format format) {
  switch (format) {
    case Format::kProtobuf:
      return msg.SerializeAsString();
    case Format::kJson:
      return ToJson(msg);
    case Format::kMsgPack: {
      const nlohmann::json doc = nlohmann::json::parse(ToJson(msg), nullptr, /*allow_exceptions=*/false);
      const std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(doc);
      return std::string(bytes.begin(), bytes.end());
    }
  }
  return msg.SerializeAsString();
}

}  // namespace parley::im
