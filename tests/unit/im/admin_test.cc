// Operator access to the IM layer: ImService::Admin (an Origin that answers through a callback, with operator
// rights) and the admin API routes of im/admin.h, driven end to end through a router that captures handlers.
#include <doctest/doctest.h>

#include <future>
#include <map>
#include <thread>
#include <nlohmann/json.hpp>

#include "im/admin.h"
#include "im/ids.h"
#include "rig.h"

namespace parley::im {
namespace {

using broker::AdminRequest;
using broker::AdminResponse;
using nlohmann::json;
using testing::Rig;

// Stores the handlers as the admin HTTP server would, and calls them the way it does: matching a path
// against the patterns ("{name}" segments become params) and splitting the query string.
class CaptureRouter final : public broker::AdminRouter {
 public:
  void Add(std::string_view method, std::string_view pattern, broker::AdminHandler handler) override {
    routes_.push_back({std::string(method), Split(pattern), std::move(handler)});
  }

  AdminResponse Call(std::string method, std::string target, std::string body = "") {
    AdminRequest req;
    req.method = std::move(method);
    req.body = std::move(body);
    req.peer = "127.0.0.1:50000";
    if (size_t q = target.find('?'); q != std::string::npos) {
      std::string query = target.substr(q + 1);
      target.resize(q);
      for (size_t at = 0; at <= query.size();) {
        size_t amp = query.find('&', at);
        if (amp == std::string::npos) amp = query.size();
        std::string kv = query.substr(at, amp - at);
        const size_t eq = kv.find('=');
        if (!kv.empty()) req.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
        at = amp + 1;
      }
    }
    req.path = target;
    const std::vector<std::string> parts = Split(target);
    for (const Route& r : routes_) {
      if (r.method != req.method || r.parts.size() != parts.size()) continue;
      std::map<std::string, std::string, std::less<>> params;
      bool match = true;
      for (size_t i = 0; match && i < parts.size(); ++i) {
        const std::string& p = r.parts[i];
        if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
          params[p.substr(1, p.size() - 2)] = parts[i];
        } else {
          match = p == parts[i];
        }
      }
      if (!match) continue;
      req.params = std::move(params);
      return r.handler(req);
    }
    FAIL("no route for " << req.method << " " << target);
    return {};
  }

  size_t size() const { return routes_.size(); }

 private:
  struct Route {
    std::string method;
    std::vector<std::string> parts;
    broker::AdminHandler handler;
  };
  static std::vector<std::string> Split(std::string_view path) {
    std::vector<std::string> out;
    size_t at = 1;
    while (at <= path.size()) {
      size_t slash = path.find('/', at);
      if (slash == std::string_view::npos) slash = path.size();
      out.emplace_back(path.substr(at, slash - at));
      at = slash + 1;
    }
    return out;
  }
  std::vector<Route> routes_;
};

json Body(const AdminResponse& r) {
  json j = json::parse(r.body, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), r.body);
  return j;
}

// `r` is the error `status` with {"error": {"code": code, "message": ...containing in_message}}.
void expect(const AdminResponse& r, int status, const std::string& code, const std::string& in_message = "") {
  CHECK_MESSAGE(r.status == status, r.body);
  const json j = Body(r);
  CHECK_MESSAGE(j["error"]["code"] == code, r.body);
  if (!in_message.empty()) {
    const std::string m = j["error"]["message"];
    CHECK_MESSAGE(m.find(in_message) != std::string::npos, m);
  }
}

// ImService::Admin, waited for.
v1::Response Admin(ImService& im, v1::Request req, const std::string& user, bool op) {
  auto p = std::make_shared<std::promise<v1::Response>>();
  auto f = p->get_future();
  im.Admin(std::move(req), user, op, [p](v1::Response& r) { p->set_value(r); });
  REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  return f.get();
}

v1::Conversation Summary(Rig& rig, const std::string& user, const std::string& device, const std::string& conv) {
  v1::Request req;
  req.mutable_get_conversation()->set_conv_id(conv);
  v1::Response r = rig.Call(user, device, req);
  REQUIRE_MESSAGE(!r.has_error(), r.error().message());
  return r.conversation();
}

