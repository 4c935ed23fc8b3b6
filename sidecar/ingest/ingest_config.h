// The `limits` and `dedupe` sections of the config: what clients may send,
// and how long resends and idempotency keys are remembered. Parsed by
// config/config.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"
#include "wire/msgpack.h"

namespace forkd {

const std::vector<OptionSpec>& LimitsOptions();
const std::vector<OptionSpec>& DedupeOptions();

namespace ingest {

struct IngestConfig {
  // limits
  int64_t max_frame = 16ll << 20;
  int64_t max_event = 1ll << 20;
  uint32_t max_depth = wire::Limits{}.max_depth;
  int64_t max_pending = 64ll << 20;  // event bytes held before they are durable
  int64_t max_clients = 10000;
  int64_t client_idle_ms = 10ll * 60 * 1000;
  // dedupe
  int64_t dedupe_window_ms = 24ll * 3600 * 1000;
  int64_t dedupe_max_keys = 1000000;
  int64_t dedupe_recover_bytes = 128ll << 20;
};

// Read `limits` and `dedupe` (unset or null: the defaults stay) into *out;
// problems are added to *errors.
void ParseLimits(const YAML::Node& limits, const std::string& file, IngestConfig* out,
                 std::vector<ConfigError>* errors);
void ParseDedupe(const YAML::Node& dedupe, const std::string& file, IngestConfig* out,
                 std::vector<ConfigError>* errors);

}  // namespace ingest
}  // namespace forkd
