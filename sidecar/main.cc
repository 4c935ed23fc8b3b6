// forkd: argument parsing, wiring, signals — nothing else.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "config/config.h"
#include "tools/cursors_cli.h"
#include "tools/dlq_cli.h"
#include "tools/dry_run_cli.h"
#include "tools/init_cli.h"
#include "tools/keygen_cli.h"
#include "tools/replay_cli.h"
#include "tools/verify_cli.h"
#include "tools/status_cli.h"
#include "transforms/transform.h"
#include "core/crashfs.h"
#include "core/fs.h"
#include "pipeline/pipeline.h"
#include "server.h"
#include "sinks/registry.h"
#include "sources/registry.h"

#ifdef FORK_MIMALLOC
#include <mimalloc.h>
#endif

namespace {

constexpr int kExitConfig = 2;
constexpr const char* kConfigHelp = "Configuration file (default: ./fork.yaml)";

// What serves malloc in this process, asked of the allocator itself: a
// block from malloc is in mimalloc's heap only if mimalloc replaced the C
// library's (sidecar/CMakeLists.txt links it in).
std::string Allocator() {
#ifdef FORK_MIMALLOC
  void* p = std::malloc(64);
  if (p != nullptr) std::memset(p, 0, 64);
  const bool routed = mi_is_in_heap_region(p);
  std::free(p);
  const int v = mi_version();
  return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." +
         std::to_string(v % 10) + (routed ? "" : " (linked, but malloc does not reach it)");
#else
  return "the C library's malloc";
#endif
}

bool Load(const std::string& path, forkd::Config* config,
          std::vector<forkd::ConfigError>* errors) {
  auto lookup = [](std::string_view type) -> const std::vector<forkd::OptionSpec>* {
    const forkd::sinks::SinkType* t = forkd::sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  return forkd::LoadConfig(path, lookup, forkd::sinks::SinkTypeNames(), config, errors,
                           &forkd::sinks::CheckSinkOptions, &forkd::sources::SourceOptionsOf,
                           forkd::sources::SourceTypeNames(),
                           &forkd::sources::CheckSourceOptions);
}

bool Load(const std::string& path, forkd::Config* config) {
  std::vector<forkd::ConfigError> errors;
  if (Load(path, config, &errors)) return true;
  for (const auto& e : errors) std::cerr << e.ToString() << "\n";
  return false;
}

int Run(const std::string& config_path, bool exit_with_parent) {
  if (exit_with_parent) {
    // A supervising process (a dev server, a test) that dies takes forkd
    // with it: SIGTERM, so the log is still drained and closed cleanly.
    const pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) return 0;
  }
  forkd::Config config;
  if (!Load(config_path, &config)) return kExitConfig;

  // Signals go to one thread that waits for them; every other thread
  // (created after this) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  // Test hook: a simulated machine crash (core/crashfs.h) records every
  // change from start-up on; SIGUSR2 pulls the plug.
  forkd::fs::crashfs::EnableFromEnv();
  if (forkd::fs::crashfs::Enabled()) sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  forkd::Server server(std::move(config));
  forkd::Status s = server.Start();
  if (!s.ok()) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }
  // Test hook: faults count the calls made while serving, not at start-up.
  forkd::fs::InjectFaultsFromEnv();
  spdlog::info("forkd {} running with {} ({} destinations; allocator: {})", FORKD_VERSION, config_path,
               server.config().destinations.size(), Allocator());

  std::atomic<bool> done{false};
  std::thread signals([&] {
    const timespec tick{0, 250 * 1000 * 1000};
    while (!done.load()) {
      siginfo_t info;
      const int sig = sigtimedwait(&set, &info, &tick);
      if (done.load()) break;
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server.RequestStop();
      } else if (sig == SIGHUP) {
        // The new file is validated in full first; a bad one changes nothing.
        forkd::Config next;
        std::vector<forkd::ConfigError> errors;
        if (!Load(config_path, &next, &errors)) {
          spdlog::error("SIGHUP: {} has {} error(s); still running the previous configuration",
                        config_path, errors.size());
          for (const auto& e : errors) spdlog::error("  {}", e.ToString());
        } else {
          spdlog::info("SIGHUP: reloading {}", config_path);
          server.Reload(std::move(next));
        }
      } else if (sig == SIGUSR2) {
        forkd::fs::crashfs::PowerOff("SIGUSR2");
      } else {
        server.Tick();
      }
    }
  });
  server.Serve();
  done.store(true);
  pthread_kill(signals.native_handle(), SIGTERM);  // wake it now, not at its next tick
  signals.join();
  return 0;
}

