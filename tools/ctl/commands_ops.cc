// status, metrics, config, log-level, alerts, drain (docs/admin-api.md).
#include <iostream>
#include <memory>
#include <sstream>

#include "tools/ctl/context.h"
#include "tools/ctl/json_util.h"
#include "tools/ctl/render.h"

namespace parley::ctl {
namespace {

using Align = Table::Align;

int Status(Context& ctx) {
  const Json r = ctx.api().Get("/api/v1/status");
  if (ctx.json()) return ctx.PrintJson(r);
  Json scalars = r.is_object() ? r : Json::object();
  scalars.erase("listeners");
  PrintObject(std::cout, scalars);
  const Json& listeners = Array(r, "listeners");
  if (listeners.empty()) return kExitOk;
  Table t;
  t.Column("LISTENER").Column("PROTOCOL").Column("BIND").Column("PORT", Align::kRight);
  t.Column("CONNECTIONS", Align::kRight);
  for (const Json& l : listeners) {
    t.Row({Text(l, {"name"}), Text(l, {"protocol"}), Text(l, {"bind"}), IntText(l, {"port"}),
           IntText(l, {"connections"})});
  }
  std::cout << '\n';
  t.Render(std::cout);
  return kExitOk;
}

// The labels of a sample as {a="x",b="y"}, or "" when there are none.
std::string Labels(const Json& sample) {
  const Json& labels = Object(sample, "labels");
  std::string s;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    s += (s.empty() ? "{" : ",") + it.key() + "=\"" + Text(it.value()) + "\"";
  }
  return s.empty() ? s : s + "}";
}

// Keeps the lines of Prometheus text whose metric (sample name, or the name after # HELP / # TYPE) starts
// with `prefix`.
std::string FilterPrometheus(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    std::string_view name = line;
    if (name.rfind("# HELP ", 0) == 0 || name.rfind("# TYPE ", 0) == 0)
      name.remove_prefix(7);
    else if (!name.empty() && name[0] == '#')
      continue;
    if (name.rfind(prefix, 0) == 0) out += line + "\n";
  }
  return out;
}

struct MetricsOpts {
  std::string prefix;
  bool raw = false;
};

int Metrics(Context& ctx, const MetricsOpts& o) {
  if (o.raw) {
    const std::string text = ctx.api().GetText("/metrics");
    std::cout << (o.prefix.empty() ? text : FilterPrometheus(text, o.prefix));
    return kExitOk;
  }
  Api::Query q;
  if (!o.prefix.empty()) q.emplace_back("prefix", o.prefix);
  const Json r = ctx.api().Get("/api/v1/metrics", q);
  if (ctx.json()) return ctx.PrintJson(r);
  Table t;
  t.Column("METRIC", Align::kLeft, 90).Column("TYPE").Column("VALUE", Align::kRight);
  for (const Json& m : Array(r, "metrics")) {
    const std::string name = Text(m, {"name"});
    const std::string type = Text(m, {"type"});
    for (const Json& s : Array(m, "samples")) t.Row({name + Labels(s), type, Text(s, {"value"})});
    for (const Json& h : Array(m, "histograms")) {
      t.Row({name + Labels(h), type,
             "count " + Text(h, {"count"}) + "  sum " + Text(h, {"sum"}) + "  p50 " + Text(h, {"p50"}, "-") +
                 "  p99 " + Text(h, {"p99"}, "-")});
    }
  }
  PrintTable(std::cout, t, "metrics");
  return kExitOk;
}

// A config error or warning: a string, or an object such as {"key", "message"} / {"line", "message"}.
std::string Problem(const Json& p) {
  if (!p.is_object()) return Text(p);
  std::string where = Text(p, {"key", "path"});
  if (const std::string line = Text(p, {"line"}); !line.empty())
    where += (where.empty() ? "line " : ", line ") + line;
  const std::string msg = Text(p, {"message", "error"}, Text(p));
  return where.empty() ? msg : where + ": " + msg;
}

void PrintProblems(std::ostream& out, const Json& r) {
  for (const Json& e : Array(r, "errors")) out << "error: " << Sanitize(Problem(e)) << '\n';
  for (const Json& w : Array(r, "warnings")) out << "warning: " << Sanitize(Problem(w)) << '\n';
}

