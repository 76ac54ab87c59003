// clients, sessions, subscriptions, retained: the MQTT state (docs/admin-api.md, "Clients" to "Retained").
#include <iostream>
#include <memory>

#include "tools/ctl/context.h"
#include "tools/ctl/json_util.h"
#include "tools/ctl/render.h"

namespace parley::ctl {
namespace {

using Align = Table::Align;

// --limit and --after of the paged lists.
struct Paging {
  int limit = 0;  // 0 = the server's default (100)
  std::string after;

  void Add(CLI::App* c) {
    c->add_option("--limit", limit, "at most this many (1..10000; default 100)")->check(CLI::Range(1, 10000));
    c->add_option("--after", after, "start after this key (the \"next\" of the previous page)");
  }
  void AppendTo(Api::Query& q) const {
    if (limit > 0) q.emplace_back("limit", std::to_string(limit));
    if (!after.empty()) q.emplace_back("after", after);
  }
};

// A filtered, paged list: the filters that are set, then the paging.
Api::Query ListQuery(std::initializer_list<std::pair<const char*, const std::string*>> filters,
                     const Paging& p) {
  Api::Query q;
  for (const auto& [key, value] : filters) {
    if (!value->empty()) q.emplace_back(key, *value);
  }
  p.AppendTo(q);
  return q;
}

// A single object and its subscriptions ({"client": ..., "subscriptions": [...]}, or "session").
void PrintWithSubscriptions(const Json& r, std::string_view key) {
  PrintObject(std::cout, Object(r, key));
  std::cout << "\nsubscriptions:\n";
  PrintTable(std::cout, SubscriptionsTable(Array(r, "subscriptions"), false), "subscriptions");
}

// ---- clients ---------------------------------------------------------------------------------------------

struct ClientListOpts {
  std::string username, listener;
  Paging page;
};

int ClientsList(Context& ctx, const ClientListOpts& o) {
  const Json r = ctx.api().Get("/api/v1/clients",
                               ListQuery({{"username", &o.username}, {"listener", &o.listener}}, o.page));
  if (ctx.json()) return ctx.PrintJson(r);
  const int64_t now = NowMs();
  Table t;
  t.Column("CLIENT ID", Align::kLeft, 40).Column("USERNAME", Align::kLeft, 24).Column("ADDRESS");
  t.Column("LISTENER").Column("PROTOCOL").Column("CONNECTED");
  t.Column("SUBS", Align::kRight).Column("QUEUED", Align::kRight).Column("INFLIGHT", Align::kRight);
  for (const Json& c : Array(r, "clients")) {
    const auto at = Int(c, {"connected_at_ms"});
    t.Row({Text(c, {"client_id"}), Text(c, {"username"}, "-"), Text(c, {"address"}), Text(c, {"listener"}),
           Text(c, {"protocol"}) + " " + Text(c, {"version"}), at ? RelativeTime(*at, now) : "-",
           IntText(c, {"subscriptions"}), IntText(c, {"queued"}), IntText(c, {"inflight"})});
  }
  PrintTable(std::cout, t, "connected clients");
  NoteNext(ctx, r, "clients list");
  return kExitOk;
}

int ClientsShow(Context& ctx, const std::string& id) {
  const Json r = ctx.api().Get("/api/v1/clients/" + Escape(id));
  if (ctx.json()) return ctx.PrintJson(r);
  PrintWithSubscriptions(r, "client");
  return kExitOk;
}

struct KickOpts {
  std::string id;
  int reason = -1;  // -1 = the server's default (0x98)
};

int ClientsKick(Context& ctx, const KickOpts& o) {
  Json body = Json::object();
  if (o.reason >= 0) body["reason_code"] = o.reason;
  const Json r = ctx.api().Post("/api/v1/clients/" + Escape(o.id) + "/kick", body);
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("kicked " + Sanitize(o.id));
  return kExitOk;
}

void AddClients(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "clients", "Connected MQTT clients: list, show, kick",
                         "parleyctl clients list --username alice");

  auto lo = std::make_shared<ClientListOpts>();
  CLI::App* list = AddCommand(ctx, g, "list", "List connected clients (sorted by client id)",
                              "parleyctl clients list --listener default --limit 50",
                              [&ctx, lo] { return ClientsList(ctx, *lo); });
  list->add_option("--username", lo->username, "only clients of this user");
  list->add_option("--listener", lo->listener, "only clients of this listener (by name)");
  lo->page.Add(list);

  auto id = std::make_shared<std::string>();
  CLI::App* show = AddCommand(ctx, g, "show", "Show one connected client and its subscriptions",
                              "parleyctl clients show phone-1", [&ctx, id] { return ClientsShow(ctx, *id); });
  show->add_option("ID", *id, "client id")->required();

