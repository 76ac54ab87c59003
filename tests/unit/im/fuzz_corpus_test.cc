// The seed corpus of the IM request fuzzer (tests/fuzz/im_request_fuzz.cc, tests/fuzz/corpus/im_request):
// written by the skipped test case below, so it can be regenerated from the tree after im.proto changes:
//   ./im_unit_tests --test-case='write IM request fuzz seed corpus' --no-skip
// A seed is the fuzzer's input: byte 0 picks the mode (0 protobuf, 1 JSON, 2 MsgPack: the rest is a payload;
// 3: topic, Content Type and client id, each ended by a NUL, then the payload). Seeds named "bad_*" must fail
// to decode and "refused_*" must be refused by their topic; every other seed must decode to a request.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "im.pb.h"
#include "im/format.h"
#include "im/topics.h"

namespace parley::im {
namespace {

std::filesystem::path CorpusDir() {
  return std::filesystem::path(PARLEY_SOURCE_DIR) / "tests" / "fuzz" / "corpus" /
         "im_request";
}

constexpr char kConv[] = "d_824c4738cd7ac7acfaaafac1dc9bb2c1";
constexpr char kGroup[] = "g_0123456789abcdef0123456789abcdef";

// One request of every operation (and one naming none), with every field set somewhere.
std::vector<std::pair<std::string, v1::Request>> Requests() {
  std::vector<std::pair<std::string, v1::Request>> out;
  auto add = [&out](std::string name) -> v1::Request& {
    out.emplace_back(std::move(name), v1::Request());
    out.back().second.set_req_id("r-" + out.back().first);
    return out.back().second;
  };
  {
    v1::SendReq* s = add("send").mutable_send();
    s->set_conv_id(kConv);
    s->set_client_msg_id("7f1c2d9e-0b7a-4c51-9d0e-2f6a1b3c4d5e");
    s->set_type(v1::MSG_TEXT);
    s->set_text("h\xc3\xa9llo \xf0\x9f\x91\x8b @bob");
    s->add_mentions("bob");
    s->set_reply_to(1);
  }
  {
    v1::SendReq* s = add("send_file").mutable_send();
    s->set_conv_id(kGroup);
    s->set_client_msg_id("m-file");
    s->set_type(v1::MSG_FILE);
    s->set_text("caption");
    v1::Attachment* a = s->add_attachments();
    a->set_file_id("f-1");
    a->set_name("photo.jpg");
    a->set_size(uint64_t{1} << 33);
    a->set_content_type("image/jpeg");
    a->set_sha256(std::string(64, 'a'));
    a->set_url("https://files.example/f-1");
    s->add_attachments()->set_file_id("f-2");
  }
  {
    v1::SendReq* s = add("send_custom").mutable_send();
    s->set_conv_id(kGroup);
    s->set_client_msg_id("m-custom");
    s->set_type(v1::MSG_CUSTOM);
    s->set_body(std::string("\x00\x01\xff\xfe", 4));
    s->set_content_type("application/x-card");
  }
  {
    v1::EditReq* e = add("edit").mutable_edit();
    e->set_conv_id(kConv);
    e->set_seq(2);
    e->set_client_msg_id("m-edit");
    e->set_text("edited");
    e->set_body("b");
    e->set_content_type("text/plain");
  }
  {
    v1::RecallReq* r = add("recall").mutable_recall();
    r->set_conv_id(kConv);
    r->set_seq(2);
    r->set_client_msg_id("m-recall");
  }
  {
    v1::DeleteForMeReq* d = add("delete_for_me").mutable_delete_for_me();
    d->set_conv_id(kConv);
    for (uint64_t s : {1, 2, 300}) d->add_seqs(s);
  }
  {
    v1::MarkReadReq* m = add("mark_read").mutable_mark_read();
    m->set_conv_id(kConv);
    m->set_seq(5);
  }
  {
    v1::MarkDeliveredReq* m = add("mark_delivered").mutable_mark_delivered();
    m->set_conv_id(kConv);
    m->set_seq(6);
  }
  {
    v1::SyncReq* s = add("sync").mutable_sync();
    s->set_cursor(uint64_t{1} << 52);
    s->set_messages_per_conv(20);
    s->set_max_convs(50);
  }
  {
    v1::HistoryReq* h = add("history").mutable_history();
    h->set_conv_id(kGroup);
    h->set_before_seq(100);
    h->set_limit(50);
    h->set_with_versions(true);
  }
  {
    v1::RangeReq* r = add("range").mutable_range();
    r->set_conv_id(kGroup);
    r->set_from_seq(1);
    r->set_to_seq(200);
    r->set_with_versions(true);
  }
  add("get_conversation").mutable_get_conversation()->set_conv_id(kConv);
  add("list_members").mutable_list_members()->set_conv_id(kGroup);
  add("open_direct").mutable_open_direct()->set_peer("alice");
  {
    v1::CreateGroupReq* c = add("create_group").mutable_create_group();
    c->set_name("team \xe2\x9c\x93");
    c->add_members("alice");
    c->add_members("bob");
    c->set_client_msg_id("m-group");
  }
  {
    v1::RenameGroupReq* r = add("rename_group").mutable_rename_group();
    r->set_conv_id(kGroup);
    r->set_name("renamed");
  }
  {
    v1::AddMembersReq* a = add("add_members").mutable_add_members();
    a->set_conv_id(kGroup);
    a->add_users("carol");
    a->add_users("dave");
  }
  {
    v1::RemoveMembersReq* r = add("remove_members").mutable_remove_members();
    r->set_conv_id(kGroup);
    r->add_users("dave");
  }
  add("leave").mutable_leave()->set_conv_id(kGroup);
  add("dissolve").mutable_dissolve()->set_conv_id(kGroup);
  {
    v1::SetRoleReq* s = add("set_role").mutable_set_role();
    s->set_conv_id(kGroup);
    s->add_users("carol");
    s->set_role(v1::ROLE_ADMIN);
  }
  add("typing").mutable_typing()->set_conv_id(kConv);
  {
    v1::PresenceReq* p = add("presence").mutable_presence();
    p->add_users("alice");
    p->add_users("bob");
  }
  add("no_operation");

  // Past the documented limits (docs/protocol.md "Limits and defaults"): still requests, refused later.
  {
    v1::SendReq* s = add("oversized_send").mutable_send();
    s->set_conv_id(kConv);
    s->set_client_msg_id(std::string(65, 'm'));
    s->set_text(std::string(4096, 'x'));
    for (int i = 0; i < 60; ++i) s->add_mentions("user" + std::to_string(i));
    s->set_reply_to(UINT64_MAX);
  }
  {
    v1::DeleteForMeReq* d = add("oversized_delete_for_me").mutable_delete_for_me();
    d->set_conv_id(kConv);
    for (uint64_t s = 1; s <= 101; ++s) d->add_seqs(s);
  }
  {
    v1::AddMembersReq* a = add("oversized_add_members").mutable_add_members();
    a->set_conv_id(kGroup);
    for (int i = 0; i < 1001; ++i) a->add_users("u" + std::to_string(i));
  }
  {
    v1::PresenceReq* p = add("oversized_presence").mutable_presence();
    for (int i = 0; i < 101; ++i) p->add_users("u" + std::to_string(i));
  }
  {
    v1::SyncReq* s = add("oversized_sync").mutable_sync();
    s->set_cursor(UINT64_MAX);
    s->set_messages_per_conv(UINT32_MAX);
    s->set_max_convs(201);
  }
  {
    v1::HistoryReq* h = add("oversized_history").mutable_history();
    h->set_conv_id(std::string(300, 'c'));
    h->set_before_seq(UINT64_MAX);
    h->set_limit(201);
  }
  return out;
}

using Bytes = std::string;

Bytes Seed(char mode, const Bytes& payload) {
  return std::string(1, mode) + payload;
}
Bytes Envelope(std::string_view topic, std::string_view content_type, std::string_view client_id,
               const Bytes& payload) {
  Bytes b(1, '\x03');
  b.append(topic).push_back('\0');
  b.append(content_type).push_back('\0');
  b.append(client_id).push_back('\0');
  return b + payload;
}
Bytes MsgPack(const nlohmann::json& doc) {
  const std::vector<uint8_t> v = nlohmann::json::to_msgpack(doc);
  return Bytes(v.begin(), v.end());
}

std::vector<std::pair<std::string, Bytes>> Seeds() {
  std::vector<std::pair<std::string, Bytes>> out;
  const char* kNames[] = {"pb", "json", "msgpack"};
  for (const auto& [name, req] : Requests())
    for (int f = 0; f < kFormatCount; ++f)
      out.emplace_back(std::string(kNames[f]) + "_" + name,
                       Seed(static_cast<char>(f), Encode(req, static_cast<Format>(f))));

  // JSON forms the server accepts besides its own output (docs/protocol.md "Payload formats").
  const std::vector<std::pair<std::string, std::string>> json = {
      {"snake_case", R"({"req_id":"s1","send":{"conv_id":"c","client_msg_id":"m","text":"t","reply_to":7}})"},
      {"numeric_strings",
       R"({"reqId":"n","sync":{"cursor":"18446744073709551615","messagesPerConv":"20","maxConvs":50}})"},
      {"enum_number", R"({"reqId":"e","send":{"convId":"c","clientMsgId":"m","type":2}})"},
      {"unknown_fields", R"({"reqId":"u","future":{"x":[1,2,{"y":null}]},)"
                         R"("send":{"convId":"c","newField":true,"clientMsgId":"m","text":"t"}})"},
      {"nulls", R"({"reqId":null,"send":{"text":null,"mentions":null,"attachments":null}})"},
      {"base64_body", R"({"send":{"type":"MSG_CUSTOM","body":"AAH/","contentType":"x","clientMsgId":"m"}})"},
      {"escapes", R"({"send":{"text":"\u00e9\ud83d\ude00\n\t\"\\ \u0000","clientMsgId":"m"}})"},
      {"duplicate_keys", R"({"reqId":"a","reqId":"b","typing":{"convId":"c"}})"},
      {"whitespace", " \n\t{ \"reqId\" : \"w\" , \"leave\" : { \"convId\" : \"g\" } } \n"},
      {"role_name", R"({"setRole":{"convId":"g","users":["a"],"role":"ROLE_OWNER"}})"},
  };
  for (const auto& [name, text] : json) {
    out.emplace_back("json_" + name, Seed('\x01', text));
    out.emplace_back("msgpack_" + name, Seed('\x02', MsgPack(nlohmann::json::parse(text))));
  }

