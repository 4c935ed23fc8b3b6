// forkd's configuration: the YAML file, validated in full before anything
// runs. Every problem is reported as `file:line:col: key.path: message`.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "admin/admin_config.h"
#include "ingest/http/http_ingest_config.h"
#include "alerts/alerts_config.h"
#include "core/options.h"
#include "ingest/curve_config.h"
#include "log/log.h"
#include "pipeline/router.h"
#include "transforms/transform.h"
#include "verify/verify_config.h"
#include "wire/msgpack.h"

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

struct Config {
  std::string path;      // the file it was read from
  std::string base_dir;  // relative paths in the file resolve against this
  std::string data_dir;
  // This forkd's id among the replicas that feed the same stores: `instance`
  // from the file, or empty; the server resolves it against the one stored
  // in data_dir (core/instance.h) before anything starts.
  std::string instance;
  std::string listen;
  ingest::CurveConfig curve;  // curve.enabled() false: no CURVE on `listen`
  // A network `listen` without CURVE was asked for: warned about at every start.
  bool insecure_tcp = false;
  admin::AdminConfig admin;  // admin.enabled() false: no admin server
  ingest::http::HttpIngestConfig http_ingest;  // http_ingest.enabled() false: none
  log::FsyncPolicy fsync = log::FsyncPolicy::kBatch;
  int64_t batch_ms = 2;
  int64_t segment_bytes = 64ll << 20;
  // wal.retention: history kept after every cursor has passed it.
  int64_t retention_max_age_ms = 24ll * 3600 * 1000;  // 0: none kept
  int64_t retention_max_bytes = 1ll << 30;
  int64_t max_frame = 16ll << 20;
  int64_t max_event = 1ll << 20;
  wire::Limits limits;
  int64_t max_pending = 64ll << 20;  // event bytes held before they are durable
  int64_t max_clients = 10000;
  int64_t client_idle_ms = 10ll * 60 * 1000;
  int64_t dedupe_window_ms = 24ll * 3600 * 1000;
  int64_t dedupe_max_keys = 1000000;
  int64_t dedupe_recover_bytes = 128ll << 20;
  std::vector<DestinationConfig> destinations;
  std::map<std::string, transforms::Chain, std::less<>> templates;  // `transforms:`
  std::vector<RouteConfig> routes;
  std::string unmatched;  // destination for events no route matches; empty: nack them
  alerts::AlertsConfig alerts;  // alerts.enabled() false: no alerts
  verify::ScheduleConfig verify;  // verify.enabled() false: no scheduled verify

  const DestinationConfig* Find(std::string_view name) const;
  // Resolves a path from the file against base_dir.
  std::string Resolve(const std::string& p) const;
};

// Looks up a sink type's option table; nullptr for an unknown type.
using SinkOptionsLookup = std::function<const std::vector<OptionSpec>*(std::string_view type)>;

// A sink type's own check of its parsed options, beyond the table (a column
// type, a key among the columns): false with *error as "option: message" or
// "option.sub: message".
using SinkCheck =
    std::function<bool(std::string_view type, const Options& options, std::string* error)>;

// Loads and validates `path`. Returns false with every problem in *errors.
bool LoadConfig(const std::string& path, const SinkOptionsLookup& sinks,
                const std::vector<std::string_view>& sink_types, Config* out,
                std::vector<ConfigError>* errors, const SinkCheck& check = nullptr);

// The option tables of the top-level sections, for docs.
const std::vector<OptionSpec>& TopLevelOptions();
const std::vector<OptionSpec>& WalOptions();
const std::vector<OptionSpec>& RetentionOptions();
const std::vector<OptionSpec>& LimitsOptions();
const std::vector<OptionSpec>& DedupeOptions();
const std::vector<OptionSpec>& DestinationOptions();
const std::vector<OptionSpec>& BatchOptions();
const std::vector<OptionSpec>& RetryOptions();
const std::vector<OptionSpec>& BreakerOptions();
const std::vector<OptionSpec>& RateLimitOptions();
const std::vector<OptionSpec>& BacklogOptions();
const std::vector<OptionSpec>& RouteOptions();
const std::vector<OptionSpec>& RolloutOptions();

}  // namespace forkd
