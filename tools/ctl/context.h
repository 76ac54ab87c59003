// What every parleyctl command shares: the global options, the API client (made on first use), output
// helpers, and the helpers that declare commands on the CLI11 tree.
//
// How a command runs: parsing the command line only records which command was chosen (its CLI11 callback
// stores `Context::action`); main runs the action after parsing has fully succeeded. So every parse error
// is exit 2 before any request is sent, and a command's failures (CtlError) are never mistaken for parse
// errors.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tools/ctl/api.h"

namespace parley::ctl {

struct GlobalOptions {
  std::string url;         // --url; "" = $PARLEY_ADMIN_URL or http://127.0.0.1:8080
  std::string token;       // --token
  std::string token_file;  // --token-file
  std::string cacert;      // --cacert
  bool insecure = false;   // --insecure
  double timeout_s = 10;   // --timeout
  bool json = false;       // --json
  bool quiet = false;      // -q / --quiet
};

// Looks up an environment variable (std::getenv in the program; a map in tests).
using EnvLookup = std::function<const char*(const char*)>;

// The admin URL: --url, else $PARLEY_ADMIN_URL, else http://127.0.0.1:8080.
std::string ResolveUrl(const GlobalOptions& o, const EnvLookup& env);

// The bearer token, first found of: --token; the file --token-file; $PARLEY_ADMIN_TOKEN; the file
// $PARLEY_ADMIN_TOKEN_FILE; ./data/admin.token; /var/lib/parley/admin.token ("" if none). A token file's
// first line, trimmed, is the token. A file named by an option or variable that cannot be read is a usage
// error (CtlError, exit 2); the two default locations are only used when they exist.
std::string ResolveToken(const GlobalOptions& o, const EnvLookup& env);

// The first line of `path`, trimmed of spaces, tabs and CR. Throws CtlError (exit 2) if it cannot be read.
std::string ReadTokenFile(const std::string& path);

class Context {
 public:
  GlobalOptions opts;
  std::function<int()> action;  // the chosen command; set while parsing, run by main

  // The API client, built on first use from the global options (URL, token, TLS, timeout).
  Api& api();

  bool json() const { return opts.json; }
  bool quiet() const { return opts.quiet; }

  // --json output: the response, pretty, on stdout. Returns kExitOk so commands can `return PrintJson(r)`.
  int PrintJson(const Json& j) const;
  // A confirmation line on stdout ("kicked phone-1"), unless --quiet.
  void Say(std::string_view line) const;
  // A note on stderr ("more results: ..."), unless --quiet.
  void Note(std::string_view line) const;

 private:
  std::unique_ptr<Api> api_;
};

// Declares a command `name` under `parent` with a one-line description and an example for --help (several
// examples: one per line). `run` becomes ctx.action when the command is chosen.
CLI::App* AddCommand(Context& ctx, CLI::App* parent, const std::string& name, const std::string& description,
                     const std::string& example, std::function<int()> run);

// Declares a group of commands (`clients`, `users`...): it needs one of its subcommands.
CLI::App* AddGroup(CLI::App* parent, const std::string& name, const std::string& description,
                   const std::string& example);

// Each commands_*.cc adds its commands to the root.
void AddClientCommands(Context& ctx, CLI::App& app);  // clients, sessions, subscriptions, retained
void AddUserCommands(Context& ctx, CLI::App& app);    // users, bans
void AddImCommands(Context& ctx, CLI::App& app);      // conv, msg
void AddOpsCommands(Context& ctx, CLI::App& app);     // status, metrics, config, log-level, alerts, drain
void AddJobCommands(Context& ctx, CLI::App& app);     // backup, compact, jobs, restore

}  // namespace parley::ctl