  // Payloads that must fail: truncated, malformed, refused by the contract.
  const std::vector<std::pair<std::string, std::string>> bad_json = {
      {"unknown_enum", R"({"send":{"type":"MSG_TXT"}})"},
      {"unknown_enum_and_field", R"({"future":1,"send":{"type":"MSG_TXT"}})"},
      {"negative_uint", R"({"send":{"replyTo":"-1"}})"},
      {"two_operations", R"({"send":{},"edit":{}})"},
      {"not_an_object", "[1,2]"},
      {"number_for_string", R"({"reqId":5})"},
      {"invalid_utf8", "{\"send\":{\"text\":\"\xff\xfe\"}}"},
      {"deep", std::string(200, '[') + std::string(200, ']')},
      {"truncated", R"({"reqId":"t","send":{"convId":"c","cli)"},
  };
  for (const auto& [name, text] : bad_json) out.emplace_back("bad_json_" + name, Seed('\x01', text));
  {
    nlohmann::json doc = {{"send", {{"body", nlohmann::json::binary({0, 1, 2})}}}};
    out.emplace_back("bad_msgpack_bin", Seed('\x02', MsgPack(doc)));
  }
  out.emplace_back("bad_msgpack_deep", Seed('\x02', std::string(40, '\x91') + "\xc0"));
  out.emplace_back("bad_msgpack_int_key", Seed('\x02', "\x81\x01\x02"));
  out.emplace_back("bad_msgpack_invalid_utf8", Seed('\x02', "\x81\xa5reqId\xa2\xff\xfe"));
  out.emplace_back("bad_msgpack_never_valid", Seed('\x02', "\xc1"));
  out.emplace_back("bad_pb_varint_overflow",
                   Seed('\x00', std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12)));
  out.emplace_back("bad_pb_invalid_utf8", Seed('\x00', "\x0a\x02\xff\xfe"));
  out.emplace_back("bad_pb_length_past_end", Seed('\x00', "\x52\x7f\x0a\x01"));
  const std::vector<std::pair<std::string, v1::Request>> reqs = Requests();
  for (const auto& [name, req] : reqs) {
    if (name != "send" && name != "create_group" && name != "send_file") continue;
    for (int f = 0; f < kFormatCount; ++f) {
      const Bytes full = Encode(req, static_cast<Format>(f));
      out.emplace_back(std::string("bad_") + kNames[f] + "_truncated_" + name,
                       Seed(static_cast<char>(f), full.substr(0, full.size() - 3)));
    }
  }

  // The PUBLISH's topic and Content Type choose the format (mode 3).
  const v1::Request send = reqs.front().second;
  const Bytes pb = Encode(send, Format::kProtobuf), js = Encode(send, Format::kJson),
              mp = Encode(send, Format::kMsgPack);
  out.emplace_back("topic_req", Envelope("$im/v1/req", "", "phone", pb));
  out.emplace_back("topic_req_pb", Envelope("$im/v1/req/pb", "", "phone", pb));
  out.emplace_back("topic_req_json", Envelope("$im/v1/req/json", "", "phone", js));
  out.emplace_back("topic_req_msgpack", Envelope("$im/v1/req/msgpack", "", "phone", mp));
  out.emplace_back("topic_content_type_json",
                   Envelope("$im/v1/req", "application/json; charset=utf-8", "phone", js));
  out.emplace_back("topic_content_type_msgpack",
                   Envelope("$im/v1/req/json", "application/x-msgpack", "phone", mp));
  out.emplace_back("topic_content_type_protobuf",
                   Envelope("$im/v1/req/json", "application/vnd.google.protobuf ", "p", pb));
  out.emplace_back("topic_content_type_unknown", Envelope("$im/v1/req/json", "text/plain", "phone", js));
  out.emplace_back("refused_device_topic", Envelope("$im/v1/d/phone/json", "", "phone", js));
  out.emplace_back("refused_not_im", Envelope("a/b", "application/json", "phone", js));
  out.emplace_back("refused_bad_suffix", Envelope("$im/v1/req/xml", "", "phone", js));
  out.emplace_back("refused_no_slash", Envelope("$im/v1/reqjson", "", "phone", js));
  out.emplace_back("refused_wildcard_client", Envelope("$im/v1/d/+/pb", "", "+", pb));
  return out;
}