bool IsChange(const v1::Event& e, v1::MemberChange::Kind kind) {
  return e.has_message() && e.message().type() == v1::MSG_MEMBERS && e.message().change().kind() == kind;
}

TEST_CASE("the admin API creates a group as its owner and a direct conversation as the first user") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  CaptureRouter router;
  AddImRoutes(router, rig.service());
  CHECK(router.size() == 7);
  rig.Connect("alice", "a1");
  rig.Connect("bob", "b1");

  AdminResponse r = router.Call("POST", "/api/v1/conversations",
                                R"({"type": "group", "name": "Ops", "owner": "alice", "members": ["bob", "carol"]})");
  REQUIRE_MESSAGE(r.status == 201, r.body);
  json conv = Body(r)["conversation"];
  const std::string id = conv["convId"];
  CHECK(id.starts_with("g_"));
  CHECK(conv["type"] == "CONV_GROUP");
  CHECK(conv["name"] == "Ops");
  CHECK(conv["owner"] == "alice");
  CHECK(conv["memberCount"] == 3);
  CHECK(conv["maxSeq"] == "1");
  CHECK_FALSE(conv.contains("myRole"));  // the operator's view: no per-user fields
  CHECK_FALSE(conv.contains("unread"));
  // A normal creation by alice: she is the owner and the actor; every device of the members hears of it
  // (alice's too: she did not make it from a device).
  auto created = [&](const v1::Event& e) {
    return IsChange(e, v1::MemberChange::CREATED) && e.message().change().actor() == "alice" &&
           e.message().sender() == "alice" && e.message().conv_id() == id;
  };
  CHECK(rig.broker().WaitEvent("a1", created));
  CHECK(rig.broker().WaitEvent("b1", created));
  CHECK(Summary(rig, "alice", "a1", id).my_role() == v1::ROLE_OWNER);

  r = router.Call("POST", "/api/v1/conversations", R"({"type": "direct", "users": ["bob", "alice"]})");
  REQUIRE_MESSAGE(r.status == 201, r.body);
  conv = Body(r)["conversation"];
  CHECK(conv["convId"] == DirectConvId("alice", "bob"));
  CHECK(conv["type"] == "CONV_DIRECT");
  CHECK(conv["peers"] == json::array({"alice", "bob"}));  // both: the operator is neither
  CHECK(rig.broker().WaitEvent("a1", [](const v1::Event& e) {
    return IsChange(e, v1::MemberChange::CREATED) && e.message().change().actor() == "bob";
  }));

  // Members, as listMembers gives them.
  r = router.Call("GET", "/api/v1/conversations/" + id + "/members");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const json members = Body(r)["members"];
  REQUIRE(members.size() == 3);
  CHECK(members[0]["user"] == "alice");
  CHECK(members[0]["role"] == "ROLE_OWNER");
  CHECK(members[1]["user"] == "bob");
  CHECK(members[1]["online"] == true);
  CHECK(members[2]["user"] == "carol");
  CHECK(members[2]["role"] == "ROLE_MEMBER");

  // GET the conversation: the same operator view.
  r = router.Call("GET", "/api/v1/conversations/" + id);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(Body(r)["conversation"]["convId"] == id);
}

