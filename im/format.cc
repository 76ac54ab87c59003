#include "im/format.h"

#include <google/protobuf/descriptor.h>
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

// Protobuf's JSON errors quote the offending input, which may be invalid UTF-8. The message goes back to the
// client in Error.message, a proto3 string: invalid UTF-8 there makes the whole answer unparsable for a
// protobuf client (and logs a protobuf ERROR per frame). Bytes that are not valid UTF-8 become '?'.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = byte(0);
    const size_t n = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;  // a continuation byte, C0, C1 or F5..FF cannot start one
    bool ok = n != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (byte(k) & 0xC0) == 0x80;
    // No overlong forms, no surrogates (U+D800..U+DFFF), nothing past U+10FFFF.
    if (ok && n == 3) ok = !(c == 0xE0 && byte(1) < 0xA0) && !(c == 0xED && byte(1) >= 0xA0);
    if (ok && n == 4) ok = !(c == 0xF0 && byte(1) < 0x90) && !(c == 0xF4 && byte(1) >= 0x90);
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

// Removes the keys of `doc` that name no field of `d` (by JSON or proto name), in nested messages too. Map
// fields are left alone (their keys are data, not field names; im.proto has none).
void DropUnknownFields(nlohmann::json& doc, const google::protobuf::Descriptor* d) {
  if (!doc.is_object()) return;
  for (auto it = doc.begin(); it != doc.end();) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(it.key());
    for (int i = 0; f == nullptr && i < d->field_count(); ++i)
      if (d->field(i)->json_name() == it.key()) f = d->field(i);
    if (f == nullptr) {
      it = doc.erase(it);
      continue;
    }
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_map()) {
      if (it->is_array()) {
        for (nlohmann::json& e : *it) DropUnknownFields(e, f->message_type());
      } else {
        DropUnknownFields(*it, f->message_type());
      }
    }
    ++it;
  }
}

// Unknown fields are ignored (a newer client talking to an older server), but an unknown enum name is an
// error. protobuf's ignore_unknown_fields cannot give both: it also reads "MSG_FOO" as the enum's zero value.
// So a request that names unknown fields has them removed, and the rest is parsed strictly.
Status FromJson(std::string_view json, google::protobuf::Message* out) {
  pbutil::JsonParseOptions strict;
  auto st = pbutil::JsonStringToMessage(json, out, strict);
  if (!st.ok() && st.message().find("Cannot find field") != std::string_view::npos) {
    // Depth-limited like MsgPack: dump() recurses. Anything that fails here keeps the strict error.
    nlohmann::json doc;
    DepthLimitedSax sax(doc);
    try {
      if (nlohmann::json::sax_parse(json, &sax, nlohmann::json::input_format_t::json, /*strict=*/true) &&
          !sax.is_errored()) {
        DropUnknownFields(doc, out->GetDescriptor());
        out->Clear();
        st = pbutil::JsonStringToMessage(doc.dump(), out, strict);
      }
    } catch (const std::exception&) {
    }
  }
  if (!st.ok()) return Status::Error("invalid JSON request: " + ValidUtf8(std::string(st.message())));
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