// docs/configuration.md is this text; a test keeps the two equal.
std::string ConfigReference() {
  std::string s =
      "# forkd configuration reference\n\n"
      "Generated by `forkd config-reference` from the option tables in the code; "
      "`forkd check` validates against the same tables. Values may use `${ENV}` or "
      "`${ENV:-default}`. Relative paths resolve against the config file's directory.\n\n"
      "## Top level\n\n" +
      forkd::OptionsMarkdown(forkd::TopLevelOptions()) +
      "\n## `admin`\n\n`admin: 127.0.0.1:8787` is short for `admin: { listen: "
      "127.0.0.1:8787 }`. The token is the first of `token`, the first line of `token_file`, "
      "and `FORK_ADMIN_TOKEN` in the environment of the process reading this file (`forkd "
      "run`, and `forkd dlq` / `forkd cursors` / `forkd replay` / `forkd status`, which send "
      "it). A `listen` "
      "address that is not "
      "loopback (localhost, 127.0.0.0/8, ::1) needs a token. POST endpoints need "
      "`Authorization: Bearer <token>` when one is set; docs/security.md has every rule.\n\n" +
      forkd::OptionsMarkdown(forkd::admin::AdminOptions()) +
      "\n## `http_ingest`\n\n`POST /v1/events` for callers that cannot load the addon (edge "
      "runtimes, platforms without a prebuilt addon): `{payload, destination, options}`, a "
      "JSON array of them, or NDJSON, answered with the receipts once the events are durable "
      "(docs/protocol.md, \"HTTP ingest\"). `http_ingest: 127.0.0.1:8788` is short for "
      "`http_ingest: { listen: 127.0.0.1:8788 }`. The token is the first of `token`, the first "
      "line of `token_file`, and `FORK_INGEST_TOKEN` in forkd's environment; with one, every "
      "request needs `Authorization: Bearer <token>`. A `listen` address that is not loopback "
      "without a token is allowed, with a warning at every start. It speaks plain HTTP: TLS "
      "belongs to a proxy in front (docs/security.md).\n\n" +
      forkd::OptionsMarkdown(forkd::ingest::http::HttpIngestOptions()) +
      "\n## `curve`\n\nCURVE (CurveZMQ) on `listen`: every connection is encrypted, clients "
      "authenticate forkd by its public key (`curveServerKey`), and with `clients` forkd "
      "accepts only the listed client keys. A `listen` other than ipc:// needs it, or "
      "`insecure_tcp: true`. `forkd keygen --out FILE` makes a key pair; docs/security.md "
      "has the steps.\n\n" +
      forkd::OptionsMarkdown(forkd::ingest::CurveOptions()) + "\n## `wal`\n\n" +
      forkd::OptionsMarkdown(forkd::WalOptions()) +
      "\n### `wal.retention`\n\nA segment is kept until every destination's cursor has passed "
      "it, whatever this says; after that it stays as history, for `forkd replay` and for new "
      "destinations with `from: earliest`, until it is `max_age` old or the history outgrows "
      "`max_bytes`. The defaults keep a day, capped at 1 GiB: enough to replay a bad deploy "
      "or backfill a new store the morning after, without a busy forkd filling its disk. "
      "`max_age: 0` deletes a segment as soon as every cursor has passed it. Deletion goes "
      "by whole segments (`segment_bytes`), oldest first; a reload (SIGHUP) applies new "
      "values.\n\n" +
      forkd::OptionsMarkdown(forkd::RetentionOptions()) + "\n## `limits`\n\n" +
      forkd::OptionsMarkdown(forkd::LimitsOptions()) + "\n## `dedupe`\n\n" +
      forkd::OptionsMarkdown(forkd::DedupeOptions()) +
      "\n## `destinations.<name>`\n\nNames are 1-64 letters, digits, `_` or `-`. "
      "Every destination has these keys, plus those of its type.\n\n" +
      forkd::OptionsMarkdown(forkd::DestinationOptions()) + "\n### `batch`\n\n" +
      forkd::OptionsMarkdown(forkd::BatchOptions()) + "\n### `retry`\n\n" +
      forkd::OptionsMarkdown(forkd::RetryOptions()) +
      "\nA failed flush is retried with exponential backoff and full jitter (a random wait "
      "between 0 and min(max, initial x 2^attempt)), or after the Retry-After the store "
      "asked for when that is longer. Records the store refuses as fatal go to dead letters "
      "(a refused batch is split in halves until only the bad records are left).\n"
      "\n### `breaker`\n\n" +
      forkd::OptionsMarkdown(forkd::BreakerOptions()) + "\n### `rate_limit`\n\n" +
      forkd::OptionsMarkdown(forkd::RateLimitOptions()) + "\n### `backlog`\n\n" +
      forkd::OptionsMarkdown(forkd::BacklogOptions());
  s += "\n## `sources.<name>`\n\nWhat feeds the log besides clients. Names are 1-64 "
       "letters, digits, `_` or `-`. Every source has these keys, plus those of its type "
       "(below). Its events go to the destinations in `to`, or, without `to`, where the "
       "routes send them, through ingest like a client's events (limits, idempotency keys, "
       "group commit). Each runs from forkd's start; a reload restarts a source whose "
       "section changed.\n\n" +
       forkd::OptionsMarkdown(forkd::SourceOptions());
  s += "\n## `routes[]`\n\nRoutes are evaluated in order, once, when forkd receives an event; "
       "the destinations they pick are stored with it in the log. An event that names no "
       "destination goes to those of every route whose `when` matches; routes with `also: "
       "true` add theirs even when the caller named some.\n\n" +
       forkd::OptionsMarkdown(forkd::RouteOptions()) + "\n### `rollout`\n\n" +
       forkd::OptionsMarkdown(forkd::RolloutOptions());
  s += "\n## `alerts`\n\nRules over forkd's own signals, evaluated every 250 ms. A rule "
       "fires once when its condition has held for `for`, and resolves once when it stops "
       "holding. Each of these transitions is an event `{alert, state: firing|resolved, signal, "
       "destination, value, threshold, since, at, instance}` that forkd appends to its log and "
       "routes to the `notify` destinations only, where it is delivered like any event "
       "(retries, dead letters). A rule may not name a notify destination, and a rule without "
       "`destination` skips them, so an alert is never about the destination that carries it. "
       "A reload (SIGHUP) applies changed rules; an unchanged rule keeps its state.\n\n" +
       forkd::OptionsMarkdown(forkd::alerts::AlertsOptions()) + "\n### `rules[]`\n\n" +
       forkd::OptionsMarkdown(forkd::alerts::AlertRuleOptions()) + "\n### Signals\n\n" +
       forkd::alerts::SignalsMarkdown();
  s += "\n## `verify`\n\nforkd runs `forkd verify` itself every `every` (the first run 10 s "
       "after it starts, or sooner for a shorter `every`): each destination's store compared "
       "with what the retained log says it must hold. The last result is `verify` in "
       "/api/status, the `fork_verify_*` series in /metrics, and the `verify_differences` "
       "alert signal (missing + unexpected + differing rows). A run never repairs; "
       "`forkd verify --repair` does.\n\n" +
       forkd::OptionsMarkdown(forkd::verify::ScheduleOptions());
  s += "\n## Transform steps\n\nA destination's `transforms`, a template under `transforms:`, "
       "a route's `transform` and a call's `transform` are lists of steps, each a one-key map "
       "(or the name of a template). For one record they run in this order: the call's "
       "`timestamp`, the route's templates, the call's templates, then the destination's own "
       "list. Field paths look like `user.address.city`, `items[0].sku` or `[\"odd key\"]`; "
       "expressions are described in docs/transforms.md.\n";
  for (const auto& d : forkd::transforms::StepDocs()) {
    s += "\n### `" + std::string(d.name) + "`\n\n" + std::string(d.form) + ". " +
         std::string(d.summary) + "\n";
    if (d.options) s += "\n" + forkd::OptionsMarkdown(*d.options);
  }
  for (const auto& t : forkd::sinks::SinkTypes()) {
    s += "\n## Destination type `" + std::string(t.name) + "`\n\n";
    s += t.options().empty() ? "No options of its own.\n" : forkd::OptionsMarkdown(t.options());
  }
  for (const auto& t : forkd::sources::SourceTypes()) {
    s += "\n## Source type `" + std::string(t.name) + "`\n\n";
    s += t.options().empty() ? "No options of its own.\n" : forkd::OptionsMarkdown(t.options());
  }
  return s;
}