TEST_CASE("an operator adds and removes members of a group it is not in, through the same stream") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  CaptureRouter router;
  AddImRoutes(router, rig.service());
  rig.Connect("alice", "a1");
  rig.Connect("bob", "b1");
  rig.Connect("carol", "c1");
  v1::Request create;
  create.mutable_create_group()->set_name("Team");
  create.mutable_create_group()->add_members("bob");
  v1::Response cr = rig.Call("alice", "a1", create);
  REQUIRE(!cr.has_error());
  const std::string id = cr.conversation().conv_id();
  rig.broker().Events("b1");

  AdminResponse r = router.Call("POST", "/api/v1/conversations/" + id + "/members", R"({"users": ["carol", "bob"]})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  json j = Body(r);
  CHECK(j["added"] == json::array({"carol"}));  // bob was a member already
  CHECK(j["ack"]["seq"] == "2");
  // The entry names the operator as "" (docs/protocol.md), and reaches every member's devices.
  auto added = [&](const v1::Event& e) {
    return IsChange(e, v1::MemberChange::ADDED) && e.message().change().actor().empty() &&
           e.message().sender().empty() && e.message().sender_device().empty() &&
           e.message().change().users_size() == 1 && e.message().change().users(0) == "carol";
  };
  CHECK(rig.broker().WaitEvent("a1", added));
  CHECK(rig.broker().WaitEvent("b1", added));
  CHECK(rig.broker().WaitEvent("c1", added));
  CHECK(rig.broker().WaitEvent("c1", [&](const v1::Event& e) {
    return e.has_conversation() && e.conversation().conv_id() == id && e.conversation().member();
  }));
  CHECK(Summary(rig, "carol", "c1", id).min_seq() == 2);  // history starts at the ADDED entry, as for anyone

  r = router.Call("DELETE", "/api/v1/conversations/" + id + "/members/carol");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(Body(r)["removed"] == json::array({"carol"}));
  auto removed = [](const v1::Event& e) {
    return IsChange(e, v1::MemberChange::REMOVED) && e.message().change().actor().empty();
  };
  CHECK(rig.broker().WaitEvent("c1", removed));  // the removed user gets the entry too
  CHECK(rig.broker().WaitEvent("b1", removed));
  CHECK(rig.broker().WaitEvent("c1", [&](const v1::Event& e) {
    return e.has_conversation() && e.conversation().conv_id() == id && !e.conversation().member();
  }));

  // Both are stream entries: history shows them (to a member, and to the operator).
  r = router.Call("GET", "/api/v1/conversations/" + id + "/messages");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  j = Body(r);
  REQUIRE(j["messages"].size() == 3);
  CHECK(j["messages"][1]["change"]["kind"] == "ADDED");
  CHECK(j["messages"][2]["change"]["kind"] == "REMOVED");
  CHECK_FALSE(j["messages"][2]["change"].contains("actor"));  // "" is the default: left out of JSON
  CHECK(j["has_more"] == false);

  // The group rules still hold: the owner stays, a non-member cannot be removed, a direct conversation has no
  // members to change.
  r = router.Call("DELETE", "/api/v1/conversations/" + id + "/members/alice");
  CHECK(r.status == 403);
  CHECK(Body(r)["error"]["code"] == "ERR_FORBIDDEN");
  r = router.Call("DELETE", "/api/v1/conversations/" + id + "/members/carol");
  CHECK(r.status == 409);
  CHECK(Body(r)["error"]["code"] == "ERR_CONFLICT");
  r = router.Call("POST", "/api/v1/conversations/" + id + "/members", R"({"users": ["bob"]})");
  CHECK(r.status == 409);
  const std::string direct = rig.OpenDirect("alice", "a1", "bob").conv_id();
  r = router.Call("POST", "/api/v1/conversations/" + direct + "/members", R"({"users": ["carol"]})");
  CHECK(r.status == 403);
  // Admins may be removed by the operator (as by the owner).
  v1::Request role;
  role.mutable_set_role()->set_conv_id(id);
  role.mutable_set_role()->add_users("bob");
  role.mutable_set_role()->set_role(v1::ROLE_ADMIN);
  REQUIRE(!rig.Call("alice", "a1", role).has_error());
  r = router.Call("DELETE", "/api/v1/conversations/" + id + "/members/bob");
  CHECK_MESSAGE(r.status == 200, r.body);
}

