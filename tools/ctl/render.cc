#include "tools/ctl/render.h"

#include "tools/ctl/json_util.h"

namespace parley::ctl {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsTimeKey(std::string_view k) {
  // snake_case API fields end in _ms; the IM objects (protobuf JSON) name times *Ts (serverTs, createdTs).
  return EndsWith(k, "_ms") || EndsWith(k, "Ts") || k == "ts";
}

bool IsDurationKey(std::string_view k) {
  return EndsWith(k, "_seconds") || k == "keep_alive" || k == "session_expiry" || k == "expiry_interval";
}

bool IsBytesKey(std::string_view k) {
  return EndsWith(k, "_bytes") || k == "bytes" || EndsWith(k, "Bytes");
}

std::optional<int64_t> AsInt(const Json& v) {
  Json wrap = Json::object();
  wrap["v"] = v;
  return Int(wrap, {"v"});
}

}  // namespace

std::string FormatField(std::string_view key, const Json& value, int64_t now_ms) {
  if (value.is_null()) return "-";
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (IsTimeKey(key)) {
    if (auto ms = AsInt(value); ms && *ms > 0) return TimeWithRelative(*ms, now_ms);
  }
  if (IsDurationKey(key)) {
    if (auto s = AsInt(value)) {
      // MQTT's Session Expiry Interval 0xFFFFFFFF: the session never expires.
      if ((key == "session_expiry" || key == "expiry_interval") && *s == 4294967295LL) return "never";
      return HumanDuration(*s);
    }
  }
  if (IsBytesKey(key)) {
    if (auto b = AsInt(value); b && *b >= 1024)
      return HumanBytes(static_cast<uint64_t>(*b)) + " (" + std::to_string(*b) + ")";
    if (auto b = AsInt(value)) return HumanBytes(static_cast<uint64_t>(*b));
  }
  return Text(value);
}

std::string BytesText(const Json& j, std::string_view key) {
  auto b = Int(j, {key});
  return b && *b >= 0 ? HumanBytes(static_cast<uint64_t>(*b)) : "-";
}

void AddObject(KeyValues& kv, const Json& obj, int64_t now_ms, const std::string& prefix) {
  if (!obj.is_object()) return;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string key = prefix + it.key();
    const Json& v = it.value();
    if (v.is_object() && !v.empty()) {
      AddObject(kv, v, now_ms, key + ".");
    } else if (v.is_array() && !v.empty() && v.front().is_object()) {
      kv.Add(key, std::to_string(v.size()) + (v.size() == 1 ? " entry" : " entries"));
    } else {
      kv.Add(key, FormatField(it.key(), v, now_ms));
    }
  }
}

void PrintObject(std::ostream& out, const Json& obj) {
  KeyValues kv;
  AddObject(kv, obj, NowMs());
  kv.Render(out);
}

void PrintTable(std::ostream& out, const Table& table, std::string_view what) {
  if (table.empty()) {
    out << "no " << what << '\n';
    return;
  }
  table.Render(out);
}

void NoteNext(const Context& ctx, const Json& response, std::string_view command) {
  const Json* next = Field(response, {"next"});
  if (!next) return;
  ctx.Note("more results: parleyctl " + std::string(command) + " --after " + Sanitize(Text(*next)) +
           " (or a higher --limit)");
}

Table SubscriptionsTable(const Json& subscriptions, bool with_client) {
  Table t;
  if (with_client) t.Column("CLIENT ID", Table::Align::kLeft, 40);
  t.Column("FILTER", Table::Align::kLeft, 60)
      .Column("QOS", Table::Align::kRight)
      .Column("SHARE GROUP")
      .Column("OPTIONS");
  for (const Json& s : subscriptions) {
    std::string options;
    auto add = [&](const std::string& o) { options += (options.empty() ? "" : ",") + o; };
    if (Bool(s, {"no_local"}).value_or(false)) add("no-local");
    if (Bool(s, {"retain_as_published"}).value_or(false)) add("retain-as-published");
    if (auto rh = Int(s, {"retain_handling"}); rh && *rh != 0) add("retain-handling=" + std::to_string(*rh));
    if (auto id = Int(s, {"subscription_id"}); id && *id != 0) add("id=" + std::to_string(*id));
    std::vector<std::string> row;
    if (with_client) row.push_back(Text(s, {"client_id"}));
    row.push_back(Text(s, {"filter"}));
    row.push_back(IntText(s, {"qos"}));
    row.push_back(Text(s, {"share_group"}, "-"));
    row.push_back(options.empty() ? "-" : options);
    t.Row(std::move(row));
  }
  return t;
}

}  // namespace parley::ctl
