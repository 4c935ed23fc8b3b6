// The `destinations` section of the config: each destination's common keys
// (type, batch, retry, breaker, rate_limit, backlog, priority, transforms,
// from), and its sink's own options, checked against the sink type's table.
// Parsed by config/config.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"
#include "transforms/templates_config.h"
#include "transforms/transform.h"

namespace forkd {

enum class Priority { kHigh, kNormal, kLow };

struct DestinationConfig {
  std::string name;
  std::string type;
  Mark mark;
  Options common;   // keys every destination has: batch, retry, priority ...
  Options sink;     // the sink's own options, per its table
  int64_t batch_max_events = 0;
  int64_t batch_max_bytes = 0;
  int64_t batch_max_wait_ms = 0;
  // Batches sent and not yet answered, for sinks that pipeline; 0: not set
  // (4 for the sinks that pipeline by default, else 1).
  int64_t batch_in_flight = 0;
  int64_t retry_initial_ms = 0;
  int64_t retry_max_ms = 0;
  int64_t retry_max_attempts = 0;  // 0: unlimited
  int64_t retry_max_age_ms = 0;    // 0: unlimited
  int64_t breaker_failures = 0;    // 0: no breaker
  int64_t breaker_cooldown_ms = 0;
  int64_t rate_limit = 0;          // events/s; 0: unlimited
  int64_t rate_burst = 0;
  int64_t backlog_max_bytes = 0;   // 0: unlimited
  int64_t backlog_max_events = 0;  // 0: unlimited
  bool backlog_shed = false;       // past the quota: shed (true) or block
  Priority priority = Priority::kNormal;
  transforms::Chain chain;     // its `transforms`, templates expanded
  bool from_earliest = false;  // a new destination starts at the oldest retained event
  // Changes whenever anything that shapes this destination's output does
  // (its options, the templates it uses): a reload restarts it only then.
  std::string fingerprint;
};

// Looks up a sink type's option table; nullptr for an unknown type.
using SinkOptionsLookup = std::function<const std::vector<OptionSpec>*(std::string_view type)>;

// A sink type's own check of its parsed options, beyond the table (a column
// type, a key among the columns): false with *error as "option: message" or
// "option.sub: message".
using SinkCheck =
    std::function<bool(std::string_view type, const Options& options, std::string* error)>;

// The option tables of a destination, for parsing and docs.
const std::vector<OptionSpec>& DestinationOptions();
const std::vector<OptionSpec>& BatchOptions();
const std::vector<OptionSpec>& RetryOptions();
const std::vector<OptionSpec>& BreakerOptions();
const std::vector<OptionSpec>& RateLimitOptions();
const std::vector<OptionSpec>& BacklogOptions();

// Reads `destinations` (a map of name: {type, ...}) into *out, in file
// order; a destination with an error is left out. `dests` unset or null adds
// nothing (the top-level table reports it missing). `sink_types` are the
// choices of `type`; `check` (may be null) runs after a sink's table passed.
// `templates` are those of pc.templates, as YAML, for fingerprints.
// Problems are added to pc.errors.
void ParseDestinations(const YAML::Node& dests, const SinkOptionsLookup& sinks,
                       const std::vector<std::string_view>& sink_types, const SinkCheck& check,
                       const transforms::ParseContext& pc,
                       const transforms::TemplateNodes& templates,
                       std::vector<DestinationConfig>* out);

}  // namespace forkd