// config check / reload. Both answer with a report, as 200 when the file is valid and as 422 when it is not
// (docs/admin-api.md, Configuration); a report with errors is exit 1.
int ConfigReport(Context& ctx, bool check) {
  const Json empty = Json::object();
  const Api::Response resp = check ? ctx.api().Call("GET", "/api/v1/config/check", {}, nullptr, false)
                                   : ctx.api().Call("POST", "/api/v1/config/reload", {}, &empty, false);
  const bool http_ok = resp.status >= 200 && resp.status <= 299;
  if (!http_ok && resp.status != 422) throw ErrorFromResponse(resp.status, resp.raw);
  const Json& r = resp.body;
  const bool ok = http_ok && Bool(r, {"ok"}).value_or(true) && Array(r, "errors").empty();
  if (ctx.json()) {
    ctx.PrintJson(r);
  } else if (check) {
    std::cout << (ok ? "configuration OK: " : "configuration has errors: ") << Sanitize(Text(r, {"file"}))
              << '\n';
    PrintProblems(std::cout, r);
    const Json& changes = Array(r, "changes");
    if (!changes.empty()) {
      Table t;
      t.Column("CHANGED KEY").Column("APPLIED BY");
      for (const Json& c : changes) {
        t.Row({Text(c, {"key"}), Bool(c, {"reloadable"}).value_or(false) ? "reload" : "restart"});
      }
      std::cout << '\n';
      t.Render(std::cout);
    } else if (ok) {
      std::cout << "no changes from the running configuration\n";
    }
  } else {
    if (ok) {
      const std::string applied = Text(r, {"applied"});
      ctx.Say("reloaded; applied: " + (applied.empty() ? std::string("nothing changed") : Sanitize(applied)));
      if (const std::string rr = Text(r, {"restart_required"}); !rr.empty()) {
        std::cout << "needs a restart to apply: " << Sanitize(rr) << '\n';
      }
    }
    PrintProblems(ok ? std::cout : std::cerr, r);
  }
  if (ok) return kExitOk;
  if (Field(r, {"error"})) throw ErrorFromResponse(resp.status, resp.raw);
  throw CtlError(kExitFailed, "the configuration has errors; nothing was applied (HTTP " +
                                  std::to_string(resp.status) + ")");
}

int LogLevel(Context& ctx, const std::string& level) {
  const Json r = level.empty() ? ctx.api().Get("/api/v1/log/level")
                               : ctx.api().Put("/api/v1/log/level", Json{{"level", level}});
  if (ctx.json()) return ctx.PrintJson(r);
  std::cout << Sanitize(Text(r, {"level"}, "?")) << '\n';
  return kExitOk;
}

int Alerts(Context& ctx) {
  const Json r = ctx.api().Get("/api/v1/alerts");
  if (ctx.json()) return ctx.PrintJson(r);
  const int64_t now = NowMs();
  Table t;
  t.Column("RULE", Align::kLeft, 32).Column("STATE").Column("CONDITION", Align::kLeft, 70);
  t.Column("VALUE", Align::kRight).Column("SINCE");
  for (const Json& a : Array(r, "rules")) {
    // "rate(parley_disconnects_total) > 50 for 30s"
    std::string cond = Text(a, {"function"}, "value") + "(" + Text(a, {"metric"}) + ") " + Text(a, {"op"}) +
                       " " + Text(a, {"threshold"});
    if (const auto f = Int(a, {"for_seconds"}); f && *f > 0) cond += " for " + HumanDuration(*f);
    const auto since = Int(a, {"since_ms"});
    t.Row({Text(a, {"name"}), Text(a, {"state"}), cond, Text(a, {"value"}, "-"),
           since ? RelativeTime(*since, now) : "-"});
  }
  PrintTable(std::cout, t, "alert rules");
  if (const Json* w = Field(r, {"webhook"}); w && w->is_object()) {
    std::cout << "\nwebhook: " << (Bool(*w, {"url_set"}).value_or(false) ? "set" : "not set") << ", sent "
              << IntText(*w, {"sent"}, "0") << ", failed " << IntText(*w, {"failed"}, "0") << ", breaker "
              << Sanitize(Text(*w, {"breaker"}, "?")) << '\n';
  }
  return kExitOk;
}