// The format mode 3 chooses, as the fuzzer (and ImService::OnPublish) does; nullopt if refused or malformed.
std::optional<std::pair<Format, Bytes>> Open(const Bytes& seed) {
  const int mode = static_cast<unsigned char>(seed[0]) % 4;
  if (mode < 3) return std::make_pair(static_cast<Format>(mode), seed.substr(1));
  std::string_view in(seed);
  in.remove_prefix(1);
  std::string_view fields[3];
  for (std::string_view& f : fields) {
    const size_t nul = in.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    f = in.substr(0, nul);
    in.remove_prefix(nul + 1);
  }
  std::optional<Format> format = ParseRequestTopic(fields[0]);
  if (!format) return std::nullopt;
  if (std::optional<Format> ct = FormatFromContentType(fields[1])) format = ct;
  return std::make_pair(*format, Bytes(in));
}

TEST_CASE("write IM request fuzz seed corpus" * doctest::skip()) {
  const std::filesystem::path dir = CorpusDir();
  std::filesystem::create_directories(dir);
  const auto seeds = Seeds();
  for (const auto& [name, bytes] : seeds) {
    std::ofstream f(dir / (name + ".bin"), std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(f.good());
  }
  MESSAGE("wrote " << seeds.size() << " seeds to " << dir.string());
}

TEST_CASE("every seed in the IM request fuzz corpus decodes as its name says") {
  const std::filesystem::path dir = CorpusDir();
  if (!std::filesystem::is_directory(dir)) {
    MESSAGE("corpus not found at " << dir.string() << "; skipped");
    return;
  }
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    CAPTURE(name);
    std::ifstream f(entry.path(), std::ios::binary);
    const Bytes seed{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    REQUIRE(!seed.empty());
    ++files;
    const auto opened = Open(seed);
    if (name.starts_with("refused_")) {
      CHECK_FALSE(opened);
      continue;
    }
    REQUIRE(opened);
    v1::Request req;
    const Status st = Decode(opened->second, opened->first, &req);
    CHECK(st.ok() == !name.starts_with("bad_"));
  }
  CHECK(files >= 100);
}

}  // namespace
}  // namespace parley::im