int Check(const std::string& config_path) {
  forkd::Config config;
  if (!Load(config_path, &config)) return kExitConfig;
  // What the stores say, where they can be read without a server.
  std::vector<std::string> notes;
  bool ok = true;
  for (const auto& d : config.destinations) {
    const forkd::sinks::SinkType* t = forkd::sinks::FindSinkType(d.type);
    if (t == nullptr || t->inspect == nullptr) continue;
    std::string note, error;
    forkd::sinks::SinkContext ctx{&config, &d};
    if (!t->inspect(ctx, &note, &error)) {
      std::cerr << forkd::ConfigError{config_path, d.mark, "destinations." + d.name + ": " + error}
                       .ToString()
                << "\n";
      ok = false;
    } else if (!note.empty()) {
      notes.push_back("  " + d.name + ": " + note);
    }
  }
  if (!ok) return kExitConfig;
  std::cout << config_path << ": ok (" << config.destinations.size() << " destinations)\n";
  for (const auto& n : notes) std::cout << n << "\n";
  // Settings that are valid but do nothing here: said, not refused.
  for (const auto& d : config.destinations) {
    const forkd::sinks::SinkType* t = forkd::sinks::FindSinkType(d.type);
    if (t == nullptr || d.batch_in_flight <= 1) continue;
    const std::unique_ptr<forkd::sinks::Sink> sink = t->create({&config, &d});
    const std::string why = forkd::pipeline::InFlightIgnored(d, *sink);
    if (why.empty()) continue;
    std::cerr << forkd::ConfigError{config_path, d.mark,
                                    "warning: destinations." + d.name + ".batch.in_flight " +
                                        std::to_string(d.batch_in_flight) + " has no effect: " +
                                        why + "; one batch at a time"}
                     .ToString()
              << "\n";
  }
  if (!config.http_ingest.warning.empty()) {
    std::cerr << forkd::ConfigError{config_path, config.http_ingest.mark,
                                    "warning: " + config.http_ingest.warning}
                     .ToString()
              << "\n";
  }
  return 0;
}