TEST_CASE("an operator reads the history of a conversation it is not a member of") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  CaptureRouter router;
  AddImRoutes(router, rig.service());
  rig.Connect("alice", "a1");
  const std::string id = rig.OpenDirect("alice", "a1", "bob").conv_id();
  for (int i = 1; i <= 4; ++i) rig.Send("alice", "a1", id, "m" + std::to_string(i), "c" + std::to_string(i));

  AdminResponse r = router.Call("GET", "/api/v1/conversations/" + id + "/messages?limit=2");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  json j = Body(r);
  REQUIRE(j["messages"].size() == 2);
  CHECK(j["messages"][0]["seq"] == "4");  // newest `limit`, ascending
  CHECK(j["messages"][1]["seq"] == "5");
  CHECK(j["messages"][1]["text"] == "m4");
  CHECK(j["has_more"] == true);
  r = router.Call("GET", "/api/v1/conversations/" + id + "/messages?before_seq=4&limit=200");
  j = Body(r);
  REQUIRE(j["messages"].size() == 3);
  CHECK(j["messages"][0]["type"] == "MSG_MEMBERS");
  CHECK(j["has_more"] == false);

  // The same through ImService::Admin: the reader lets an operator in; a user who is not a member stays out.
  v1::Request req;
  req.mutable_history()->set_conv_id(id);
  v1::Response resp = Admin(rig.service(), req, "", true);
  REQUIRE(!resp.has_error());
  CHECK(resp.messages().messages_size() == 5);
  CHECK(Admin(rig.service(), req, "carol", false).error().code() == v1::ERR_NOT_MEMBER);
  v1::Request get;
  get.mutable_get_conversation()->set_conv_id(id);
  resp = Admin(rig.service(), get, "", true);
  REQUIRE(!resp.has_error());
  CHECK_FALSE(resp.conversation().member());
  CHECK(resp.conversation().max_seq() == 5);
  // Acting as a user without operator rights is that user's request exactly.
  resp = Admin(rig.service(), get, "alice", false);
  CHECK(resp.conversation().member());
}

TEST_CASE("a system message is delivered like any message, has sender \"\", never counts, and is idempotent") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  CaptureRouter router;
  AddImRoutes(router, rig.service());
  rig.Connect("alice", "a1");
  rig.Connect("bob", "b1");
  const std::string id = rig.OpenDirect("alice", "a1", "bob").conv_id();
  rig.Send("alice", "a1", id, "hi", "h1");
  rig.broker().Events("b1");
  const v1::Conversation before = Summary(rig, "bob", "b1", id);
  CHECK(before.unread() == 1);

  AdminResponse r = router.Call("POST", "/api/v1/conversations/" + id + "/messages",
                                R"({"text": "maintenance at 22:00", "client_msg_id": "notice-1"})");
  REQUIRE_MESSAGE(r.status == 201, r.body);
  const json ack = Body(r)["ack"];
  CHECK(ack["convId"] == id);
  CHECK(ack["seq"] == "3");
  CHECK_FALSE(ack.contains("duplicate"));
  auto system = [](const v1::Event& e) {
    return e.has_message() && e.message().type() == v1::MSG_SYSTEM && e.message().sender().empty() &&
           e.message().sender_device().empty() && e.message().text() == "maintenance at 22:00";
  };
  CHECK(rig.broker().WaitEvent("b1", system));  // live, to every member's device
  CHECK(rig.broker().WaitEvent("a1", system));

  // Not unread, for anyone; the stream moved on.
  const v1::Conversation after = Summary(rig, "bob", "b1", id);
  CHECK(after.unread() == 1);
  CHECK(after.max_seq() == 3);
  CHECK(after.last_message().type() == v1::MSG_SYSTEM);
  CHECK(Summary(rig, "alice", "a1", id).unread() == 0);
  CHECK(rig.Sync("bob", "b1").total_unread() == 1);

  // In history as MSG_SYSTEM with sender "".
  r = router.Call("GET", "/api/v1/conversations/" + id + "/messages");
  json msgs = Body(r)["messages"];
  REQUIRE(msgs.size() == 3);
  CHECK(msgs[2]["type"] == "MSG_SYSTEM");
  CHECK_FALSE(msgs[2].contains("sender"));
  CHECK(msgs[2]["clientMsgId"] == "notice-1");
  v1::Request hist;
  hist.mutable_history()->set_conv_id(id);
  v1::Response h = rig.Call("bob", "b1", hist);
  REQUIRE(h.messages().messages_size() == 3);
  CHECK(h.messages().messages(2).type() == v1::MSG_SYSTEM);
  CHECK(h.messages().messages(2).sender().empty());

  // The same client_msg_id again: the first ack, no second message.
  r = router.Call("POST", "/api/v1/conversations/" + id + "/messages",
                  R"({"text": "maintenance at 22:00", "client_msg_id": "notice-1"})");
  REQUIRE_MESSAGE(r.status == 201, r.body);
  CHECK(Body(r)["ack"]["seq"] == "3");
  CHECK(Body(r)["ack"]["duplicate"] == true);
  CHECK(Summary(rig, "bob", "b1", id).max_seq() == 3);
  // Scoped per conversation: the same id in another conversation is a message there...
  const std::string other = rig.OpenDirect("alice", "a1", "carol").conv_id();
  r = router.Call("POST", "/api/v1/conversations/" + other + "/messages",
                  R"({"text": "maintenance at 22:00", "client_msg_id": "notice-1"})");
  REQUIRE_MESSAGE(r.status == 201, r.body);
  CHECK(Body(r)["ack"]["convId"] == other);
  CHECK_FALSE(Body(r)["ack"].contains("duplicate"));
  // ...and no user's client_msg_id meets it: alice's own "notice-1" is a new message.
  CHECK_FALSE(rig.Send("alice", "a1", id, "mine", "notice-1").duplicate());
  // Without a client_msg_id each call is a new message.
  r = router.Call("POST", "/api/v1/conversations/" + id + "/messages", R"({"text": "again"})");
  CHECK(Body(r)["ack"]["seq"] == "5");
  r = router.Call("POST", "/api/v1/conversations/" + id + "/messages", R"({"text": "again"})");
  CHECK(Body(r)["ack"]["seq"] == "6");
  CHECK(Summary(rig, "bob", "b1", id).unread() == 2);  // "hi" and alice's "mine"
}

