#include "broker/auth/acl_file.h"

#include <doctest/doctest.h>

#include "temp_dir.h"

namespace parley::broker::auth {
namespace {

using testing::TempDir;

std::unique_ptr<AclFile> MustParse(std::string_view text) {
  auto r = AclFile::Parse(text, "test.acl");
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

ClientIdentity Anon(std::string_view client_id = "anon-1") {
  return {client_id, std::nullopt};
}
ClientIdentity User(std::string_view name, std::string_view client_id = "c-1") {
  return {client_id, name};
}

bool CanRead(const AclFile& acl, const ClientIdentity& who, std::string_view topic) {
  return acl.Allowed(who, topic, Access::kRead);
}
bool CanWrite(const AclFile& acl, const ClientIdentity& who, std::string_view topic) {
  return acl.Allowed(who, topic, Access::kWrite);
}

TEST_CASE("a deny rule refuses a subscription it covers; overlapping filters stay allowed") {
  // The case from mosquitto's test suite: deny one topic, allow everything else.
  const auto acl = MustParse("topic deny test/nosubscribe\ntopic readwrite #\n");
  CHECK_FALSE(CanRead(*acl, Anon(), "test/nosubscribe"));
  CHECK(CanRead(*acl, Anon(), "test/#"));
  CHECK(CanRead(*acl, Anon(), "#"));
  CHECK(CanRead(*acl, Anon(), "topic/A"));
  CHECK(CanRead(*acl, Anon(), "test/+"));
  // At delivery time the deny still applies to the topic name, whatever filter let it through.
  CHECK_FALSE(CanRead(*acl, Anon(), "test/nosubscribe"));
  CHECK(CanRead(*acl, Anon(), "test/other"));
  CHECK_FALSE(CanWrite(*acl, Anon(), "test/nosubscribe"));
  CHECK(CanWrite(*acl, Anon(), "test/other"));
  // Order in the file does not matter: denies are checked first.
  const auto reversed = MustParse("topic readwrite #\ntopic deny test/nosubscribe\n");
  CHECK_FALSE(CanRead(*reversed, Anon(), "test/nosubscribe"));
  CHECK(CanRead(*reversed, Anon(), "test/#"));
}

TEST_CASE("wildcard deny rules cover matching subscriptions and topics") {
  const auto acl = MustParse("topic # \ntopic deny secret/#\ntopic deny a/+/private\n");
  CHECK_FALSE(CanRead(*acl, Anon(), "secret"));
  CHECK_FALSE(CanRead(*acl, Anon(), "secret/#"));
  CHECK_FALSE(CanRead(*acl, Anon(), "secret/+/x"));
  CHECK_FALSE(CanWrite(*acl, Anon(), "secret/x"));
  CHECK_FALSE(CanRead(*acl, Anon(), "a/b/private"));
  CHECK_FALSE(CanRead(*acl, Anon(), "a/+/private"));
  CHECK(CanRead(*acl, Anon(), "a/#"));  // overlaps only; delivery-time checks filter the messages
  CHECK(CanRead(*acl, Anon(), "a/b/public"));
  CHECK(CanRead(*acl, Anon(), "#"));
}

TEST_CASE("read, write and readwrite grant only what they say") {
  const auto acl = MustParse(
      "topic read r/#\n"
      "topic write w/#\n"
      "topic readwrite rw/#\n"
      "topic both\n");  // no access word: readwrite
  const ClientIdentity a = Anon();
  CHECK(CanRead(*acl, a, "r/x"));
  CHECK_FALSE(CanWrite(*acl, a, "r/x"));
  CHECK_FALSE(CanRead(*acl, a, "w/x"));
  CHECK(CanWrite(*acl, a, "w/x"));
  CHECK(CanRead(*acl, a, "rw/x"));
  CHECK(CanWrite(*acl, a, "rw/x"));
  CHECK(CanRead(*acl, a, "both"));
  CHECK(CanWrite(*acl, a, "both"));
  CHECK_FALSE(CanRead(*acl, a, "other"));  // default deny
  CHECK_FALSE(CanWrite(*acl, a, "other"));
}

TEST_CASE("subscriptions are allowed only when a grant covers the whole filter") {
  const auto acl = MustParse("topic read a/#\ntopic read b/c\ntopic read d/+/e\n");
  const ClientIdentity a = Anon();
  CHECK(CanRead(*acl, a, "a/+/c"));
  CHECK(CanRead(*acl, a, "a/#"));
  CHECK(CanRead(*acl, a, "a"));
  CHECK_FALSE(CanRead(*acl, a, "#"));
  CHECK_FALSE(CanRead(*acl, a, "+/b"));
  CHECK(CanRead(*acl, a, "b/c"));
  CHECK_FALSE(CanRead(*acl, a, "b/+"));
  CHECK_FALSE(CanRead(*acl, a, "b/#"));
  CHECK(CanRead(*acl, a, "d/+/e"));
  CHECK(CanRead(*acl, a, "d/x/e"));
  CHECK_FALSE(CanRead(*acl, a, "d/#"));
  // A topic name with wildcards cannot be published.
  const auto all = MustParse("topic #\n");
  CHECK_FALSE(CanWrite(*all, a, "a/+"));
  CHECK_FALSE(CanWrite(*all, a, "#"));
  CHECK_FALSE(CanWrite(*all, a, ""));
  CHECK_FALSE(CanRead(*all, a, ""));
}

TEST_CASE("a '#' rule also matches its parent level, for topics, filters and patterns") {
  const auto acl = MustParse("topic readwrite a/b/#\npattern readwrite x/%c/#\ntopic read m/+/#\n");
  CHECK(CanWrite(*acl, Anon(), "a/b"));
  CHECK(CanRead(*acl, Anon(), "a/b"));
  CHECK(CanRead(*acl, Anon(), "a/b/#"));
  CHECK_FALSE(CanWrite(*acl, Anon(), "a/bc"));
  CHECK_FALSE(CanWrite(*acl, Anon(), "a"));
  CHECK(CanWrite(*acl, Anon("c1"), "x/c1"));
  CHECK(CanRead(*acl, Anon("c1"), "x/c1/#"));
  CHECK_FALSE(CanWrite(*acl, Anon("c1"), "x/c12"));
  CHECK_FALSE(CanWrite(*acl, Anon("c1"), "x"));
  CHECK(CanRead(*acl, Anon(), "m/n"));
  CHECK_FALSE(CanRead(*acl, Anon(), "m"));
}

TEST_CASE("'#' and '+' rules do not reach $ topics; $-rules do") {
  const auto acl = MustParse("topic readwrite #\ntopic read +/monitor\ntopic read $SYS/broker/#\n");
  const ClientIdentity a = Anon();
  CHECK_FALSE(CanRead(*acl, a, "$SYS/uptime"));
  CHECK_FALSE(CanWrite(*acl, a, "$SYS/uptime"));
  CHECK_FALSE(CanRead(*acl, a, "$SYS/monitor"));
  CHECK_FALSE(CanRead(*acl, a, "$SYS/#"));
  CHECK(CanRead(*acl, a, "$SYS/broker/clients"));
  CHECK(CanRead(*acl, a, "$SYS/broker/#"));
  CHECK_FALSE(CanWrite(*acl, a, "$SYS/broker/clients"));
  CHECK(CanRead(*acl, a, "#"));  // "#" delivers no $ topics, so "topic #" covers it
}

TEST_CASE("user sections: rules before any user line are for anonymous clients only") {
  const auto acl = MustParse(
      "# anonymous\n"
      "topic read public/#\n"
      "\n"
      "user alice\n"
      "topic readwrite alice/#\n"
      "topic deny alice/locked\n"
      "user bob\n"
      "topic read alice/status\n"
      "user alice\n"  // a second section for the same user adds to the first
      "topic write shared/inbox\n");
  CHECK(acl->rule_count() == 5);
  CHECK(CanRead(*acl, Anon(), "public/x"));
  CHECK_FALSE(CanRead(*acl, Anon(), "alice/x"));
  CHECK(CanWrite(*acl, User("alice"), "alice/x"));
  CHECK(CanRead(*acl, User("alice"), "alice/#"));
  CHECK_FALSE(CanWrite(*acl, User("alice"), "alice/locked"));
  CHECK(CanWrite(*acl, User("alice"), "shared/inbox"));
  CHECK_FALSE(CanRead(*acl, User("alice"), "public/x"));  // named users do not inherit anonymous rules
  CHECK(CanRead(*acl, User("bob"), "alice/status"));
  CHECK_FALSE(CanWrite(*acl, User("bob"), "alice/status"));
  CHECK_FALSE(CanRead(*acl, User("bob"), "alice/x"));
  CHECK_FALSE(CanRead(*acl, User("carol"), "public/x"));  // no section: nothing
  CHECK_FALSE(CanRead(*acl, User(""), "public/x"));
  CHECK_FALSE(CanRead(*acl, User("Alice"), "alice/x"));  // case-sensitive
}

TEST_CASE("user names may contain spaces") {
  const auto acl = MustParse("user  John Smith  \ntopic read js/#\n");
  CHECK(CanRead(*acl, User("John Smith"), "js/1"));
  CHECK_FALSE(CanRead(*acl, User("John"), "js/1"));
}

TEST_CASE("patterns substitute %c and %u and apply to every client") {
  const auto acl = MustParse(
      "user alice\n"
      "topic read nothing\n"
      "pattern readwrite devices/%c/#\n"  // after a user line, still for everyone
      "pattern read users/%u/inbox\n"
      "pattern write out/%u/%c\n"
      "pattern write raw/%x/100%\n");  // '%' not followed by c or u stays literal
  CHECK(CanWrite(*acl, User("alice", "dev1"), "devices/dev1/temp"));
  CHECK(CanRead(*acl, User("alice", "dev1"), "devices/dev1/#"));
  CHECK_FALSE(CanWrite(*acl, User("alice", "dev1"), "devices/dev2/temp"));
  CHECK_FALSE(CanRead(*acl, User("alice", "dev1"), "devices/+/temp"));
  CHECK(CanWrite(*acl, Anon("dev9"), "devices/dev9"));
  CHECK(CanRead(*acl, User("bob"), "users/bob/inbox"));
  CHECK_FALSE(CanRead(*acl, User("bob"), "users/alice/inbox"));
  CHECK_FALSE(CanWrite(*acl, User("bob"), "users/bob/inbox"));
  CHECK(CanWrite(*acl, User("bob", "c7"), "out/bob/c7"));
  CHECK_FALSE(CanWrite(*acl, User("bob", "c7"), "out/c7/bob"));
  CHECK(CanWrite(*acl, Anon(), "raw/%x/100%"));
}

TEST_CASE("a %u pattern never matches a client without a user name") {
  const auto acl = MustParse("pattern readwrite users/%u/#\npattern readwrite any/%c%u\n");
  CHECK_FALSE(CanRead(*acl, Anon(), "users//x"));
  CHECK_FALSE(CanRead(*acl, Anon(), "users/%u/x"));
  CHECK_FALSE(CanWrite(*acl, Anon("c"), "any/c"));
  CHECK_FALSE(CanWrite(*acl, Anon("c"), "any/c%u"));
  CHECK(CanWrite(*acl, User("u", "c"), "any/cu"));
  CHECK(CanRead(*acl, User(""), "users//x"));  // an empty user name is still a user name
}

TEST_CASE("deny wins over grants across topic and pattern rules") {
  const auto acl = MustParse(
      "pattern deny devices/%c/config\n"
      "pattern readwrite devices/%c/#\n"
      "user admin\n"
      "topic readwrite devices/#\n"
      "topic deny devices/vault/#\n");
  CHECK(CanWrite(*acl, User("admin", "dev1"), "devices/dev2/config"));
  // mosquitto 2.0 would let admin's topic grant win over the pattern deny; Parley does not.
  CHECK_FALSE(CanWrite(*acl, User("admin", "dev1"), "devices/dev1/config"));
  CHECK_FALSE(CanRead(*acl, User("admin", "dev1"), "devices/vault/x"));
  CHECK_FALSE(CanRead(*acl, User("admin", "vault"), "devices/vault/x"));  // topic deny beats pattern grant
  CHECK(CanRead(*acl, User("eve", "dev3"), "devices/dev3/status"));
  CHECK_FALSE(CanRead(*acl, User("eve", "dev3"), "devices/dev3/config"));
  CHECK(
      CanRead(*acl, User("eve", "dev3"), "devices/dev3/#"));  // overlaps the deny only; filtered per message
}

TEST_CASE("identities with + or # get nothing when patterns exist") {
  const auto acl = MustParse("topic readwrite open/#\npattern readwrite devices/%c/#\n");
  CHECK_FALSE(CanWrite(*acl, Anon("#"), "devices/x/y"));
  CHECK_FALSE(CanWrite(*acl, Anon("a+b"), "devices/a+b/y"));
  CHECK_FALSE(CanWrite(*acl, Anon("#"), "open/x"));
  CHECK_FALSE(CanWrite(*acl, User("u#", "ok"), "devices/ok/y"));
  CHECK(CanWrite(*acl, User("u", "ok"), "devices/ok/y"));  // no section for u, but patterns apply to all
  CHECK(CanWrite(*acl, Anon("ok"), "devices/ok/y"));
  // Without patterns the identity is never substituted, so it does not matter.
  const auto plain = MustParse("topic readwrite open/#\n");
  CHECK(CanWrite(*plain, Anon("#"), "open/x"));
  // '/' in a client id is allowed (as in mosquitto 2.0) and simply adds levels.
  CHECK(CanWrite(*acl, Anon("a/b"), "devices/a/b/c"));
}

TEST_CASE("long pattern expansions fall back to the heap") {
  const auto acl = MustParse("pattern readwrite tenants/%u/%c/#\n");
  const std::string user(300, 'u');
  const std::string client(200, 'c');
  CHECK(CanWrite(*acl, User(user, client), "tenants/" + user + "/" + client + "/x"));
  CHECK_FALSE(CanWrite(*acl, User(user, client), "tenants/" + user + "/other/x"));
}

TEST_CASE("no rules at all: everything is refused") {
  const auto acl = MustParse("# nothing here\n\n");
  CHECK(acl->rule_count() == 0);
  CHECK_FALSE(CanRead(*acl, Anon(), "a"));
  CHECK_FALSE(CanWrite(*acl, User("u"), "a"));
}

TEST_CASE("parsing follows mosquitto: blanks, CRLF, one-word topics, topics with spaces") {
  const auto acl = MustParse(
      "  topic   read   a b c  \r\n"  // topic with spaces needs an access word
      "\ttopic\twrite\tx/y\n"
      "topic read\n"  // one word: the topic "read", readwrite (mosquitto does the same)
      "   # indented comment\n"
      "#topic readwrite #\n");
  CHECK(acl->rule_count() == 3);
  CHECK(CanRead(*acl, Anon(), "a b c"));
  CHECK_FALSE(CanWrite(*acl, Anon(), "a b c"));
  CHECK(CanWrite(*acl, Anon(), "x/y"));
  CHECK(CanWrite(*acl, Anon(), "read"));
  CHECK_FALSE(CanRead(*acl, Anon(), "anything"));
}

TEST_CASE("malformed lines fail the load with file:line") {
  const std::pair<const char*, const char*> bad[] = {
      {"topic\n", "\"topic\" needs a topic"},
      {"pattern   \n", "\"pattern\" needs a topic"},
      {"user\n", "\"user\" needs a user name"},
      {"user   \t\n", "\"user\" needs a user name"},
      {"topic readonly a/b\n", "unknown access \"readonly\""},
      {"topic read a/#/b\n", "invalid topic filter"},
      {"topic read a+\n", "invalid topic filter"},
      {"pattern deny x#\n", "invalid topic filter"},
      {"topics read a\n", "unknown keyword \"topics\""},
      {"allow a\n", "unknown keyword \"allow\""},
  };
  for (const auto& entry : bad) {
    const char* line = entry.first;
    const char* why = entry.second;
    CAPTURE(line);
    auto r = AclFile::Parse(std::string("# header\ntopic read ok\n\n") + line, "conf/acl");
    REQUIRE_FALSE(r.ok());
    const std::string& msg = r.status().message();
    CAPTURE(msg);
    CHECK(msg.rfind("conf/acl:4: ", 0) == 0);
    CHECK(msg.find(why) != std::string::npos);
  }
}

TEST_CASE("Load reads a file and names it in errors") {
  TempDir dir;
  const std::string path = dir.Write("acl", "user alice\ntopic readwrite alice/#\n");
  auto r = AclFile::Load(path);
  REQUIRE(r.ok());
  CHECK((*r)->Allowed(User("alice"), "alice/x", Access::kWrite));
  const std::string bad = dir.Write("bad", "topic read ok\nbogus\n");
  auto e = AclFile::Load(bad);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().message().rfind(bad + ":2: ", 0) == 0);
  auto missing = AclFile::Load(dir.Sub("missing"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find(dir.Sub("missing")) != std::string::npos);
}

}  // namespace
}  // namespace parley::broker::auth
