// RuleEvaluator: each rule's state machine (pending, firing once after
// `for`, resolved once), driven by readings at times the test picks.
#include "alerts/rule_evaluator.h"

#include "test_util.h"
#include "wire/codec.h"

namespace forkd::alerts {
namespace {

Rule MakeRule(const std::string& name, Signal s, const std::string& destination, bool above,
              double threshold, int64_t for_ms) {
  Rule r;
  r.name = name;
  r.signal = s;
  r.destination = destination;
  r.above = above;
  r.threshold = threshold;
  r.for_ms = for_ms;
  return r;
}

AlertsConfig Config(std::vector<Rule> rules, std::vector<std::string> notify = {"ops"}) {
  AlertsConfig c;
  c.notify = std::move(notify);
  c.rules = std::move(rules);
  return c;
}

Reading Failing(const std::string& destination, double v) {
  Reading r;
  r.Set(Signal::kDestinationFailing, destination, v);
  return r;
}

TEST_CASE("a rule fires once after `for` and resolves once", "[alerts]") {
  RuleEvaluator ev(
      Config({MakeRule("hook_failing", Signal::kDestinationFailing, "hook", true, 0, 1000)}));
  CHECK(ev.Evaluate(Failing("hook", 0), 0).empty());
  CHECK(ev.Evaluate(Failing("hook", 1), 250).empty());  // pending since 250
  CHECK(ev.Evaluate(Failing("hook", 1), 1000).empty());
  auto t = ev.Evaluate(Failing("hook", 1), 1250);
  REQUIRE(t.size() == 1);
  CHECK(t[0].alert == "hook_failing");
  CHECK(t[0].firing);
  CHECK(t[0].destination == "hook");
  CHECK(t[0].value == 1);
  CHECK(t[0].threshold == 0);
  CHECK(t[0].since_ms == 250);
  CHECK(t[0].at_ms == 1250);
  // Still holding: nothing more.
  CHECK(ev.Evaluate(Failing("hook", 1), 1500).empty());
  CHECK(ev.Evaluate(Failing("hook", 1), 9000).empty());
  t = ev.Evaluate(Failing("hook", 0), 9250);
  REQUIRE(t.size() == 1);
  CHECK_FALSE(t[0].firing);
  CHECK(t[0].value == 0);
  CHECK(t[0].since_ms == 250);
  CHECK(t[0].at_ms == 9250);
  CHECK(ev.Evaluate(Failing("hook", 0), 9500).empty());
}

TEST_CASE("a condition that stops before `for` never fires", "[alerts]") {
  RuleEvaluator ev(
      Config({MakeRule("hook_failing", Signal::kDestinationFailing, "hook", true, 0, 1000)}));
  CHECK(ev.Evaluate(Failing("hook", 1), 0).empty());
  CHECK(ev.Evaluate(Failing("hook", 1), 900).empty());
  CHECK(ev.Evaluate(Failing("hook", 0), 950).empty());  // no resolved: it never fired
  // Holding again starts a new wait.
  CHECK(ev.Evaluate(Failing("hook", 1), 1000).empty());
  CHECK(ev.Evaluate(Failing("hook", 1), 1999).empty());
  auto t = ev.Evaluate(Failing("hook", 1), 2000);
  REQUIRE(t.size() == 1);
  CHECK(t[0].since_ms == 1000);
}

TEST_CASE("for: 0 fires at the first reading that holds", "[alerts]") {
  RuleEvaluator ev(Config({MakeRule("dl", Signal::kDeadLetters, "hook", true, 0, 0)}));
  Reading r;
  r.Set(Signal::kDeadLetters, "hook", 3);
  auto t = ev.Evaluate(r, 500);
  REQUIRE(t.size() == 1);
  CHECK(t[0].value == 3);
  CHECK(t[0].since_ms == 500);
}

TEST_CASE("above and below are strict", "[alerts]") {
  RuleEvaluator ev(Config({MakeRule("hi", Signal::kDestinationLagSeconds, "a", true, 300, 0),
                           MakeRule("lo", Signal::kDestinationLagEvents, "a", false, 10, 0)}));
  Reading r;
  r.Set(Signal::kDestinationLagSeconds, "a", 300);
  r.Set(Signal::kDestinationLagEvents, "a", 10);
  CHECK(ev.Evaluate(r, 0).empty());
  r.Set(Signal::kDestinationLagSeconds, "a", 300.5);
  r.Set(Signal::kDestinationLagEvents, "a", 9);
  auto t = ev.Evaluate(r, 1);
  REQUIRE(t.size() == 2);
  CHECK(t[0].alert == "hi");
  CHECK(t[1].alert == "lo");
  CHECK_FALSE(t[1].above);
}

TEST_CASE("a rule without destination watches each one but the notify ones", "[alerts]") {
  RuleEvaluator ev(Config({MakeRule("dl", Signal::kDeadLetters, "", true, 0, 0)}));
  Reading r;
  r.Set(Signal::kDeadLetters, "a", 1);
  r.Set(Signal::kDeadLetters, "b", 0);
  r.Set(Signal::kDeadLetters, "ops", 5);  // the notify destination: never alerted about
  auto t = ev.Evaluate(r, 0);
  REQUIRE(t.size() == 1);
  CHECK(t[0].destination == "a");
  r.Set(Signal::kDeadLetters, "b", 2);
  t = ev.Evaluate(r, 1);
  REQUIRE(t.size() == 1);
  CHECK(t[0].destination == "b");
  CHECK(t[0].firing);
  // A destination that vanishes (removed by a reload) resolves with its last value.
  Reading r2;
  r2.Set(Signal::kDeadLetters, "b", 2);
  t = ev.Evaluate(r2, 2);
  REQUIRE(t.size() == 1);
  CHECK(t[0].destination == "a");
  CHECK_FALSE(t[0].firing);
  CHECK(t[0].value == 1);
}

TEST_CASE("a global signal has no destination", "[alerts]") {
  RuleEvaluator ev(Config({MakeRule("disk", Signal::kWalDiskUsedRatio, "", true, 0.8, 0)}));
  Reading r;
  r.Set(Signal::kWalDiskUsedRatio, "", 0.9);
  auto t = ev.Evaluate(r, 0);
  REQUIRE(t.size() == 1);
  CHECK(t[0].destination.empty());
  // Not measured (statvfs failed): the condition does not hold.
  t = ev.Evaluate(Reading{}, 1);
  REQUIRE(t.size() == 1);
  CHECK_FALSE(t[0].firing);
  CHECK(t[0].value == Approx(0.9));
}

TEST_CASE("new rules: unchanged ones keep their state, others resolve", "[alerts]") {
  const Rule keep = MakeRule("keep", Signal::kDestinationFailing, "a", true, 0, 0);
  const Rule change = MakeRule("change", Signal::kDestinationFailing, "b", true, 0, 0);
  RuleEvaluator ev(Config({keep, change}));
  Reading r = Failing("a", 1);
  r.Set(Signal::kDestinationFailing, "b", 1);
  REQUIRE(ev.Evaluate(r, 0).size() == 2);
  Rule changed = change;
  changed.for_ms = 5000;
  auto t = ev.SetConfig(Config({keep, changed}), 10);
  REQUIRE(t.size() == 1);
  CHECK(t[0].alert == "change");
  CHECK_FALSE(t[0].firing);
  CHECK(t[0].at_ms == 10);
  // `keep` stays firing (no second firing); `change` starts over with its new `for`.
  CHECK(ev.Evaluate(r, 20).empty());
  t = ev.Evaluate(r, 5020);
  REQUIRE(t.size() == 1);
  CHECK(t[0].alert == "change");
  CHECK(t[0].since_ms == 20);
  // A rule removed while firing resolves.
  t = ev.SetConfig(Config({changed}), 6000);
  REQUIRE(t.size() == 1);
  CHECK(t[0].alert == "keep");
  CHECK_FALSE(t[0].firing);
  CHECK(ev.Uses(Signal::kDestinationFailing));
  CHECK_FALSE(ev.Uses(Signal::kDeadLetters));
}

TEST_CASE("an alert's event is a stored event for the notify destinations", "[alerts]") {
  Transition t;
  t.alert = "hook_failing";
  t.firing = true;
  t.signal = Signal::kDestinationFailing;
  t.destination = "hook";
  t.value = 1;
  t.threshold = 0;
  t.since_ms = 1764892800000;  // 2025-12-05T00:00:00Z
  t.at_ms = 1764892801250;
  const std::string ev = EncodeEvent(t, {"ops", "pager"}, "host-1");
  wire::EventView view;
  std::string error;
  REQUIRE(wire::CheckEvent(reinterpret_cast<const uint8_t*>(ev.data()), ev.size(), wire::Limits{},
                           &view, &error));
  CHECK(view.key == "alert-host-1-hook_failing-hook-firing-1764892800000");
  CHECK(ev.find("2025-12-05T00:00:00.000Z") != std::string::npos);
  CHECK(ev.find("2025-12-05T00:00:01.250Z") != std::string::npos);
  CHECK(ev.find("destination_failing") != std::string::npos);
  CHECK(ev.find("pager") != std::string::npos);
}

}  // namespace
}  // namespace forkd::alerts
