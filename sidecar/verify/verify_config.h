// The `verify:` section of fork.yaml: `forkd verify` run by forkd itself on
// a schedule, its result in /api/status, /metrics and the
// `verify_differences` alert signal.
//
//   verify: { every: 1h, destinations: [orders, analytics], since: 1d }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/options.h"

namespace forkd::verify {

struct ScheduleConfig {
  int64_t every_ms = 0;                   // 0: no scheduled verify
  std::vector<std::string> destinations;  // empty: every one whose store can be read back
  int64_t since_ms = 0;                   // 0: the whole retained log
  bool enabled() const { return every_ms > 0; }
  bool operator==(const ScheduleConfig&) const = default;
};

const std::vector<OptionSpec>& ScheduleOptions();

// Reads the top-level `verify` value. `destinations` are the configured
// (name, type) pairs. Problems go to *errors as `file:line:col: verify...`.
void ParseScheduleConfig(const YAML::Node& node, const std::string& file,
                         const std::vector<std::pair<std::string, std::string>>& destinations,
                         ScheduleConfig* out, std::vector<ConfigError>* errors);

}  // namespace forkd::verify