TEST_CASE("a device cannot send MSG_SYSTEM, nor act as an operator") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  rig.Connect("alice", "a1");
  const std::string id = rig.OpenDirect("alice", "a1", "bob").conv_id();
  v1::Request req;
  req.mutable_send()->set_conv_id(id);
  req.mutable_send()->set_type(v1::MSG_SYSTEM);
  req.mutable_send()->set_text("I am the server");
  req.mutable_send()->set_client_msg_id("s1");
  v1::Response r = rig.Call("alice", "a1", req);
  CHECK(r.error().code() == v1::ERR_BAD_REQUEST);
  // Through Admin without operator rights, the same.
  CHECK(Admin(rig.service(), req, "alice", false).error().code() == v1::ERR_BAD_REQUEST);
  // An operator's system message carries text only.
  req.mutable_send()->add_mentions("bob");
  CHECK(Admin(rig.service(), req, "", true).error().code() == v1::ERR_BAD_REQUEST);
  // As nobody, only what operator rights cover: no conversations of "" and no sends as "".
  v1::Request open;
  open.mutable_open_direct()->set_peer("bob");
  CHECK(Admin(rig.service(), open, "", true).error().code() == v1::ERR_BAD_REQUEST);
  v1::Request text;
  text.mutable_send()->set_conv_id(id);
  text.mutable_send()->set_text("x");
  text.mutable_send()->set_client_msg_id("t1");
  CHECK(Admin(rig.service(), text, "", true).error().code() == v1::ERR_BAD_REQUEST);
  v1::Request typing;
  typing.mutable_typing()->set_conv_id(id);
  CHECK(Admin(rig.service(), typing, "alice", false).error().code() == v1::ERR_BAD_REQUEST);
  // Rename is not an operator right: the operator is not a member.
  v1::Request create;
  create.mutable_create_group()->set_name("g");
  const std::string g = rig.Call("alice", "a1", create).conversation().conv_id();
  v1::Request rename;
  rename.mutable_rename_group()->set_conv_id(g);
  rename.mutable_rename_group()->set_name("h");
  CHECK(Admin(rig.service(), rename, "", true).error().code() == v1::ERR_BAD_REQUEST);
}

