// forkd's configuration: the YAML file, validated in full before anything
// runs. Every problem is reported as `file:line:col: key.path: message`.
//
// This is the assembly: it reads the file, hands each section to the
// component that owns it (pipeline/destination_config.h, log/log_config.h,
// sources/source_config.h ...), and cross-checks what sections name.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "admin/admin_config.h"
#include "alerts/alerts_config.h"
#include "core/options.h"
#include "ingest/curve_config.h"
#include "ingest/http/http_ingest_config.h"
#include "ingest/ingest_config.h"
#include "log/log.h"
#include "log/log_config.h"
#include "pipeline/destination_config.h"
#include "pipeline/route_config.h"
#include "pipeline/router.h"
#include "sources/source_config.h"
#include "transforms/templates_config.h"
#include "transforms/transform.h"
#include "verify/verify_config.h"
#include "wire/msgpack.h"

namespace forkd {

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
  // wal (log/log_config.h)
  log::FsyncPolicy fsync = log::LogConfig{}.fsync;
  int64_t batch_ms = log::LogConfig{}.batch_ms;
  int64_t segment_bytes = log::LogConfig{}.segment_bytes;
  // wal.retention: history kept after every cursor has passed it.
  int64_t retention_max_age_ms = log::LogConfig{}.retention_max_age_ms;  // 0: none kept
  int64_t retention_max_bytes = log::LogConfig{}.retention_max_bytes;
  // limits and dedupe (ingest/ingest_config.h)
  int64_t max_frame = ingest::IngestConfig{}.max_frame;
  int64_t max_event = ingest::IngestConfig{}.max_event;
  wire::Limits limits;
  // event bytes held before they are durable
  int64_t max_pending = ingest::IngestConfig{}.max_pending;
  int64_t max_clients = ingest::IngestConfig{}.max_clients;
  int64_t client_idle_ms = ingest::IngestConfig{}.client_idle_ms;
  int64_t dedupe_window_ms = ingest::IngestConfig{}.dedupe_window_ms;
  int64_t dedupe_max_keys = ingest::IngestConfig{}.dedupe_max_keys;
  int64_t dedupe_recover_bytes = ingest::IngestConfig{}.dedupe_recover_bytes;
  std::vector<SourceConfig> sources;  // none is started yet
  std::vector<DestinationConfig> destinations;
  transforms::Templates templates;  // `transforms:`
  std::vector<RouteConfig> routes;
  std::string unmatched;  // destination for events no route matches; empty: nack them
  alerts::AlertsConfig alerts;  // alerts.enabled() false: no alerts
  verify::ScheduleConfig verify;  // verify.enabled() false: no scheduled verify

  const DestinationConfig* Find(std::string_view name) const;
  // Resolves a path from the file against base_dir.
  std::string Resolve(const std::string& p) const;
};

// Loads and validates `path`. Returns false with every problem in *errors.
// `sinks` and `sink_types` are the destination types (sinks/registry.h),
// `check` their checks beyond the tables; `sources`, `source_types` and
// `source_check` the same for source types (sources/registry.h). Without
// them, any source in the file is reported as of an unknown type.
bool LoadConfig(const std::string& path, const SinkOptionsLookup& sinks,
                const std::vector<std::string_view>& sink_types, Config* out,
                std::vector<ConfigError>* errors, const SinkCheck& check = nullptr,
                const SourceOptionsLookup& sources = nullptr,
                const std::vector<std::string_view>& source_types = {},
                const SourceCheck& source_check = nullptr);

// The table of the top level of the file, for docs. Each section's table is
// declared by its component (WalOptions in log/log_config.h ...).
const std::vector<OptionSpec>& TopLevelOptions();

}  // namespace forkd
