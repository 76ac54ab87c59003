#include "tools/ctl/json_util.h"

#include <cmath>
#include <cstdio>

namespace parley::ctl {
namespace {

const Json& EmptyArray() {
  static const Json kEmpty = Json::array();
  return kEmpty;
}
const Json& EmptyObject() {
  static const Json kEmpty = Json::object();
  return kEmpty;
}

std::string Compact(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Scalar(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return Compact(v);
  if (v.is_number_float()) {
    const double d = v.get<double>();
    char buf[64];
    // Up to 3 decimals without trailing zeros: 81.5, 0.125, 12.
    std::snprintf(buf, sizeof buf, "%.3f", d);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
      while (!s.empty() && s.back() == '0') s.pop_back();
      if (!s.empty() && s.back() == '.') s.pop_back();
    }
    if (!std::isfinite(d)) s = Compact(v);
    return s;
  }
  return Compact(v);
}

}  // namespace

const Json* Field(const Json& j, std::initializer_list<std::string_view> keys) {
  if (!j.is_object()) return nullptr;
  for (std::string_view k : keys) {
    auto it = j.find(std::string(k));
    if (it != j.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

std::string Text(const Json& value) {
  if (value.is_null()) return "";
  if (value.is_array()) {
    bool scalars = true;
    for (const auto& x : value) scalars = scalars && !x.is_structured();
    if (!scalars) return Compact(value);
    std::string out;
    for (const auto& x : value) {
      if (!out.empty()) out += ", ";
      out += Scalar(x);
    }
    return out;
  }
  if (value.is_object()) return Compact(value);
  return Scalar(value);
}

std::string Text(const Json& j, std::initializer_list<std::string_view> keys, std::string_view missing) {
  const Json* f = Field(j, keys);
  return f ? Text(*f) : std::string(missing);
}

std::optional<int64_t> Int(const Json& j, std::initializer_list<std::string_view> keys) {
  const Json* f = Field(j, keys);
  if (!f) return std::nullopt;
  if (f->is_number_integer()) return f->get<int64_t>();
  if (f->is_number_unsigned()) return static_cast<int64_t>(f->get<uint64_t>());
  if (f->is_number_float()) return static_cast<int64_t>(f->get<double>());
  if (f->is_string()) {
    const std::string& s = f->get_ref<const std::string&>();
    if (s.empty() || s.size() > 19) return std::nullopt;
    int64_t v = 0;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == s.size()) return std::nullopt;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return s[0] == '-' ? -v : v;
  }
  return std::nullopt;
}

std::optional<bool> Bool(const Json& j, std::initializer_list<std::string_view> keys) {
  const Json* f = Field(j, keys);
  if (!f || !f->is_boolean()) return std::nullopt;
  return f->get<bool>();
}

std::string YesNo(const Json& j, std::initializer_list<std::string_view> keys, std::string_view missing) {
  auto b = Bool(j, keys);
  return b ? (*b ? "yes" : "no") : std::string(missing);
}

const Json& Get(const Json& j, std::string_view key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(std::string(key));
  return it == j.end() ? kNull : *it;
}

const Json& Array(const Json& j, std::string_view key) {
  const Json* f = Field(j, {key});
  return f && f->is_array() ? *f : EmptyArray();
}

const Json& Object(const Json& j, std::string_view key) {
  const Json* f = Field(j, {key});
  return f && f->is_object() ? *f : EmptyObject();
}

std::string IntText(const Json& j, std::initializer_list<std::string_view> keys, std::string_view missing) {
  auto v = Int(j, keys);
  return v ? std::to_string(*v) : std::string(missing);
}

std::string Pretty(const Json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace parley::ctl
