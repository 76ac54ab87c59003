// users (the password file) and bans (docs/admin-api.md, "Users", "Bans").
#include <iostream>
#include <memory>

#include "tools/ctl/context.h"
#include "tools/ctl/json_util.h"
#include "tools/ctl/password.h"
#include "tools/ctl/render.h"

namespace parley::ctl {
namespace {

using Align = Table::Align;

// ---- users -----------------------------------------------------------------------------------------------

// A user name and where its password comes from.
struct PasswordOpts {
  std::string name;
  std::string password;
  bool from_stdin = false;

  void Add(CLI::App* c) {
    c->add_option("NAME", name, "user name")->required();
    auto* p = c->add_option(
        "--password", password,
        "the password (shows in ps and the shell history: prefer the prompt or --password-stdin)");
    auto* s = c->add_flag("--password-stdin", from_stdin, "read the password from the first line of stdin");
    p->excludes(s);
  }
  // The password: given, from stdin, or prompted for twice on a terminal.
  std::string Get() const {
    if (!password.empty()) return password;
    if (from_stdin) return ReadPasswordLine(std::cin);
    if (!StdinIsTerminal()) {
      throw CtlError(kExitUsage, "no password: give --password, --password-stdin, or run on a terminal");
    }
    return PromptPasswordTwice(Sanitize(name));
  }
};

int UsersAdd(Context& ctx, const PasswordOpts& o) {
  const std::string pw = o.Get();
  const Json r = ctx.api().Post("/api/v1/users", Json{{"username", o.name}, {"password", pw}});
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("added user " + Sanitize(o.name));
  return kExitOk;
}

int UsersPasswd(Context& ctx, const PasswordOpts& o) {
  const std::string pw = o.Get();
  const Json r = ctx.api().Put("/api/v1/users/" + Escape(o.name) + "/password", Json{{"password", pw}});
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("changed the password of " + Sanitize(o.name));
  return kExitOk;
}

int UsersDel(Context& ctx, const std::string& name) {
  const Json r = ctx.api().Delete("/api/v1/users/" + Escape(name));
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("deleted user " + Sanitize(name));
  return kExitOk;
}

int UsersList(Context& ctx) {
  const Json r = ctx.api().Get("/api/v1/users");
  if (ctx.json()) return ctx.PrintJson(r);
  Table t;
  t.Column("USERNAME");
  for (const Json& u : Array(r, "users")) t.Row({Text(u, {"username"})});
  PrintTable(std::cout, t, "users");
  if (const Json* f = Field(r, {"file"})) ctx.Note("password file: " + Sanitize(Text(*f)));
  return kExitOk;
}

void AddUsers(Context& ctx, CLI::App& app) {
  CLI::App* g =
      AddGroup(&app, "users", "Users of the password file (auth.password_file): add, passwd, del, list",
               "parleyctl users add alice");

  auto add_o = std::make_shared<PasswordOpts>();
  add_o->Add(AddCommand(ctx, g, "add", "Add a user (prompts for the password twice on a terminal)",
                        "parleyctl users add alice\n"
                        "printf '%s\\n' \"$PW\" | parleyctl users add alice --password-stdin",
                        [&ctx, add_o] { return UsersAdd(ctx, *add_o); }));

  auto pw_o = std::make_shared<PasswordOpts>();
  pw_o->Add(AddCommand(ctx, g, "passwd", "Change a user's password (connected clients stay connected)",
                       "parleyctl users passwd alice", [&ctx, pw_o] { return UsersPasswd(ctx, *pw_o); }));

  auto del_name = std::make_shared<std::string>();
  AddCommand(ctx, g, "del", "Delete a user (connected clients stay connected)", "parleyctl users del alice",
             [&ctx, del_name] { return UsersDel(ctx, *del_name); })
      ->add_option("NAME", *del_name, "user name")
      ->required();

  AddCommand(ctx, g, "list", "List the users of the password file", "parleyctl users list",
             [&ctx] { return UsersList(ctx); });
}

// ---- bans ------------------------------------------------------------------------------------------------

std::string Until(const Json& ban, int64_t now) {
  const auto until = Int(ban, {"until_ms"});
  return until ? LocalIso(*until) + " (" + RelativeTime(*until, now) + ")" : "never";
}

struct BanOpts {
  std::string kind, value, duration, reason;
};

int BansAdd(Context& ctx, const BanOpts& o) {
  Json body{{"kind", o.kind}, {"value", o.value}};
  if (!o.duration.empty()) {
    const auto seconds = ParseDuration(o.duration);
    if (!seconds)
      throw CtlError(kExitUsage, "--duration: '" + o.duration + "' is not a duration like 90s, 1h30m, 2d");
    body["duration_seconds"] = *seconds;
  }
  if (!o.reason.empty()) body["reason"] = o.reason;
  const Json r = ctx.api().Post("/api/v1/bans", body);
  if (ctx.json()) return ctx.PrintJson(r);
  std::string line =
      "banned " + o.kind + " " + Sanitize(o.value) + " until " + Until(Object(r, "ban"), NowMs());
  if (const auto k = Int(r, {"kicked"}); k && *k > 0) {
    line += "; disconnected " + std::to_string(*k) + (*k == 1 ? " client" : " clients");
  }
  ctx.Say(line);
  return kExitOk;
}

int BansDel(Context& ctx, const BanOpts& o) {
  const Json r = ctx.api().Delete("/api/v1/bans/" + Escape(o.kind) + "/" + Escape(o.value));
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("removed the ban on " + o.kind + " " + Sanitize(o.value));
  return kExitOk;
}

int BansList(Context& ctx) {
  const Json r = ctx.api().Get("/api/v1/bans");
  if (ctx.json()) return ctx.PrintJson(r);
  const int64_t now = NowMs();
  Table t;
  t.Column("KIND").Column("VALUE", Align::kLeft, 48).Column("UNTIL").Column("REASON", Align::kLeft, 48);
  for (const Json& b : Array(r, "bans")) {
    t.Row({Text(b, {"kind"}), Text(b, {"value"}), Until(b, now), Text(b, {"reason"})});
  }
  PrintTable(std::cout, t, "bans");
  return kExitOk;
}

void AddBans(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "bans", "Bans by address (IP or CIDR), client id or user name: add, del, list",
                         "parleyctl bans add address 10.0.0.0/8 --duration 1h --reason scan");
  const auto kinds = CLI::IsMember({"address", "clientid", "username"});

