// The IM reader: pages and syncs that stay within a packet-size budget, paging that covers everything once.
#include <doctest/doctest.h>

#include "rig.h"

namespace parley::im {
namespace {

using testing::Rig;

TEST_CASE("pages of large messages stop at the size budget and page on to the rest") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  const std::string conv = rig.OpenDirect("alice", "a1", "bob").conv_id();
  const std::string big(60 * 1024, 'x');
  for (int i = 0; i < 20; ++i) rig.Send("alice", "a1", conv, big + std::to_string(i), "b" + std::to_string(i));

  uint64_t before = 0;
  std::vector<uint64_t> seen;
  int pages = 0;
  for (;;) {
    v1::Request req;
    req.mutable_history()->set_conv_id(conv);
    req.mutable_history()->set_before_seq(before);
    req.mutable_history()->set_limit(200);
    const v1::Response r = rig.Call("bob", "b1", req);
    REQUIRE(r.has_messages());
    const auto& ms = r.messages().messages();
    REQUIRE(ms.size() > 0);
    CHECK(r.ByteSizeLong() < 512 * 1024);
    for (int i = ms.size() - 1; i >= 0; --i) seen.push_back(ms[i].seq());
    ++pages;
    if (!r.messages().has_more()) break;
    before = ms[0].seq();
  }
  CHECK(pages > 1);
  REQUIRE(seen.size() == 21);  // 20 messages and the creation entry, each once, newest first
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == 21 - i);

  v1::Request range;
  range.mutable_range()->set_conv_id(conv);
  range.mutable_range()->set_from_seq(1);
  range.mutable_range()->set_to_seq(21);
  const v1::Response r = rig.Call("bob", "b1", range);
  CHECK(r.messages().has_more());
  CHECK(r.messages().messages_size() < 21);
  CHECK(r.messages().messages(0).seq() == 1);
}

TEST_CASE("an incremental sync over many changed conversations pages with its cursor") {
  auto store = Rig::NewStore();
  Rig rig(store.get());
  uint64_t cursor = rig.Sync("hub", "h1").cursor();
  for (int i = 0; i < 30; ++i) {
    const std::string peer = "p" + std::to_string(i);
    const std::string conv = rig.OpenDirect(peer, peer + "-d", "hub").conv_id();
    rig.Send(peer, peer + "-d", conv, "hello from " + peer, "c");
  }
  std::set<std::string> convs;
  int rounds = 0;
  for (bool more = true; more && rounds < 20; ++rounds) {
    v1::Request req;
    req.mutable_sync()->set_cursor(cursor);
    req.mutable_sync()->set_max_convs(7);
    const v1::Response r = rig.Call("hub", "h1", req);
    REQUIRE(r.has_sync());
    CHECK(r.sync().convs_size() <= 7);
    for (const v1::ConvSync& c : r.sync().convs()) {
      CHECK(c.conversation().unread() == 1);
      REQUIRE(c.messages_size() > 0);
      CHECK(c.messages(c.messages_size() - 1).text().starts_with("hello from"));
      convs.insert(c.conversation().conv_id());
    }
    CHECK(r.sync().total_unread() == 30);
    cursor = r.sync().cursor();
    more = r.sync().has_more();
  }
  CHECK(rounds == 5);  // 7 + 7 + 7 + 7 + 2
  CHECK(convs.size() == 30);
  CHECK(rig.Sync("hub", "h1", cursor).convs_size() == 0);  // nothing changed since
}

}  // namespace
}  // namespace parley::im
