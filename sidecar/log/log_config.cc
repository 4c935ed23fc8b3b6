#include "log/log_config.h"

namespace forkd {

const std::vector<OptionSpec>& WalOptions() {
  static const std::vector<OptionSpec> specs = {
      {"fsync", OptType::kEnum, "batch",
       "batch: acknowledge after fdatasync (group commit); never: after write()",
       false, {"batch", "never"}},
      {"batch_ms", OptType::kInt, "0",
       "0: adaptive group commit: a commit starts as soon as none is in flight, so an idle log "
       "syncs an event at once and a busy one syncs together what came during the previous "
       "sync. N > 0: a commit also waits until its oldest event is N ms old (a fixed linger)",
       false, {}, 0, 1000},
      {"segment_bytes", OptType::kSize, "64MiB", "Roll to a new segment file past this size",
       false, {}, 1 << 16, 1ll << 32},
      {"retention", OptType::kNode, "",
       "How long segments every destination has passed are kept: {max_age, max_bytes} (see "
       "below)"},
  };
  return specs;
}

const std::vector<OptionSpec>& RetentionOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_age", OptType::kDuration, "24h",
       "A segment every cursor has passed is deleted once its newest event is this old; 0: "
       "at once (no history kept)",
       false, {}, 0, 3650ll * 86400 * 1000},
      {"max_bytes", OptType::kSize, "1GiB",
       "Most bytes of passed segments kept; past it the oldest go first, whatever their age",
       false, {}, 0, 1ll << 50},
  };
  return specs;
}

namespace log {

void ParseLogConfig(const YAML::Node& wal, const std::string& file, LogConfig* out,
                    std::vector<ConfigError>* errors) {
  if (!wal.IsDefined() || wal.IsNull()) return;
  Options w;
  if (!ParseOptions(wal, WalOptions(), {}, "wal", file, &w, errors)) return;
  out->fsync = w.Str("fsync") == "never" ? FsyncPolicy::kNever : FsyncPolicy::kBatch;
  out->batch_ms = w.Int("batch_ms");
  out->segment_bytes = w.Bytes("segment_bytes");
  if (const YAML::Node& r = w.Node("retention"); r.IsDefined() && !r.IsNull()) {
    Options ro;
    if (ParseOptions(r, RetentionOptions(), {}, "wal.retention", file, &ro, errors)) {
      out->retention_max_age_ms = ro.Millis("max_age");
      out->retention_max_bytes = ro.Bytes("max_bytes");
    }
  }
}

}  // namespace log
}  // namespace forkd
