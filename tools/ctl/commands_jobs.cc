// backup, compact, jobs (docs/admin-api.md, "Jobs") and the offline restore (restore.h).
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "tools/ctl/context.h"
#include "tools/ctl/json_util.h"
#include "tools/ctl/progress.h"
#include "tools/ctl/render.h"
#include "tools/ctl/restore.h"

namespace parley::ctl {
namespace {

using Align = Table::Align;
constexpr auto kPollInterval = std::chrono::milliseconds(200);

// Starts a job with POST `path`, polls it every 200 ms until it is no longer running (drawing its progress on
// a terminal), then prints the final {"job": ...} (--json) or one summary line. A failed job is exit 1.
int RunJob(Context& ctx, const std::string& path, const Json& body) {
  Json last = ctx.api().Post(path, body);
  const std::string id = Text(Object(last, "job"), {"id"});
  if (id.empty()) throw CtlError(kExitFailed, "the server started no job (no job id in its answer)");
  ProgressLine line(ProgressLine::ForStderr(ctx.quiet(), ctx.json()));
  while (Text(Object(last, "job"), {"state"}) == "running") {
    line.Update(JobProgressText(Object(last, "job")), true);
    std::this_thread::sleep_for(kPollInterval);
    last = ctx.api().Get("/api/v1/jobs/" + Escape(id));
  }
  line.Finish();
  const Json& job = Object(last, "job");
  const bool failed = Text(job, {"state"}) != "done";
  if (ctx.json()) {
    ctx.PrintJson(last);
  } else if (!failed) {
    ctx.Say(JobSummaryText(job));
  }
  if (failed) throw CtlError(kExitFailed, JobSummaryText(job));
  return kExitOk;
}

int Backup(Context& ctx, const std::string& dir) {
  // The broker writes the backup. A relative dir is made absolute here, for the usual case of parleyctl
  // running on the broker's machine (the broker's own current dir is nothing the operator can see).
  const std::string abs = std::filesystem::absolute(dir).lexically_normal().string();
  return RunJob(ctx, "/api/v1/backup", Json{{"dir", abs}});
}

std::string Took(const Json& job, int64_t now) {
  const auto start = Int(job, {"started_at_ms"});
  if (!start) return "-";
  return HumanDuration((Int(job, {"finished_at_ms"}).value_or(now) - *start) / 1000);
}

int Jobs(Context& ctx, const std::string& id) {
  if (!id.empty()) {
    const Json r = ctx.api().Get("/api/v1/jobs/" + Escape(id));
    if (ctx.json()) return ctx.PrintJson(r);
    PrintObject(std::cout, Object(r, "job"));
    return kExitOk;
  }
  const Json r = ctx.api().Get("/api/v1/jobs");
  if (ctx.json()) return ctx.PrintJson(r);
  const int64_t now = NowMs();
  Table t;
  t.Column("ID", Align::kRight).Column("KIND").Column("STATE").Column("PHASE").Column("PROGRESS");
  t.Column("STARTED").Column("TOOK").Column("ERROR", Align::kLeft, 60);
  for (const Json& j : Array(r, "jobs")) {
    const auto done = Int(j, {"done"});
    const auto total = Int(j, {"total"}).value_or(0);
    const auto started = Int(j, {"started_at_ms"});
    t.Row({Text(j, {"id"}), Text(j, {"kind"}), Text(j, {"state"}), Text(j, {"phase"}, "-"),
           done ? ProgressText(*done, total > 0 ? total : 0, Text(j, {"unit"})) : "-",
           started ? RelativeTime(*started, now) : "-", Took(j, now), JobErrorText(j)});
  }
  PrintTable(std::cout, t, "jobs");
  return kExitOk;
}

int RestoreCommand(Context& ctx, const RestoreOptions& o) {
  ProgressLine line(ProgressLine::ForStderr(ctx.quiet(), ctx.json()));
  const RestoreResult r = Restore(o, [&](std::string_view phase, uint64_t done, uint64_t total) {
    line.Update("restore  " + std::string(phase) + "  " + ProgressText(done, total, "bytes"));
  });
  line.Finish();
  const Manifest& m = r.manifest;
  if (ctx.json()) {
    return ctx.PrintJson(Json{{"restored", true},
                              {"backup_dir", o.backup_dir},
                              {"data_dir", o.data_dir},
                              {"files", m.files.size()},
                              {"bytes", m.total_bytes},
                              {"created_at_ms", m.created_at_ms},
                              {"version", m.version}});
  }
  std::string text = "restored " + std::to_string(m.files.size()) + " files (" + HumanBytes(m.total_bytes) +
                     ") into " + o.data_dir;
  if (m.created_at_ms > 0) text += "; backup taken " + TimeWithRelative(m.created_at_ms, NowMs());
  if (!m.version.empty()) text += " by parleyd " + m.version;
  ctx.Say(Sanitize(text));
  return kExitOk;
}

}  // namespace

void AddJobCommands(Context& ctx, CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  AddCommand(ctx, &app, "backup",
             "Back up the data (a RocksDB checkpoint plus a manifest) into a new dir, while the broker runs",
             "parleyctl backup /var/backups/parley-$(date +%F)", [&ctx, dir] { return Backup(ctx, *dir); })
      ->add_option("DIR", *dir, "the backup dir (must not exist; relative to the current dir)")
      ->required();

  auto o = std::make_shared<RestoreOptions>();
  CLI::App* restore = AddCommand(
      ctx, &app, "restore",
      "Restore a backup into a data dir, OFFLINE (the broker must be stopped); verifies every file's SHA-256",
      "parleyctl restore /var/backups/parley-2026-11-28 --data-dir /var/lib/parley\n"
      "parleyctl restore /var/backups/parley-2026-11-28 --data-dir /var/lib/parley --force",
      [&ctx, o] { return RestoreCommand(ctx, *o); });
  restore->add_option("BACKUP_DIR", o->backup_dir, "a dir written by parleyctl backup")->required();
  restore->add_option("--data-dir", o->data_dir, "the data dir to restore into (made if missing)")
      ->required();
  restore->add_flag("--force", o->force, "replace the contents of a non-empty data dir");

  AddCommand(ctx, &app, "compact", "Compact the storage (a job; shows progress)", "parleyctl compact",
             [&ctx] { return RunJob(ctx, "/api/v1/compact", Json::object()); });

  auto id = std::make_shared<std::string>();
  AddCommand(ctx, &app, "jobs", "List the last 20 jobs (backups, compactions), or show one",
             "parleyctl jobs\nparleyctl jobs 3", [&ctx, id] { return Jobs(ctx, *id); })
      ->add_option("ID", *id, "a job id: show that job");
}

}  // namespace parley::ctl
