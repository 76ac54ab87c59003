// conv and msg: IM conversations and system messages (docs/admin-api.md, "Conversations and system
// messages"). The objects are those of docs/protocol.md in JSON form (lowerCamelCase, 64-bit integers as
// strings); the snake_case spellings are read too.
#include <iostream>
#include <memory>

#include "tools/ctl/context.h"
#include "tools/ctl/json_util.h"
#include "tools/ctl/render.h"

namespace parley::ctl {
namespace {

using Align = Table::Align;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

// "ROLE_OWNER" -> "owner", "MSG_TEXT" -> "text", "CONV_GROUP" -> "group".
std::string EnumText(const std::string& v) {
  for (std::string_view p : {"ROLE_", "MSG_", "CONV_"}) {
    if (v.rfind(p, 0) == 0) return Lower(v.substr(p.size()));
  }
  return v;
}

// One history line's text: the message text, or what a stream event says.
std::string MessageText(const Json& m) {
  if (Bool(m, {"recalled"}).value_or(false)) return "(recalled)";
  if (const Json* ch = Field(m, {"change"}); ch && ch->is_object()) {
    std::string s = Lower(Text(*ch, {"kind"}));  // "created by alice: alice, bob, carol"
    if (const std::string actor = Text(*ch, {"actor"}); !actor.empty()) s += " by " + actor;
    if (const std::string users = Text(*ch, {"users"}); !users.empty()) s += ": " + users;
    if (const std::string name = Text(*ch, {"name"}); !name.empty()) s += " (name " + name + ")";
    return s;
  }
  std::string text = Text(m, {"text"});
  if (const Json& files = Array(m, "attachments"); !files.empty()) {
    std::string names;
    for (const Json& f : files) names += (names.empty() ? "" : ", ") + Text(f, {"name"}, "?");
    text += (text.empty() ? "[files: " : " [files: ") + names + "]";
  }
  if (const auto target = Int(m, {"targetSeq", "target_seq"}); target && *target > 0) {
    text = "(" + EnumText(Text(m, {"type"})) + " of " + std::to_string(*target) + ") " + text;
  }
  if (Bool(m, {"edited"}).value_or(false)) text += " (edited)";
  return text;
}

std::string ConvPath(const std::string& id) {
  return "/api/v1/conversations/" + Escape(id);
}

int PrintConversation(Context& ctx, const Json& r) {
  if (ctx.json()) return ctx.PrintJson(r);
  PrintObject(std::cout, Object(r, "conversation"));
  return kExitOk;
}

// ---- conv ------------------------------------------------------------------------------------------------

struct CreateOpts {
  bool group = false, direct = false;
  std::string name, owner;
  std::vector<std::string> members, users;
};

int ConvCreate(Context& ctx, const CreateOpts& o) {
  Json body;
  if (o.group) {
    if (o.name.empty() || o.owner.empty()) throw CtlError(kExitUsage, "--group needs --name and --owner");
    if (!o.users.empty()) throw CtlError(kExitUsage, "--group takes its members from --members a,b");
    body = Json{{"type", "group"}, {"name", o.name}, {"owner", o.owner}, {"members", o.members}};
  } else if (o.direct) {
    if (o.users.size() != 2) throw CtlError(kExitUsage, "--direct needs exactly two users: A B");
    if (!o.name.empty() || !o.owner.empty() || !o.members.empty()) {
      throw CtlError(kExitUsage, "--name, --owner and --members are for --group");
    }
    body = Json{{"type", "direct"}, {"users", o.users}};
  } else {
    throw CtlError(kExitUsage, "conv create needs --group or --direct");
  }
  return PrintConversation(ctx, ctx.api().Post("/api/v1/conversations", body));
}

int ConvMembers(Context& ctx, const std::string& id) {
  const Json r = ctx.api().Get(ConvPath(id) + "/members");
  if (ctx.json()) return ctx.PrintJson(r);
  Table t;
  t.Column("USER", Align::kLeft, 40).Column("ROLE").Column("JOIN SEQ", Align::kRight);
  t.Column("READ SEQ", Align::kRight).Column("ONLINE");
  for (const Json& m : Array(r, "members")) {
    t.Row({Text(m, {"user"}), EnumText(Text(m, {"role"})), IntText(m, {"joinSeq", "join_seq"}, "0"),
           IntText(m, {"readSeq", "read_seq"}, "0"), YesNo(m, {"online"}, "no")});
  }
  PrintTable(std::cout, t, "members");
  return kExitOk;
}

struct MembersOpts {
  std::string id;
  std::vector<std::string> users;  // add: one or more; remove: exactly one
};

int ConvAdd(Context& ctx, const MembersOpts& o) {
  const Json r = ctx.api().Post(ConvPath(o.id) + "/members", Json{{"users", o.users}});
  if (ctx.json()) return ctx.PrintJson(r);
  const std::string added = Text(r, {"added"});
  ctx.Say(added.empty() ? "nobody added (already members)" : "added: " + Sanitize(added));
  return kExitOk;
}

int ConvRemove(Context& ctx, const MembersOpts& o) {
  const Json r = ctx.api().Delete(ConvPath(o.id) + "/members/" + Escape(o.users.at(0)));
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("removed: " + Sanitize(Text(r, {"removed"}, o.users.at(0))));
  return kExitOk;
}

struct HistoryOpts {
  std::string id;
  int64_t before = 0;  // 0 = from the newest
  int limit = 0;       // 0 = the server's default (50)
};

int ConvHistory(Context& ctx, const HistoryOpts& o) {
  Api::Query q;
  if (o.before > 0) q.emplace_back("before_seq", std::to_string(o.before));
  if (o.limit > 0) q.emplace_back("limit", std::to_string(o.limit));
  const Json r = ctx.api().Get(ConvPath(o.id) + "/messages", q);
  if (ctx.json()) return ctx.PrintJson(r);
  Table t;
  t.Column("SEQ", Align::kRight).Column("TIME").Column("SENDER", Align::kLeft, 24).Column("TYPE");
  t.Column("TEXT", Align::kLeft, 70);
  int64_t lowest = 0;
  for (const Json& m : Array(r, "messages")) {
    const auto seq = Int(m, {"seq"});
    if (seq && (lowest == 0 || *seq < lowest)) lowest = *seq;
    const auto ts = Int(m, {"serverTs", "server_ts"});
    const std::string sender = Text(m, {"sender"});
    t.Row({seq ? std::to_string(*seq) : "?", ts ? LocalIso(*ts) : "-", sender.empty() ? "(system)" : sender,
           EnumText(Text(m, {"type"})), MessageText(m)});
  }
  PrintTable(std::cout, t, "messages");
  if (Bool(r, {"has_more", "hasMore"}).value_or(false) && lowest > 0) {
    ctx.Note("older messages: parleyctl conv history " + Sanitize(o.id) + " --before " +
             std::to_string(lowest));
  }
  return kExitOk;
}

void AddConv(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "conv", "IM conversations: create, show, members, add, remove, history",
                         "parleyctl conv history g_4681b6c74928837184492b57f98c2c03 --limit 20");
  const std::string kId = "g_4681b6c74928837184492b57f98c2c03";