int PrintDrain(Context& ctx, const Json& r) {
  if (ctx.json()) return ctx.PrintJson(r);
  PrintObject(std::cout, Object(r, "drain"));
  return kExitOk;
}

struct DrainOpts {
  int rate = 0;
  std::string server_reference;
};

int DrainStart(Context& ctx, const DrainOpts& o) {
  Json body{{"rate", o.rate}};
  if (!o.server_reference.empty()) body["server_reference"] = o.server_reference;
  return PrintDrain(ctx, ctx.api().Post("/api/v1/drain", body));
}

}  // namespace

void AddOpsCommands(Context& ctx, CLI::App& app) {
  AddCommand(ctx, &app, "status", "Show the broker's version, uptime, counts, storage and listeners",
             "parleyctl status", [&ctx] { return Status(ctx); });

  auto mo = std::make_shared<MetricsOpts>();
  CLI::App* metrics =
      AddCommand(ctx, &app, "metrics", "Show metrics as a table, or the raw Prometheus text of /metrics",
                 "parleyctl metrics --prefix parley_im_\nparleyctl metrics --raw",
                 [&ctx, mo] { return Metrics(ctx, *mo); });
  metrics->add_option("--prefix", mo->prefix, "only metric families whose name starts with this");
  metrics->add_flag("--raw", mo->raw, "print /metrics as is (Prometheus text format; also with --json)");

  CLI::App* config = AddGroup(&app, "config", "Check or reload the broker's configuration file",
                              "parleyctl config check && parleyctl config reload");
  AddCommand(
      ctx, config, "check",
      "Re-read the configuration file and report errors and changes, applying nothing (exit 1 on errors)",
      "parleyctl config check", [&ctx] { return ConfigReport(ctx, true); });
  AddCommand(
      ctx, config, "reload",
      "Re-read the configuration file and apply what can change while running (as SIGHUP; exit 1 on errors)",
      "parleyctl config reload", [&ctx] { return ConfigReport(ctx, false); });

  auto level = std::make_shared<std::string>();
  AddCommand(ctx, &app, "log-level", "Show the log level, or set it until the next reload or restart",
             "parleyctl log-level\nparleyctl log-level debug",
             [&ctx, level] { return LogLevel(ctx, *level); })
      ->add_option("LEVEL", *level, "trace, debug, info, warn, error, critical or off");

  AddCommand(ctx, &app, "alerts", "Show the alert rules, their state, and the webhook's", "parleyctl alerts",
             [&ctx] { return Alerts(ctx); });

  CLI::App* drain =
      AddGroup(&app, "drain", "Move clients off this broker: refuse new connections, disconnect at a rate",
               "parleyctl drain start --rate 100 --server-reference node-b:1883");
  auto dopt = std::make_shared<DrainOpts>();
  CLI::App* start = AddCommand(
      ctx, drain, "start",
      "Start draining: new CONNECTs are refused, connected clients disconnected at --rate per second",
      "parleyctl drain start --rate 100 --server-reference node-b:1883",
      [&ctx, dopt] { return DrainStart(ctx, *dopt); });
  start->add_option("--rate", dopt->rate, "clients disconnected per second")
      ->required()
      ->check(CLI::PositiveNumber);
  start->add_option("--server-reference", dopt->server_reference,
                    "HOST:PORT sent to MQTT 5 clients (DISCONNECT 0x9C Use another server)");
  AddCommand(ctx, drain, "status", "Show the drain's progress", "parleyctl drain status",
             [&ctx] { return PrintDrain(ctx, ctx.api().Get("/api/v1/drain")); });
  AddCommand(ctx, drain, "stop", "Stop draining; new connections are accepted again", "parleyctl drain stop",
             [&ctx] { return PrintDrain(ctx, ctx.api().Delete("/api/v1/drain")); });
}

}  // namespace parley::ctl
