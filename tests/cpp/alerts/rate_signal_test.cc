// The `rate` signal: parsed and checked like the other signals, and a quiet
// destination read from the one-second history (as the server wires them)
// fires once after `for` and resolves once when events flow again.
#include "admin/history.h"
#include "alerts/alerts_config.h"
#include "alerts/rule_evaluator.h"
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
};

Loaded Load(const test::TempDir& dir, const std::string& rules) {
  Loaded l;
  l.path = dir.Join("fork.yaml");
  test::WriteFileOrDie(l.path,
                       "destinations:\n"
                       "  production: { type: file, path: production.jsonl }\n"
                       "  ops: { type: file, path: ops.jsonl }\n"
                       "alerts:\n"
                       "  notify: [ops]\n"
                       "  rules:\n" +
                           rules);
  auto lookup = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  std::vector<ConfigError> errors;
  l.ok = LoadConfig(l.path, lookup, sinks::SinkTypeNames(), &l.config, &errors);
  for (const auto& e : errors) l.messages.push_back(e.ToString());
  return l;
}

TEST_CASE("rate: the issue's quiet rule parses", "[alerts][rate]") {
  test::TempDir dir;
  const Loaded l =
      Load(dir, "    - { name: quiet, signal: rate, destination: production, below: 1, for: 10m }\n");
  REQUIRE(l.ok);
  REQUIRE(l.config.alerts.rules.size() == 1);
  const Rule& r = l.config.alerts.rules[0];
  CHECK(r.signal == Signal::kRate);
  CHECK(r.destination == "production");
  CHECK_FALSE(r.above);
  CHECK(r.threshold == 1);
  CHECK(r.for_ms == 600000);
  CHECK(SpecOf(Signal::kRate).per_destination);
}

TEST_CASE("rate: forkd check reports a rule without threshold or with an unknown destination "
          "at its position",
          "[alerts][rate]") {
  test::TempDir dir;
  Loaded l = Load(dir, "    - { name: quiet, signal: rate, destination: production }\n");
  CHECK_FALSE(l.ok);
  REQUIRE(l.messages.size() == 1);
  CHECK(l.messages[0] == l.path + ":7:7: alerts.rules[0]: a threshold is missing: set above or "
                                  "below (a number)");
  l = Load(dir, "    - { name: quiet, signal: rate, destination: productin, below: 1 }\n");
  CHECK_FALSE(l.ok);
  REQUIRE(l.messages.size() == 1);
  CHECK(l.messages[0] == l.path + ":7:49: alerts.rules[0].destination: unknown destination "
                                  "'productin' (did you mean 'production'?)");
  l = Load(dir, "    - { name: quiet, signal: rat, below: 1 }\n");
  CHECK_FALSE(l.ok);
  REQUIRE(l.messages.size() == 1);
  CHECK(l.messages[0].find("unknown signal 'rat' (did you mean 'rate'?)") != std::string::npos);
}

// The server's wiring: each second a history sample, then a reading of the
// routed rate over kRateWindowSeconds.
struct Rig {
  admin::History history;
  RuleEvaluator evaluator;
  uint64_t routed = 0;
  std::vector<Transition> all;

  explicit Rig(Rule r) : evaluator(AlertsConfig{{"ops"}, {std::move(r)}}) {}
  void Second(int64_t t, uint64_t events) {
    routed += events;
    admin::Counters c;
    c.routed = routed;
    history.Record(t, {{"production", c}});
    Reading reading;
    double v = 0;
    if (history.RoutedRate("production", kRateWindowSeconds, &v)) {
      reading.Set(Signal::kRate, "production", v);
    }
    for (auto& x : evaluator.Evaluate(reading, t * 1000)) all.push_back(std::move(x));
  }
};

TEST_CASE("rate: a destination quiet for 10m fires once, and resolves once when events flow "
          "again",
          "[alerts][rate]") {
  Rule r;
  r.name = "quiet";
  r.signal = Signal::kRate;
  r.destination = "production";
  r.above = false;
  r.threshold = 1;
  r.for_ms = 600000;
  Rig rig(r);
  int64_t t = 1000;
  for (int i = 0; i < 60; ++i) rig.Second(t++, 5);  // 5 events/s
  CHECK(rig.all.empty());
  const int64_t quiet_from = t;
  for (int i = 0; i < 700; ++i) rig.Second(t++, 0);
  REQUIRE(rig.all.size() == 1);
  CHECK(rig.all[0].firing);
  CHECK(rig.all[0].value == 0);
  // It held once the 10 s window was quiet, and fired `for` later.
  CHECK(rig.all[0].since_ms / 1000 > quiet_from);
  CHECK(rig.all[0].since_ms / 1000 <= quiet_from + kRateWindowSeconds);
  CHECK(rig.all[0].at_ms - rig.all[0].since_ms == 600000);
  // /api/status lists it while it fires.
  REQUIRE(rig.evaluator.Firing().size() == 1);
  CHECK(rig.evaluator.Firing()[0].alert == "quiet");
  CHECK(rig.evaluator.Firing()[0].since_ms == rig.all[0].since_ms);
  // One event every few seconds is still quiet (below 1/s).
  for (int i = 0; i < 30; ++i) rig.Second(t++, i % 3 == 0 ? 1 : 0);
  CHECK(rig.all.size() == 1);
  // Traffic again: resolved at the first second the window's average is 1/s or more.
  rig.Second(t++, 20);
  REQUIRE(rig.all.size() == 2);
  CHECK_FALSE(rig.all[1].firing);
  CHECK(rig.all[1].value >= 1);
  CHECK(rig.evaluator.Firing().empty());
  for (int i = 0; i < 100; ++i) rig.Second(t++, 5);
  CHECK(rig.all.size() == 2);
}

TEST_CASE("rate: a busy destination with a short lull never fires", "[alerts][rate]") {
  Rule r;
  r.name = "quiet";
  r.signal = Signal::kRate;
  r.destination = "production";
  r.above = false;
  r.threshold = 1;
  r.for_ms = 60000;
  Rig rig(r);
  int64_t t = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 30; ++i) rig.Second(t++, 0);  // 30 s lulls
    rig.Second(t++, 100);                             // then a burst
  }
  CHECK(rig.all.empty());
}

TEST_CASE("rate: a flood above a threshold fires", "[alerts][rate]") {
  Rule r;
  r.name = "flood";
  r.signal = Signal::kRate;
  r.destination = "production";
  r.above = true;
  r.threshold = 1000;
  r.for_ms = 5000;
  Rig rig(r);
  int64_t t = 0;
  for (int i = 0; i < 30; ++i) rig.Second(t++, 10);
  CHECK(rig.all.empty());
  for (int i = 0; i < 30; ++i) rig.Second(t++, 5000);
  REQUIRE(rig.all.size() == 1);
  CHECK(rig.all[0].firing);
  CHECK(rig.all[0].value > 1000);
}

TEST_CASE("rate: the first reading of a new destination is not judged", "[alerts][rate]") {
  Rule r;
  r.name = "quiet";
  r.signal = Signal::kRate;
  r.destination = "production";
  r.above = false;
  r.threshold = 1;
  r.for_ms = 0;
  Rig rig(r);
  rig.Second(0, 0);  // a baseline only: no rate yet, so nothing holds
  CHECK(rig.all.empty());
  rig.Second(1, 0);
  REQUIRE(rig.all.size() == 1);
}

}  // namespace
}  // namespace forkd::alerts
