// The `wal` section of the config (with `wal.retention`): how the log is
// written and how much history it keeps. Parsed by config/config.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"
#include "log/log.h"

namespace forkd {

const std::vector<OptionSpec>& WalOptions();
const std::vector<OptionSpec>& RetentionOptions();

namespace log {

struct LogConfig {
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  int64_t batch_ms = 0;  // 0: adaptive (no linger)
  int64_t segment_bytes = 64ll << 20;
  // wal.retention: history kept after every cursor has passed it.
  int64_t retention_max_age_ms = 24ll * 3600 * 1000;  // 0: none kept
  int64_t retention_max_bytes = 1ll << 30;
};

// Reads `wal` (unset or null: the defaults stay) into *out; problems are
// added to *errors as "wal...: message".
void ParseLogConfig(const YAML::Node& wal, const std::string& file, LogConfig* out,
                    std::vector<ConfigError>* errors);

}  // namespace log
}  // namespace forkd