int Explain(const std::string& config_path, const forkd::tools::ExplainArgs& args) {
  forkd::Config config;
  if (!Load(config_path, &config)) return kExitConfig;
  return forkd::tools::Explain(config, args);
}

int Test(const std::string& config_path, const std::string& cases) {
  forkd::Config config;
  if (!Load(config_path, &config)) return kExitConfig;
  return forkd::tools::RunCases(config, cases);
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("forkd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  CLI::App app{"forkd: durable routing of application events to every store that needs them"};
  app.require_subcommand(1);
  std::string level = "info";
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  std::string config_path;
  CLI::App* run = app.add_subcommand("run", "Run in the foreground until SIGTERM");
  run->add_option("-c,--config", config_path, kConfigHelp);
  bool exit_with_parent = false;
  run->add_flag("--exit-with-parent", exit_with_parent,
                "Stop (as on SIGTERM) when the process that started forkd exits");
  CLI::App* check = app.add_subcommand("check", "Validate a configuration file (exit 2 if not)");
  check->add_option("-c,--config", config_path, kConfigHelp);
  forkd::tools::ExplainArgs explain_args;
  CLI::App* explain = app.add_subcommand(
      "explain", "Dry run: the destinations an event reaches and each one's records, as JSON");
  explain->add_option("-c,--config", config_path, kConfigHelp);
  explain->add_option("--payload", explain_args.payload_json, "The event, as a JSON object")
      ->required();
  explain->add_option("-d,--destination", explain_args.destinations,
                      "Destination named by the caller (repeatable); routes decide when none");
  explain->add_option("--options", explain_args.options_json,
                      "Per-call options as JSON: {\"timestamp\": true, \"aggregate\": \"daily\"}");
  explain->add_option("--received-at", explain_args.received_at,
                      "Receipt time (ISO-8601), for reproducible output; now by default");
  explain->add_option("--id", explain_args.id, "Event id");
  std::string cases_path;
  CLI::App* test = app.add_subcommand("test", "Run config test cases (input -> expected records)");
  test->add_option("-c,--config", config_path, kConfigHelp);
  test->add_option("cases", cases_path, "YAML file of cases")->required();
  forkd::tools::DlqArgs dlq_args;
  CLI::App* dlq = app.add_subcommand("dlq", "Dead letters of a destination: list, show, replay, drop");
  dlq->add_option("action", dlq_args.action, "list, show, replay or drop")
      ->required()
      ->check(CLI::IsMember({"list", "show", "replay", "drop"}));
  dlq->add_option("-c,--config", config_path, kConfigHelp);
  dlq->add_option("-d,--destination", dlq_args.destination, "Destination")->required();
  dlq->add_option("--id", dlq_args.ids, "Only the dead letter with this event id (repeatable)");
  dlq->add_flag("--json", dlq_args.json, "list: print the stored JSON lines");
  forkd::tools::CursorsArgs cursors_args;
  CLI::App* cursors = app.add_subcommand(
      "cursors", "Destinations' cursors: list them, or drop one no longer configured");
  cursors->add_option("action", cursors_args.action, "list or drop")
      ->required()
      ->check(CLI::IsMember({"list", "drop"}));
  cursors->add_option("destination", cursors_args.destination,
                      "drop: the destination (no longer configured) whose cursor goes");
  cursors->add_option("-c,--config", config_path, kConfigHelp);
  forkd::tools::ReplayArgs replay_args;
  CLI::App* replay = app.add_subcommand(
      "replay", "Deliver a destination's retained events again, from a time or an event id");
  replay->add_option("-c,--config", config_path, kConfigHelp);
  replay->add_option("-d,--destination", replay_args.destination, "Destination")->required();
  replay->add_option("--since", replay_args.since,
                     "From the first event received this long ago (10m, 2h, 1d)");
  replay->add_option("--from-id", replay_args.from_id,
                     "From the event with this receipt id or idempotencyKey (one of the two)");
  forkd::tools::VerifyArgs verify_args;
  CLI::App* verify = app.add_subcommand(
      "verify", "Compare each store with what the retained log says it must hold");
  verify->add_option("-c,--config", config_path, kConfigHelp);
  verify->add_option("-d,--destination", verify_args.destinations,
                     "Only this destination (repeat for more); default: every one that can be read back");
  verify->add_option("--since", verify_args.since,
                     "Judge only the events received this long ago or later (10m, 2h, 1d)");
  verify->add_flag("--repair", verify_args.repair,
                   "Write the missing and differing records again through the sink, then verify again");
  verify->add_flag("--json", verify_args.json, "Print the result as JSON");
  forkd::tools::StatusArgs status_args;
  CLI::App* status = app.add_subcommand(
      "status", "What the running forkd says: the instance, then each destination's state and lag");
  status->add_option("-c,--config", config_path, kConfigHelp);
  status->add_flag("--json", status_args.json, "Print the admin API's /api/status JSON as it is");
  status->add_option("--event", status_args.event,
                     "One event instead (a receipt id or idempotencyKey): its log position and "
                     "each destination's delivered / pending / dead_lettered / filtered");
  forkd::tools::KeygenArgs keygen_args;
  CLI::App* keygen = app.add_subcommand(
      "keygen", "Make a CURVE key pair (Z85) for a tcp listen: prints public: and secret: lines");
  keygen->add_option("-o,--out", keygen_args.out,
                     "Write both keys to this new file (mode 0600) and print only the public one");
  forkd::tools::InitArgs init_args;
  CLI::App* init = app.add_subcommand(
      "init", "Write a starter ./fork.yaml and add .fork/ to the .gitignore beside it");
  init->add_option("-c,--config", init_args.config, "File to write (default: ./fork.yaml)");
  init->add_flag("--force", init_args.force, "Replace the file if it exists");
  app.add_subcommand("version", "Print the version");
  CLI::App* reference =
      app.add_subcommand("config-reference", "Print the configuration reference (Markdown)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(level));

  if (init->parsed()) return forkd::tools::Init(init_args);
  // The subcommands that read a configuration take ./fork.yaml by default.
  for (CLI::App* sub : {run, check, explain, test, dlq, cursors, replay, status, verify}) {
    if (!sub->parsed() || !config_path.empty()) continue;
    std::string error;
    if (!forkd::tools::DefaultConfigPath(&config_path, &error)) {
      std::cerr << "forkd " << sub->get_name() << ": " << error << "\n";
      return kExitConfig;
    }
  }

  if (run->parsed()) return Run(config_path, exit_with_parent);
  if (check->parsed()) return Check(config_path);
  if (explain->parsed()) return Explain(config_path, explain_args);
  if (test->parsed()) return Test(config_path, cases_path);
  if (dlq->parsed()) {
    forkd::Config config;
    if (!Load(config_path, &config)) return kExitConfig;
    return forkd::tools::Dlq(config, dlq_args);
  }
  if (cursors->parsed()) {
    forkd::Config config;
    if (!Load(config_path, &config)) return kExitConfig;
    return forkd::tools::Cursors(config, cursors_args);
  }
  if (replay->parsed()) {
    forkd::Config config;
    if (!Load(config_path, &config)) return kExitConfig;
    return forkd::tools::Replay(config, replay_args);
  }
  if (verify->parsed()) {
    forkd::Config config;
    if (!Load(config_path, &config)) return kExitConfig;
    return forkd::tools::Verify(config, verify_args);
  }
  if (status->parsed()) {
    forkd::Config config;
    if (!Load(config_path, &config)) return kExitConfig;
    return forkd::tools::ShowStatus(config, status_args);
  }
  if (keygen->parsed()) return forkd::tools::Keygen(keygen_args);
  if (reference->parsed()) {
    std::cout << ConfigReference();
    return 0;
  }
  std::cout << "forkd " << FORKD_VERSION << " (protocol 1)\n"
            << "allocator: " << Allocator() << "\n";
  return 0;
}
