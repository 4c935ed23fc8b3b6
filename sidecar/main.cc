// forkd: argument parsing, wiring, signals — nothing else.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include "core/config.h"
#include "core/fs.h"
#include "server.h"
#include "sinks/registry.h"

namespace {

constexpr int kExitConfig = 2;

bool Load(const std::string& path, forkd::Config* config) {
  std::vector<forkd::ConfigError> errors;
  auto lookup = [](std::string_view type) -> const std::vector<forkd::OptionSpec>* {
    const forkd::sinks::SinkType* t = forkd::sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  if (forkd::LoadConfig(path, lookup, forkd::sinks::SinkTypeNames(), config, &errors)) return true;
  for (const auto& e : errors) std::cerr << e.ToString() << "\n";
  return false;
}

int Run(const std::string& config_path) {
  forkd::Config config;
  if (!Load(config_path, &config)) return kExitConfig;
  forkd::fs::InjectFaultsFromEnv();

  // Signals go to one thread that waits for them; every other thread
  // (created after this) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  forkd::Server server(std::move(config));
  forkd::Status s = server.Start();
  if (!s.ok()) {
    spdlog::error("cannot start: {}", s.message());
    return 1;
  }
  spdlog::info("forkd {} running with {} ({} destinations)", FORKD_VERSION, config_path,
               server.config().destinations.size());

  std::atomic<bool> done{false};
  std::thread signals([&] {
    const timespec tick{1, 0};
    while (!done.load()) {
      siginfo_t info;
      const int sig = sigtimedwait(&set, &info, &tick);
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server.RequestStop();
      } else if (sig == SIGHUP) {
        spdlog::warn("SIGHUP: configuration reload is not available in this version; "
                     "restart forkd to apply changes");
      } else {
        server.Tick();
      }
    }
  });
  server.Serve();
  done.store(true);
  signals.join();
  return 0;
}

int Check(const std::string& config_path) {
  forkd::Config config;
  if (!Load(config_path, &config)) return kExitConfig;
  std::cout << config_path << ": ok (" << config.destinations.size() << " destinations)\n";
  return 0;
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
  run->add_option("-c,--config", config_path, "Configuration file")->required();
  CLI::App* check = app.add_subcommand("check", "Validate a configuration file (exit 2 if not)");
  check->add_option("-c,--config", config_path, "Configuration file")->required();
  app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(level));

  if (run->parsed()) return Run(config_path);
  if (check->parsed()) return Check(config_path);
  std::cout << "forkd " << FORKD_VERSION << " (protocol 1)\n";
  return 0;
}
