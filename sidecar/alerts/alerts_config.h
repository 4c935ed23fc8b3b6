// The `alerts:` section of fork.yaml: rules over forkd's own signals, and the
// destinations that receive an event each time a rule fires or resolves.
//
//   alerts:
//     notify: [ops]
//     rules:
//       - { name: hook_failing, signal: destination_failing, destination: hook, for: 1s }
//       - { name: disk, signal: wal_disk_used_ratio, above: 0.8 }
//
// Parsed after the destinations (notify and rule destinations must name one).
// A rule about a notify destination is refused: its alerts would be routed
// to the destination they are about.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"

namespace forkd::alerts {

enum class Signal {
  kDestinationFailing,
  kDestinationBreakerOpen,
  kDestinationLagEvents,
  kDestinationLagSeconds,
  kDeadLetters,
  kShed,
  kWalDiskUsedRatio,
  kVerifyDifferences,
  kRate,
};
inline constexpr size_t kSignalCount = 9;
// The `rate` signal averages the events routed to a destination over this
// many seconds (samples of the one-second history).
inline constexpr int64_t kRateWindowSeconds = 10;

struct SignalSpec {
  Signal signal;
  std::string_view name;
  bool per_destination;  // measured per destination (else one value for forkd)
  bool flag;             // 0 or 1: without a threshold, the rule is `above: 0`
  std::string_view description;
};
// Every signal, in Signal order.
const std::vector<SignalSpec>& Signals();
const SignalSpec& SpecOf(Signal s);

struct Rule {
  std::string name;
  Signal signal = Signal::kDestinationFailing;
  std::string destination;  // empty: every destination but the notify ones (or a global signal)
  bool above = true;        // the condition is value > threshold (else value < threshold)
  double threshold = 0;
  int64_t for_ms = 0;       // how long the condition holds before the rule fires
  Mark mark;

  bool operator==(const Rule& o) const {
    return name == o.name && signal == o.signal && destination == o.destination &&
           above == o.above && threshold == o.threshold && for_ms == o.for_ms;
  }
};

struct AlertsConfig {
  std::vector<std::string> notify;
  std::vector<Rule> rules;

  bool enabled() const { return !notify.empty() && !rules.empty(); }
  bool IsNotify(std::string_view destination) const;
};

// The option tables, for parsing and docs.
const std::vector<OptionSpec>& AlertsOptions();
const std::vector<OptionSpec>& AlertRuleOptions();
// The signals as a Markdown table, for docs.
std::string SignalsMarkdown();

// Reads the top-level `alerts` value into *out. `destinations` are the names
// configured. Problems are appended to *errors as
// `file:line:col: alerts...: message`.
void ParseAlertsConfig(const YAML::Node& node, const std::string& file,
                       const std::vector<std::string>& destinations, AlertsConfig* out,
                       std::vector<ConfigError>* errors);

}  // namespace forkd::alerts