TEST_CASE("admin API errors: input checks, IM errors as statuses, disabled and stopped IM") {
  auto store = Rig::NewStore();
  const Options o = Rig::DefaultOptions();
  auto rig = std::make_unique<Rig>(store.get(), o);
  CaptureRouter router;
  AddImRoutes(router, rig->service());
  const std::string unknown = "g_0123456789abcdef0123456789abcdef";
  expect(router.Call("GET", "/api/v1/conversations/" + unknown), 404, "ERR_NOT_FOUND");
  expect(router.Call("GET", "/api/v1/conversations/g_XYZ"), 400, "bad_request", "conv_id");
  expect(router.Call("GET", "/api/v1/conversations/" + unknown + "/messages?limit=0"), 400, "bad_request", "limit");
  expect(router.Call("GET", "/api/v1/conversations/" + unknown + "/messages?limit=201"), 400, "bad_request", "limit");
  expect(router.Call("GET", "/api/v1/conversations/" + unknown + "/messages?before_seq=x"), 400, "bad_request",
         "before_seq");
  expect(router.Call("POST", "/api/v1/conversations", "{not json"), 400, "bad_request", "JSON");
  expect(router.Call("POST", "/api/v1/conversations", R"({"type": "channel"})"), 400, "bad_request", "type");
  expect(router.Call("POST", "/api/v1/conversations", R"({"type": "group", "owner": ""})"), 400, "bad_request",
         "owner");
  expect(router.Call("POST", "/api/v1/conversations",
                     R"({"type": "group", "owner": ")" + std::string(257, 'a') + R"("})"),
         400, "bad_request", "owner");
  expect(router.Call("POST", "/api/v1/conversations", R"({"type": "group", "owner": "a", "members": ["b", 3]})"),
         400, "bad_request", "members");
  expect(router.Call("POST", "/api/v1/conversations", R"({"type": "direct", "users": ["a", "a"]})"), 400,
         "bad_request", "users");
  expect(router.Call("POST", "/api/v1/conversations", R"({"type": "direct", "users": ["a"]})"), 400, "bad_request",
         "users");
  expect(router.Call("POST", "/api/v1/conversations/" + unknown + "/members", R"({"users": []})"), 400,
         "bad_request", "users");
  expect(router.Call("POST", "/api/v1/conversations/" + unknown + "/members", R"({"users": ["ok", "bad\u0000"]})"),
         400, "bad_request", "users");
  expect(router.Call("POST", "/api/v1/conversations/" + unknown + "/messages", R"({"text": ""})"), 400,
         "bad_request", "text");
  expect(router.Call("POST", "/api/v1/conversations/" + unknown + "/messages",
                     R"({"text": "x", "client_msg_id": ")" + std::string(65, 'c') + R"("})"),
         400, "bad_request", "client_msg_id");
  expect(router.Call("POST", "/api/v1/conversations/" + unknown + "/messages", R"({"text": "x"})"), 404,
         "ERR_NOT_FOUND");
  // An IM-level validation error keeps its IM code.
  expect(router.Call("POST", "/api/v1/conversations",
                     R"({"type": "group", "owner": "a", "name": ")" + std::string(300, 'n') + R"("})"),
         400, "ERR_BAD_REQUEST", "name");

  // Too large: a system message over im.max_message_bytes.
  rig->Connect("alice", "a1");
  const std::string id = rig->OpenDirect("alice", "a1", "bob").conv_id();
  expect(router.Call("POST", "/api/v1/conversations/" + id + "/messages",
                     json{{"text", std::string(o.max_message_bytes + 1, 't')}}.dump()),
         413, "ERR_TOO_LARGE");
  // Dissolved: no more messages (409).
  v1::Request create;
  create.mutable_create_group()->set_name("g");
  const std::string g = rig->Call("alice", "a1", create).conversation().conv_id();
  v1::Request dissolve;
  dissolve.mutable_dissolve()->set_conv_id(g);
  REQUIRE(!rig->Call("alice", "a1", dissolve).has_error());
  expect(router.Call("POST", "/api/v1/conversations/" + g + "/messages", R"({"text": "x"})"), 409, "ERR_DISSOLVED");

  // A stopped IM layer answers 503 at once, not after the timeout.
  rig->service().Stop();
  const auto t0 = std::chrono::steady_clock::now();
  expect(router.Call("GET", "/api/v1/conversations/" + id), 503, "ERR_UNAVAILABLE");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));

  CaptureRouter off;
  AddDisabledImRoutes(off);
  CHECK(off.size() == 7);
  expect(off.Call("GET", "/api/v1/conversations/" + id + "/members"), 503, "unavailable", "disabled");
}