  auto ko = std::make_shared<KickOpts>();
  CLI::App* kick = AddCommand(
      ctx, g, "kick", "Disconnect a client (MQTT 5: DISCONNECT with the reason code); its session stays",
      "parleyctl clients kick phone-1 --reason-code 152", [&ctx, ko] { return ClientsKick(ctx, *ko); });
  kick->add_option("ID", ko->id, "client id")->required();
  kick->add_option("--reason-code", ko->reason, "MQTT 5 DISCONNECT reason code (default 152 = 0x98)")
      ->check(CLI::Range(0, 255));
}

// ---- sessions --------------------------------------------------------------------------------------------

struct SessionListOpts {
  std::string state;
  Paging page;
};

int SessionsList(Context& ctx, const SessionListOpts& o) {
  const Json r = ctx.api().Get("/api/v1/sessions", ListQuery({{"state", &o.state}}, o.page));
  if (ctx.json()) return ctx.PrintJson(r);
  Table t;
  t.Column("CLIENT ID", Align::kLeft, 40).Column("USERNAME", Align::kLeft, 24).Column("STATE");
  t.Column("EXPIRY").Column("EXPIRES IN").Column("SUBS", Align::kRight).Column("QUEUED", Align::kRight);
  t.Column("QUEUED SIZE", Align::kRight).Column("INFLIGHT", Align::kRight);
  for (const Json& s : Array(r, "sessions")) {
    const auto online = Bool(s, {"online"});
    const auto expires = Int(s, {"expires_in_seconds"});
    t.Row({Text(s, {"client_id"}), Text(s, {"username"}, "-"),
           online ? (*online ? "online" : "offline") : "-",
           FormatField("expiry_interval", Get(s, "expiry_interval"), 0),
           expires ? HumanDuration(*expires) : "-", IntText(s, {"subscriptions"}), IntText(s, {"queued"}),
           BytesText(s, "queued_bytes"), IntText(s, {"inflight"})});
  }
  PrintTable(std::cout, t, "sessions");
  NoteNext(ctx, r, "sessions list");
  return kExitOk;
}

int SessionsShow(Context& ctx, const std::string& id) {
  const Json r = ctx.api().Get("/api/v1/sessions/" + Escape(id));
  if (ctx.json()) return ctx.PrintJson(r);
  PrintWithSubscriptions(r, "session");
  return kExitOk;
}

int SessionsDrop(Context& ctx, const std::string& id) {
  const Json r = ctx.api().Delete("/api/v1/sessions/" + Escape(id));
  if (ctx.json()) return ctx.PrintJson(r);
  const bool kicked = Bool(r, {"kicked"}).value_or(false);
  ctx.Say("dropped session " + Sanitize(id) +
          (kicked ? " (the client was connected and has been disconnected)" : ""));
  return kExitOk;
}

void AddSessions(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "sessions", "MQTT sessions, online and offline: list, show, drop",
                         "parleyctl sessions list --state offline");

  auto lo = std::make_shared<SessionListOpts>();
  CLI::App* list = AddCommand(ctx, g, "list", "List sessions (sorted by client id)",
                              "parleyctl sessions list --state offline --limit 20",
                              [&ctx, lo] { return SessionsList(ctx, *lo); });
  list->add_option("--state", lo->state, "online or offline")->check(CLI::IsMember({"online", "offline"}));
  lo->page.Add(list);

  auto id = std::make_shared<std::string>();
  CLI::App* show =
      AddCommand(ctx, g, "show", "Show one session and its subscriptions", "parleyctl sessions show phone-1",
                 [&ctx, id] { return SessionsShow(ctx, *id); });
  show->add_option("ID", *id, "client id")->required();

  auto drop_id = std::make_shared<std::string>();
  CLI::App* drop =
      AddCommand(ctx, g, "drop",
                 "Remove a session with its subscriptions and queued messages (disconnecting its client)",
                 "parleyctl sessions drop phone-1", [&ctx, drop_id] { return SessionsDrop(ctx, *drop_id); });
  drop->add_option("ID", *drop_id, "client id")->required();
}

// ---- subscriptions ---------------------------------------------------------------------------------------

struct SubscriptionListOpts {
  std::string client_id;
  Paging page;
};

int SubscriptionsList(Context& ctx, const SubscriptionListOpts& o) {
  const Json r = ctx.api().Get("/api/v1/subscriptions", ListQuery({{"client_id", &o.client_id}}, o.page));
  if (ctx.json()) return ctx.PrintJson(r);
  PrintTable(std::cout, SubscriptionsTable(Array(r, "subscriptions"), true), "subscriptions");
  NoteNext(ctx, r, "subscriptions list");
  return kExitOk;
}

