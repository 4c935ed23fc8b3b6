#include "ingest/ingest_config.h"

namespace forkd {

const std::vector<OptionSpec>& LimitsOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_frame", OptType::kSize, "16MiB", "Largest ZeroMQ message accepted", false, {},
       1 << 10, 1 << 30},
      {"max_event", OptType::kSize, "1MiB", "Largest encoded event accepted", false, {}, 64,
       64 << 20},
      {"max_depth", OptType::kInt, "64", "Deepest nesting of arrays and maps in a payload",
       false, {}, 1, 100},
      {"max_pending", OptType::kSize, "64MiB",
       "Most event bytes held before they are durable; past it forkd stops reading clients "
       "until the commit in flight completes",
       false, {}, 1 << 20, 1ll << 36},
      {"max_clients", OptType::kInt, "10000",
       "Most clients remembered; past it, of the 64 least recently active with nothing in "
       "flight, the one that appeared last is forgotten (a peer churning through ids evicts "
       "its own)",
       false, {}, 16, 10000000},
      {"client_idle", OptType::kDuration, "10m",
       "A client with nothing in flight that sent nothing for this long is forgotten (it says "
       "hello again)",
       false, {}, 1000, 30ll * 86400 * 1000},
  };
  return specs;
}

const std::vector<OptionSpec>& DedupeOptions() {
  static const std::vector<OptionSpec> specs = {
      {"window", OptType::kDuration, "24h",
       "How long an idempotencyKey repeated to a destination is acknowledged without being "
       "delivered to it again",
       false, {}, 0, 30ll * 86400 * 1000},
      {"max_keys", OptType::kInt, "1000000",
       "Most (idempotencyKey, destination) pairs remembered; the oldest are forgotten first",
       false, {}, 0,
       100000000},
      {"recover_bytes", OptType::kSize, "128MiB",
       "At start, the newest log bytes scanned to remember client sequence numbers and keys",
       false, {}, 0, 1ll << 40},
  };
  return specs;
}

namespace ingest {

void ParseLimits(const YAML::Node& limits, const std::string& file, IngestConfig* out,
                 std::vector<ConfigError>* errors) {
  if (!limits.IsDefined() || limits.IsNull()) return;
  Options l;
  if (!ParseOptions(limits, LimitsOptions(), {}, "limits", file, &l, errors)) return;
  out->max_frame = l.Bytes("max_frame");
  out->max_event = l.Bytes("max_event");
  out->max_depth = static_cast<uint32_t>(l.Int("max_depth"));
  out->max_pending = l.Bytes("max_pending");
  out->max_clients = l.Int("max_clients");
  out->client_idle_ms = l.Millis("client_idle");
}

void ParseDedupe(const YAML::Node& dedupe, const std::string& file, IngestConfig* out,
                 std::vector<ConfigError>* errors) {
  if (!dedupe.IsDefined() || dedupe.IsNull()) return;
  Options o;
  if (!ParseOptions(dedupe, DedupeOptions(), {}, "dedupe", file, &o, errors)) return;
  out->dedupe_window_ms = o.Millis("window");
  out->dedupe_max_keys = o.Int("max_keys");
  out->dedupe_recover_bytes = o.Bytes("recover_bytes");
}

}  // namespace ingest
}  // namespace forkd