TEST_CASE("an operator's writes are rate limited like a user's: 429 with Retry-After") {
  auto store = Rig::NewStore();
  Options o = Rig::DefaultOptions();
  o.send_rate = 1;
  o.send_burst = 2;
  Rig rig(store.get(), o);
  CaptureRouter router;
  AddImRoutes(router, rig.service());
  rig.Connect("alice", "a1");
  const std::string id = rig.OpenDirect("alice", "a1", "bob").conv_id();
  // The operator's writes share one bucket, apart from alice's (burst 2, then 1 per second).
  int limited = 0;
  for (int i = 0; i < 4; ++i) {
    AdminResponse r = router.Call("POST", "/api/v1/conversations/" + id + "/messages", R"({"text": "x"})");
    if (r.status == 429) {
      ++limited;
      CHECK(Body(r)["error"]["code"] == "ERR_RATE_LIMITED");
      bool retry_after = false;
      for (const auto& [k, v] : r.headers) retry_after = retry_after || (k == "Retry-After" && v == "1");
      CHECK(retry_after);
    } else {
      CHECK_MESSAGE(r.status == 201, r.body);
    }
  }
  CHECK(limited >= 1);
}

TEST_CASE("an admin request whose answer never comes is 503 after the timeout") {
  auto store = Rig::NewStore();
  storage::FaultStore slow(store.get());
  Rig rig(&slow);
  CaptureRouter router;
  AddImRoutes(router, rig.service(), std::chrono::milliseconds(50));
  rig.Connect("alice", "a1");
  const std::string id = rig.OpenDirect("alice", "a1", "bob").conv_id();
  slow.DelayWrites(std::chrono::milliseconds(500));
  AdminResponse r = router.Call("POST", "/api/v1/conversations/" + id + "/messages", R"({"text": "slow"})");
  CHECK(r.status == 503);
  CHECK(Body(r)["error"]["code"] == "unavailable");
  slow.DelayWrites(std::chrono::milliseconds(0));
}

TEST_CASE("IM user names and conversation ids the admin API accepts") {
  CHECK(IsValidImUserName("alice"));
  CHECK(IsValidImUserName("Ünïcødé user"));
  CHECK(IsValidImUserName(std::string(256, 'a')));
  CHECK_FALSE(IsValidImUserName(""));
  CHECK_FALSE(IsValidImUserName(std::string(257, 'a')));
  CHECK_FALSE(IsValidImUserName(std::string("a\0b", 3)));
  CHECK_FALSE(IsValidImUserName("\xff"));
  CHECK(IsValidConvId(DirectConvId("a", "b")));
  CHECK(IsValidConvId("g_0123456789abcdef0123456789abcdef"));
  CHECK_FALSE(IsValidConvId("g_0123456789ABCDEF0123456789abcdef"));
  CHECK_FALSE(IsValidConvId("x_0123456789abcdef0123456789abcdef"));
  CHECK_FALSE(IsValidConvId("g_0123"));
}

}  // namespace
}  // namespace parley::im
