// Helpers shared by the core tests: a brute-force MQTT topic matcher (the reference the tree and the
// retained store are compared against), sessions and messages.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "broker/api/message.h"
#include "broker/core/session.h"

namespace parley::broker::testing {

inline std::vector<std::string_view> Levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// MQTT 5 section 4.7, written as directly as possible: level by level, '#' matches the parent level
// and everything below, '+' exactly one level (possibly empty), and a topic starting with '$' is not
// matched by a filter starting with a wildcard (4.7.2).
inline bool BruteMatch(std::string_view filter, std::string_view topic) {
  const auto f = Levels(filter);
  const auto t = Levels(topic);
  if (!topic.empty() && topic[0] == '$' && (f[0] == "+" || f[0] == "#")) return false;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // levels 0..i-1 matched, and the topic has at least i of them
    if (i >= t.size()) return false;
    if (f[i] == "+") continue;
    if (f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

inline SessionPtr MakeSession(std::string client_id, bool online = true) {
  static uint64_t next_id = 1000;
  auto s = std::make_shared<Session>(std::move(client_id), next_id++);
  s->online_.store(online);
  return s;
}

inline MessagePtr Msg(std::string topic, std::string payload = "x", uint8_t qos = 0, bool retain = false) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  m->retain = retain;
  return m;
}

}  // namespace parley::broker::testing