void AddSubscriptions(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "subscriptions", "Subscriptions of all sessions",
                         "parleyctl subscriptions list --client-id phone-1");
  auto lo = std::make_shared<SubscriptionListOpts>();
  CLI::App* list = AddCommand(ctx, g, "list", "List subscriptions (sorted by client id, then filter)",
                              "parleyctl subscriptions list --client-id phone-1",
                              [&ctx, lo] { return SubscriptionsList(ctx, *lo); });
  list->add_option("--client-id", lo->client_id, "only this client's subscriptions");
  lo->page.Add(list);
}

// ---- retained --------------------------------------------------------------------------------------------

struct RetainedListOpts {
  std::string filter;
  Paging page;
};

int RetainedList(Context& ctx, const RetainedListOpts& o) {
  const Json r = ctx.api().Get("/api/v1/retained", ListQuery({{"filter", &o.filter}}, o.page));
  if (ctx.json()) return ctx.PrintJson(r);
  Table t;
  t.Column("TOPIC", Align::kLeft, 60).Column("QOS", Align::kRight).Column("SIZE", Align::kRight);
  t.Column("PAYLOAD", Align::kLeft, 50);
  for (const Json& m : Array(r, "retained")) {
    // payload is null for binary payloads, and lists leave large ones out (payload_base64 too).
    const Json* p = Field(m, {"payload"});
    const std::string payload = p && p->is_string()            ? p->get<std::string>()
                                : Field(m, {"payload_base64"}) ? "<binary>"
                                                               : "<not shown: large>";
    t.Row({Text(m, {"topic"}), IntText(m, {"qos"}), BytesText(m, "payload_bytes"), payload});
  }
  PrintTable(std::cout, t, "retained messages");
  NoteNext(ctx, r, "retained list");
  return kExitOk;
}

int RetainedGet(Context& ctx, const std::string& topic) {
  const Json r = ctx.api().Get("/api/v1/retained/message", {{"topic", topic}});
  if (ctx.json()) return ctx.PrintJson(r);
  const Json& m = Object(r, "retained");
  KeyValues kv;
  kv.Add("topic", Text(m, {"topic"}));
  kv.Add("qos", IntText(m, {"qos"}));
  kv.Add("payload_bytes", IntText(m, {"payload_bytes"}));
  if (const Json* p = Field(m, {"payload"}); p && p->is_string()) {
    kv.Add("payload", p->get<std::string>());
  } else {
    kv.Add("payload_base64", Text(m, {"payload_base64"}, "-"));
  }
  kv.Render(std::cout);
  return kExitOk;
}

int RetainedDelete(Context& ctx, const std::string& topic) {
  const Json r = ctx.api().Delete("/api/v1/retained/message", {{"topic", topic}});
  if (ctx.json()) return ctx.PrintJson(r);
  ctx.Say("deleted the retained message of " + Sanitize(topic));
  return kExitOk;
}

void AddRetained(Context& ctx, CLI::App& app) {
  CLI::App* g = AddGroup(&app, "retained", "Retained messages: list, get, delete",
                         "parleyctl retained list --filter 'sensors/#'");

  auto lo = std::make_shared<RetainedListOpts>();
  CLI::App* list = AddCommand(ctx, g, "list", "List retained messages whose topic matches a filter",
                              "parleyctl retained list --filter 'sensors/+/temp'",
                              [&ctx, lo] { return RetainedList(ctx, *lo); });
  list->add_option("--filter", lo->filter, "an MQTT topic filter (default #)");
  lo->page.Add(list);

  auto topic = std::make_shared<std::string>();
  CLI::App* get =
      AddCommand(ctx, g, "get", "Show one retained message with its whole payload",
                 "parleyctl retained get sensors/1/temp", [&ctx, topic] { return RetainedGet(ctx, *topic); });
  get->add_option("TOPIC", *topic, "the topic (exact, no wildcards)")->required();

  auto del_topic = std::make_shared<std::string>();
  CLI::App* del = AddCommand(ctx, g, "delete", "Clear the retained message of a topic (on disk too)",
                             "parleyctl retained delete sensors/1/temp",
                             [&ctx, del_topic] { return RetainedDelete(ctx, *del_topic); });
  del->add_option("TOPIC", *del_topic, "the topic (exact, no wildcards)")->required();
}

}  // namespace

void AddClientCommands(Context& ctx, CLI::App& app) {
  AddClients(ctx, app);
  AddSessions(ctx, app);
  AddSubscriptions(ctx, app);
  AddRetained(ctx, app);
}

}  // namespace parley::ctl
