#include "tools/ctl/context.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>

#include "tools/ctl/json_util.h"

namespace parley::ctl {
namespace {

constexpr const char* kDefaultUrl = "http://127.0.0.1:8080";
constexpr const char* kDefaultTokenFiles[] = {"./data/admin.token", "/var/lib/parley/admin.token"};

bool IsFile(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

std::string Env(const EnvLookup& env, const char* name) {
  const char* v = env ? env(name) : nullptr;
  return v ? std::string(v) : std::string();
}

// "Example:" (or "Examples:") and each line of `example` indented under it.
std::string ExampleFooter(const std::string& example) {
  std::string body;
  size_t start = 0, lines = 0;
  while (true) {
    const size_t nl = example.find('\n', start);
    body += "\n  " + example.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    ++lines;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return (lines > 1 ? "Examples:" : "Example:") + body;
}

}  // namespace

std::string ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw CtlError(kExitUsage, "cannot read the token file '" + path + "': " + std::strerror(errno));
  }
  std::string line;
  std::getline(in, line);
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!line.empty() && is_space(line.back())) line.pop_back();
  size_t start = 0;
  while (start < line.size() && is_space(line[start])) ++start;
  return line.substr(start);
}

std::string ResolveUrl(const GlobalOptions& o, const EnvLookup& env) {
  if (!o.url.empty()) return o.url;
  std::string v = Env(env, "PARLEY_ADMIN_URL");
  return v.empty() ? kDefaultUrl : v;
}

std::string ResolveToken(const GlobalOptions& o, const EnvLookup& env) {
  // Options beat the environment, and within each a token beats a token file.
  if (!o.token.empty()) return o.token;
  if (!o.token_file.empty()) return ReadTokenFile(o.token_file);
  if (std::string t = Env(env, "PARLEY_ADMIN_TOKEN"); !t.empty()) return t;
  if (std::string f = Env(env, "PARLEY_ADMIN_TOKEN_FILE"); !f.empty()) return ReadTokenFile(f);
  for (const char* f : kDefaultTokenFiles) {
    if (IsFile(f)) return ReadTokenFile(f);
  }
  return "";
}

Api& Context::api() {
  if (!api_) {
    HttpOptions h;
    const EnvLookup env = [](const char* n) { return std::getenv(n); };
    h.base_url = ResolveUrl(opts, env);
    if (h.base_url.rfind("http://", 0) != 0 && h.base_url.rfind("https://", 0) != 0) {
      throw CtlError(kExitUsage, "--url must start with http:// or https://: '" + h.base_url + "'");
    }
    h.token = ResolveToken(opts, env);
    if (!opts.cacert.empty() && !IsFile(opts.cacert.c_str())) {
      throw CtlError(kExitUsage, "--cacert: no such file '" + opts.cacert + "'");
    }
    h.cacert = opts.cacert;
    h.insecure = opts.insecure;
    h.timeout_ms = static_cast<long>(std::llround(opts.timeout_s * 1000));
    api_ = std::make_unique<Api>(std::move(h));
  }
  return *api_;
}

int Context::PrintJson(const Json& j) const {
  std::cout << Pretty(j) << '\n';
  return kExitOk;
}

void Context::Say(std::string_view line) const {
  if (!opts.quiet) std::cout << line << '\n';
}

void Context::Note(std::string_view line) const {
  if (!opts.quiet) std::cerr << line << '\n';
}

CLI::App* AddCommand(Context& ctx, CLI::App* parent, const std::string& name, const std::string& description,
                     const std::string& example, std::function<int()> run) {
  CLI::App* c = parent->add_subcommand(name, description);
  c->footer(ExampleFooter(example));
  c->require_subcommand(0, 0);
  c->callback([&ctx, run = std::move(run)] { ctx.action = run; });
  return c;
}

CLI::App* AddGroup(CLI::App* parent, const std::string& name, const std::string& description,
                   const std::string& example) {
  CLI::App* g = parent->add_subcommand(name, description);
  g->footer(ExampleFooter(example));
  g->require_subcommand(1, 1);
  return g;
}

}  // namespace parley::ctl