  auto co = std::make_shared<CreateOpts>();
  CLI::App* create =
      AddCommand(ctx, g, "create", "Create a group (as if --owner had created it) or a direct conversation",
                 "parleyctl conv create --group --name 'Lunch club' --owner alice --members bob,carol\n"
                 "parleyctl conv create --direct alice bob",
                 [&ctx, co] { return ConvCreate(ctx, *co); });
  auto* grp = create->add_flag("--group", co->group, "a group conversation");
  auto* dir = create->add_flag("--direct", co->direct, "a direct conversation between two users");
  grp->excludes(dir);
  create->add_option("--name", co->name, "group name");
  create->add_option("--owner", co->owner, "the group's owner (its creator)");
  create->add_option("--members", co->members, "other members, comma-separated")->delimiter(',');
  create->add_option("USERS", co->users, "--direct: the two users");

  auto id = std::make_shared<std::string>();
  AddCommand(ctx, g, "show", "Show a conversation", "parleyctl conv show " + kId,
             [&ctx, id] { return PrintConversation(ctx, ctx.api().Get(ConvPath(*id))); })
      ->add_option("ID", *id, "conversation id")
      ->required();

  auto mid = std::make_shared<std::string>();
  AddCommand(ctx, g, "members", "List a conversation's members", "parleyctl conv members " + kId,
             [&ctx, mid] { return ConvMembers(ctx, *mid); })
      ->add_option("ID", *mid, "conversation id")
      ->required();

