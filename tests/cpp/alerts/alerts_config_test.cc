// The alerts section: rules parsed, and each mistake reported as
// `file:line:col: alerts...: message` at the value it is about.
#include "alerts/alerts_config.h"

#include "config/config.h"
#include "sinks/registry.h"
#include "test_util.h"

namespace forkd::alerts {
namespace {

struct Loaded {
  bool ok = false;
  std::string path;
  forkd::Config config;
  std::vector<std::string> messages;
  std::string All() const {
    std::string s;
    for (const auto& m : messages) s += m + "\n";
    return s;
  }
};

const char kDestinations[] =
    "destinations:\n"
    "  hook: { type: http, url: 'http://127.0.0.1:9/' }\n"
    "  ops: { type: file, path: ops.jsonl }\n";

// Loads kDestinations followed by `alerts` as forkd's main does.
Loaded Load(const test::TempDir& dir, const std::string& alerts) {
  Loaded l;
  l.path = dir.Join("fork.yaml");
  test::WriteFileOrDie(l.path, std::string(kDestinations) + alerts);
  auto lookup = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  std::vector<ConfigError> errors;
  l.ok = LoadConfig(l.path, lookup, sinks::SinkTypeNames(), &l.config, &errors);
  for (const auto& e : errors) l.messages.push_back(e.ToString());
  return l;
}

void ExpectOneError(const Loaded& l, int line, int col, const std::string& message) {
  INFO(l.All());
  CHECK_FALSE(l.ok);
  REQUIRE(l.messages.size() == 1);
  CHECK(l.messages[0] ==
        l.path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + message);
}

TEST_CASE("alerts: the rules of the example", "[alerts][config]") {
  test::TempDir dir;
  const Loaded l = Load(dir,
                        "alerts:\n"
                        "  notify: [ops]\n"
                        "  rules:\n"
                        "    - { name: hook_failing, signal: destination_failing, destination: "
                        "hook, for: 1s }\n"
                        "    - { name: lagging, signal: destination_lag_seconds, destination: "
                        "hook, above: 300, for: 1m }\n"
                        "    - { name: dead_letters, signal: dead_letters, above: 0 }\n"
                        "    - { name: disk, signal: wal_disk_used_ratio, above: 0.8 }\n"
                        "    - { name: quiet, signal: destination_lag_events, below: 1 }\n");
  INFO(l.All());
  REQUIRE(l.ok);
  const AlertsConfig& a = l.config.alerts;
  CHECK(a.enabled());
  CHECK(a.notify == std::vector<std::string>{"ops"});
  REQUIRE(a.rules.size() == 5);
  CHECK(a.rules[0].name == "hook_failing");
  CHECK(a.rules[0].signal == Signal::kDestinationFailing);
  CHECK(a.rules[0].destination == "hook");
  CHECK(a.rules[0].above);
  CHECK(a.rules[0].threshold == 0);  // a flag: above 0 by default
  CHECK(a.rules[0].for_ms == 1000);
  CHECK(a.rules[1].threshold == 300);
  CHECK(a.rules[1].for_ms == 60000);
  CHECK(a.rules[2].destination.empty());
  CHECK(a.rules[2].for_ms == 0);
  CHECK(a.rules[3].signal == Signal::kWalDiskUsedRatio);
  CHECK(a.rules[3].threshold == Approx(0.8));
  CHECK_FALSE(a.rules[4].above);
  CHECK(a.rules[4].threshold == 1);
}

TEST_CASE("alerts: no section, no alerts", "[alerts][config]") {
  test::TempDir dir;
  const Loaded l = Load(dir, "");
  REQUIRE(l.ok);
  CHECK_FALSE(l.config.alerts.enabled());
}

TEST_CASE("alerts: an unknown signal", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - { name: x, signal: destination_failin }\n"),
                 7, 26,
                 "alerts.rules[0].signal: unknown signal 'destination_failin' (did you mean "
                 "'destination_failing'?)");
}

TEST_CASE("alerts: an unknown destination", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - name: x\n"
                      "      signal: dead_letters\n"
                      "      destination: hok\n"
                      "      above: 0\n"),
                 9, 20,
                 "alerts.rules[0].destination: unknown destination 'hok' (did you mean 'hook'?)");
}

TEST_CASE("alerts: a missing threshold", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - { name: lagging, signal: destination_lag_seconds, for: 1m }\n"),
                 7, 7,
                 "alerts.rules[0]: a threshold is missing: set above or below (a number)");
}

TEST_CASE("alerts: a bad threshold, and both", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - { name: lag, signal: destination_lag_events, above: lots }\n"),
                 7, 59, "alerts.rules[0].above: expected a number, got 'lots'");
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - { name: lag, signal: destination_lag_events, above: 1, below: 2 }\n"),
                 7, 69, "alerts.rules[0]: set above or below, not both");
}

TEST_CASE("alerts: a notify destination that does not exist", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [hook, opps]\n"
                      "  rules:\n"
                      "    - { name: x, signal: shed, above: 0 }\n"),
                 5, 18, "alerts.notify: unknown destination 'opps' (did you mean 'ops'?)");
}

TEST_CASE("alerts: a rule about a notify destination is refused", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: ops\n"
                      "  rules:\n"
                      "    - { name: x, signal: destination_failing, destination: ops }\n"),
                 7, 60,
                 "alerts.rules[0].destination: 'ops' is a notify destination: its alerts would "
                 "be sent to the destination they are about; watch it another way (logs, "
                 "/metrics)");
}

TEST_CASE("alerts: a global signal takes no destination; names are unique", "[alerts][config]") {
  test::TempDir dir;
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - { name: disk, signal: wal_disk_used_ratio, destination: hook, above: "
                      "0.9 }\n"),
                 7, 63,
                 "alerts.rules[0].destination: wal_disk_used_ratio is measured for forkd as a "
                 "whole, not per destination");
  ExpectOneError(Load(dir,
                      "alerts:\n"
                      "  notify: [ops]\n"
                      "  rules:\n"
                      "    - { name: a, signal: shed, above: 0 }\n"
                      "    - { name: a, signal: shed, above: 1 }\n"),
                 8, 15, "alerts.rules[1].name: another rule is named 'a'");
}

TEST_CASE("alerts: the reference lists every signal", "[alerts][config]") {
  const std::string md = SignalsMarkdown();
  for (const auto& s : Signals()) {
    CHECK(md.find("| `" + std::string(s.name) + "` |") != std::string::npos);
  }
  for (size_t i = 0; i < kSignalCount; ++i) {
    CHECK(static_cast<size_t>(Signals()[i].signal) == i);
  }
}

}  // namespace
}  // namespace forkd::alerts
