// parleyctl: the admin CLI. A client of parleyd's admin HTTP API (docs/admin-api.md) — it uses no broker
// code — plus the offline `restore`. The command tree is declared in commands_*.cc; this file has the
// global options, the exit codes and the one place errors are printed. See tools/README.md.
#include <curl/curl.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "tools/ctl/api.h"
#include "tools/ctl/context.h"

namespace {

constexpr const char* kFooter =
    R"(Each command has --help with an example, e.g. parleyctl clients kick --help.

Environment: PARLEY_ADMIN_URL, PARLEY_ADMIN_TOKEN, PARLEY_ADMIN_TOKEN_FILE (options win over them).
Without a token, parleyctl reads ./data/admin.token, then /var/lib/parley/admin.token.

Exit codes:
  0  success
  1  the operation failed (other server errors, a failed job, config check found errors, restore failed)
  2  usage error (bad command line, unreadable token file)
  3  cannot reach the admin API (connection refused, timeout, TLS failure)
  4  unauthorized (HTTP 401: wrong or missing token)
  5  not found (HTTP 404)
  6  conflict (HTTP 409; restore: the data dir is in use or not empty))";

}  // namespace

int main(int argc, char** argv) {
  using namespace parley::ctl;
  curl_global_init(CURL_GLOBAL_DEFAULT);

  Context ctx;
  CLI::App app{"parleyctl: administer a Parley broker through its admin API"};
  app.name("parleyctl");
  // Global options may also follow the command: `parleyctl clients list --json`.
  app.fallthrough();
  app.set_version_flag("--version", "parleyctl " PARLEY_VERSION);
  // A repeated global option takes its last value, so scripts can append overrides to a fixed command line.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  GlobalOptions& g = ctx.opts;
  app.add_option("--url", g.url, "admin API URL (default http://127.0.0.1:8080, env PARLEY_ADMIN_URL)");
  app.add_option("--token", g.token, "bearer token (env PARLEY_ADMIN_TOKEN; visible in ps: prefer a file)");
  app.add_option("--token-file", g.token_file,
                 "file whose first line is the token (env PARLEY_ADMIN_TOKEN_FILE)");
  app.add_option("--cacert", g.cacert, "CA certificate file to verify an https admin API with");
  app.add_flag("--insecure", g.insecure, "https without verifying the server's certificate");
  app.add_option("--timeout", g.timeout_s, "seconds per request (default 10)")->check(CLI::PositiveNumber);
  app.add_flag("--json", g.json, "print the server's JSON response (pretty) instead of tables");
  app.add_flag("-q,--quiet", g.quiet, "no confirmations, notes or progress; data and errors still print");

  app.option_defaults()->multi_option_policy(
      CLI::MultiOptionPolicy::Throw);  // commands: a repeat is an error

  AddOpsCommands(ctx, app);
  AddClientCommands(ctx, app);
  AddUserCommands(ctx, app);
  AddImCommands(ctx, app);
  AddJobCommands(ctx, app);
  app.require_subcommand(1, 1);
  app.footer(kFooter);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0; every real parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (!ctx.action) {  // cannot happen: every leaf command sets one, and a command is required
    std::cerr << app.help();
    return kExitUsage;
  }
  try {
    return ctx.action();
  } catch (const CtlError& e) {
    std::cerr << "parleyctl: " << e.what() << '\n';
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "parleyctl: " << e.what() << '\n';
    return kExitFailed;
  }
}