  auto ao = std::make_shared<MembersOpts>();
  CLI::App* add =
      AddCommand(ctx, g, "add", "Add users to a group (an operator may add to any group)",
                 "parleyctl conv add " + kId + " dave erin", [&ctx, ao] { return ConvAdd(ctx, *ao); });
  add->add_option("ID", ao->id, "conversation id")->required();
  add->add_option("USER", ao->users, "users to add")->required();

  auto ro = std::make_shared<MembersOpts>();
  ro->users.resize(1);
  CLI::App* remove =
      AddCommand(ctx, g, "remove", "Remove a user from a group", "parleyctl conv remove " + kId + " dave",
                 [&ctx, ro] { return ConvRemove(ctx, *ro); });
  remove->add_option("ID", ro->id, "conversation id")->required();
  remove->add_option("USER", ro->users[0], "user to remove")->required();

  auto ho = std::make_shared<HistoryOpts>();
  CLI::App* history =
      AddCommand(ctx, g, "history", "Show a conversation's newest messages (before a seq), oldest first",
                 "parleyctl conv history " + kId + " --before 120 --limit 20",
                 [&ctx, ho] { return ConvHistory(ctx, *ho); });
  history->add_option("ID", ho->id, "conversation id")->required();
  history->add_option("--before", ho->before, "only messages before this seq (default: the newest)")
      ->check(CLI::PositiveNumber);
  history->add_option("--limit", ho->limit, "at most this many (1..200; default 50)")
      ->check(CLI::Range(1, 200));
}

// ---- msg -------------------------------------------------------------------------------------------------

struct SendOpts {
  std::string conv, text, client_msg_id;
};

int MsgSend(Context& ctx, const SendOpts& o) {
  Json body{{"text", o.text}};
  if (!o.client_msg_id.empty()) body["client_msg_id"] = o.client_msg_id;
  const Json r = ctx.api().Post(ConvPath(o.conv) + "/messages", body);
  if (ctx.json()) return ctx.PrintJson(r);
  const Json& ack = Object(r, "ack");
  std::string line =
      "sent: seq " + IntText(ack, {"seq"}, "?") + " in " + Sanitize(Text(ack, {"convId", "conv_id"}, o.conv));
  if (Bool(ack, {"duplicate"}).value_or(false)) line += " (duplicate: already sent with this client msg id)";
  ctx.Say(line);
  return kExitOk;
}

void AddMsg(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "msg", "System messages into IM conversations",
                         "parleyctl msg send g_4681b6c74928837184492b57f98c2c03 'maintenance at 22:00'");
  auto so = std::make_shared<SendOpts>();
  CLI::App* send = AddCommand(
      ctx, g, "send", "Send a system message (MSG_SYSTEM, no sender); idempotent with --client-msg-id",
      "parleyctl msg send g_4681b6c74928837184492b57f98c2c03 'maintenance at 22:00' --client-msg-id "
      "maint-1128",
      [&ctx, so] { return MsgSend(ctx, *so); });
  send->add_option("CONV_ID", so->conv, "conversation id")->required();
  send->add_option("TEXT", so->text, "the message text")->required();
  send->add_option("--client-msg-id", so->client_msg_id, "idempotency key: sending it again sends nothing");
}

}  // namespace

void AddImCommands(Context& ctx, CLI::App& app) {
  AddConv(ctx, app);
  AddMsg(ctx, app);
}

}  // namespace parley::ctl