  auto ao = std::make_shared<BanOpts>();
  CLI::App* add = AddCommand(
      ctx, g, "add", "Ban an address, client id or user name; matching connected clients are disconnected",
      "parleyctl bans add clientid bad-device --duration 1h30m --reason flooding\n"
      "parleyctl bans add address 192.0.2.0/24",
      [&ctx, ao] { return BansAdd(ctx, *ao); });
  add->add_option("KIND", ao->kind, "address, clientid or username")->required()->check(kinds);
  add->add_option("VALUE", ao->value, "an IP address or CIDR block, a client id, or a user name")->required();
  add->add_option("--duration", ao->duration, "how long: 90s, 30m, 1h30m, 2d, 1w (default: until removed)")
      ->check(CLI::Validator(
          [](std::string& v) {
            return ParseDuration(v) ? std::string() : "not a duration like 90s, 1h30m, 2d";
          },
          "DURATION"));
  add->add_option("--reason", ao->reason, "why (shown in bans list)");

  auto dop = std::make_shared<BanOpts>();
  CLI::App* del = AddCommand(ctx, g, "del", "Remove a ban", "parleyctl bans del address 10.0.0.0/8",
                             [&ctx, dop] { return BansDel(ctx, *dop); });
  del->add_option("KIND", dop->kind, "address, clientid or username")->required()->check(kinds);
  del->add_option("VALUE", dop->value, "the banned value, as listed")->required();

  AddCommand(ctx, g, "list", "List the bans", "parleyctl bans list", [&ctx] { return BansList(ctx); });
}

}  // namespace

void AddUserCommands(Context& ctx, CLI::App& app) {
  AddUsers(ctx, app);
  AddBans(ctx, app);
}

}  // namespace parley::ctl
