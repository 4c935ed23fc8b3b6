#include "pipeline/destination_config.h"

#include "core/typed_options.h"

#include <algorithm>

namespace forkd {
namespace {

// An optional sub-map: the node, or an empty map when it is unset.
YAML::Node MapOrEmpty(const YAML::Node& n) {
  return n.IsDefined() && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Map);
}

}  // namespace

const std::vector<OptionSpec>& DestinationOptions() {
  static const std::vector<OptionSpec> specs = {
      {"type", OptType::kEnum, "", "The sink type", true, {}},
      {"batch", OptType::kNode, "", "Batching: max_events, max_bytes, max_wait, in_flight"},
      {"retry", OptType::kNode, "", "Retries of a failed flush (see below)"},
      {"breaker", OptType::kNode, "", "Circuit breaker (see below)"},
      {"rate_limit", OptType::kNode, "",
       "Most events per second delivered: a number, or {rate, burst} (see below); off when unset"},
      {"backlog", OptType::kNode, "",
       "How much log the destination may hold back, and what happens past it (see below)"},
      {"priority", OptType::kEnum, "normal",
       "CPU share of the delivery thread: high ones are served first, low ones are throttled "
       "while a high one lags",
       false, {"high", "normal", "low"}},
      {"transforms", OptType::kNode, "",
       "Steps applied to every record before the sink: template names or inline steps"},
      {"from", OptType::kEnum, "latest",
       "Where a destination new to this data_dir starts: at the log's end, or at the oldest "
       "event still retained (older events then go through today's routes)",
       false, {"latest", "earliest"}},
  };
  return specs;
}

const std::vector<OptionSpec>& BatchOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_events", OptType::kInt, "10000", "Flush after this many events", false, {}, 1,
       1000000},
      {"max_bytes", OptType::kSize, "8MiB", "Flush after this many bytes of output", false, {},
       1024, 1ll << 30},
      {"max_wait", OptType::kDuration, "100ms", "Flush at the latest this long after the first "
       "event of a batch", false, {}, 0, 3600000},
      {"in_flight", OptType::kInt, "4",
       "Batches on their way to the store at once, for the sinks that pipeline (clickhouse, "
       "kafka, postgres appends; http only when set, since a receiver may rely on the order of "
       "batches); the cursor still moves in log order. 1: one at a time",
       false, {}, 1, 64},
  };
  return specs;
}

const std::vector<OptionSpec>& RetryOptions() {
  static const std::vector<OptionSpec> specs = {
      {"initial", OptType::kDuration, "100ms", "First backoff after a failed flush", false, {},
       1, 3600000},
      {"max", OptType::kDuration, "30s", "Largest backoff", false, {}, 1, 86400000},
      {"max_attempts", OptType::kInt, "0",
       "Give up on a batch after this many failed attempts, sending its records to dead "
       "letters; 0: never",
       false, {}, 0, 1000000000},
      {"max_age", OptType::kDuration, "0",
       "Give up on a batch failing for this long, sending its records to dead letters; 0: never",
       false, {}, 0, 365ll * 86400000},
  };
  return specs;
}

const std::vector<OptionSpec>& BreakerOptions() {
  static const std::vector<OptionSpec> specs = {
      {"failures", OptType::kInt, "5",
       "Consecutive failed flushes that open the breaker; 0: no breaker", false, {}, 0, 1000000},
      {"cooldown", OptType::kDuration, "10s",
       "How long it stays open before one half-open probe", false, {}, 1, 86400000},
  };
  return specs;
}

const std::vector<OptionSpec>& RateLimitOptions() {
  static const std::vector<OptionSpec> specs = {
      {"rate", OptType::kInt, "", "Events per second", true, {}, 1, 100000000},
      {"burst", OptType::kInt, "0", "Events allowed at once after idling; 0: one second's worth",
       false, {}, 0, 100000000},
  };
  return specs;
}

const std::vector<OptionSpec>& BacklogOptions() {
  static const std::vector<OptionSpec> specs = {
      {"max_bytes", OptType::kSize, "1GiB",
       "Log bytes held for this destination (from its cursor to the log's end) before the "
       "policy applies; 0: no limit",
       false, {}, 0, 1ll << 50},
      {"max_events", OptType::kInt, "0",
       "Log entries held for this destination before the policy applies; 0: no limit", false,
       {}, 0, 1ll << 50},
      {"policy", OptType::kEnum, "block",
       "block: refuse new events for it with FORK_BACKPRESSURE; shed: skip ahead, recording "
       "the skipped range in dead letters",
       false, {"block", "shed"}},
  };
  return specs;
}

void ParseDestinations(const YAML::Node& dests, const SinkOptionsLookup& sinks,
                       const std::vector<std::string_view>& sink_types, const SinkCheck& check,
                       const transforms::ParseContext& pc,
                       const transforms::TemplateNodes& templates,
                       std::vector<DestinationConfig>* out) {
  const std::string& path = pc.file;
  std::vector<ConfigError>* errors = pc.errors;
  if (dests.IsDefined() && !dests.IsNull() && !dests.IsMap()) {
    errors->push_back({path, MarkOf(dests), "destinations: expected a map of name: {type: ...}"});
  } else if (dests.IsMap()) {
    if (dests.size() == 0) {
      errors->push_back({path, MarkOf(dests), "destinations: at least one is needed"});
    }
    std::vector<OptionSpec> dest_specs = DestinationOptions();
    dest_specs[0].choices = sink_types;
    for (auto it = dests.begin(); it != dests.end(); ++it) {
      DestinationConfig d;
      d.name = it->first.Scalar();
      d.mark = MarkOf(it->first);
      const std::string where = "destinations." + d.name;
      if (!ValidName(d.name)) {
        errors->push_back({path, d.mark, where + ": names are 1-64 letters, digits, _ or -"});
        continue;
      }
      if (!it->second.IsMap()) {
        errors->push_back({path, MarkOf(it->second), where + ": expected a map with a type"});
        continue;
      }
      if (!ParseTypedEntry(it->second, dest_specs, sinks, check, where, path, d.mark, &d.common,
                           &d.sink, errors)) {
        continue;
      }
      d.type = d.common.Str("type");

      Options batch;
      const YAML::Node bn = d.common.Node("batch");
      ParseOptions(bn.IsDefined() && !bn.IsNull() ? bn : YAML::Node(YAML::NodeType::Map),
                   BatchOptions(), {}, where + ".batch", path, &batch, errors);
      d.batch_max_events = batch.Int("max_events");
      d.batch_max_bytes = batch.Bytes("max_bytes");
      d.batch_max_wait_ms = batch.Millis("max_wait");
      d.batch_in_flight = batch.Has("in_flight") ? batch.Int("in_flight") : 0;
      Options retry;
      const YAML::Node rn = d.common.Node("retry");
      ParseOptions(rn.IsDefined() && !rn.IsNull() ? rn : YAML::Node(YAML::NodeType::Map),
                   RetryOptions(), {}, where + ".retry", path, &retry, errors);
      d.retry_initial_ms = retry.Millis("initial");
      d.retry_max_ms = retry.Millis("max");
      d.retry_max_attempts = retry.Int("max_attempts");
      d.retry_max_age_ms = retry.Millis("max_age");
      Options breaker;
      ParseOptions(MapOrEmpty(d.common.Node("breaker")), BreakerOptions(), {},
                   where + ".breaker", path, &breaker, errors);
      d.breaker_failures = breaker.Int("failures");
      d.breaker_cooldown_ms = breaker.Millis("cooldown");
      if (const YAML::Node rl = d.common.Node("rate_limit"); rl.IsDefined() && !rl.IsNull()) {
        if (rl.IsScalar()) {
          // The short form: events per second.
          YAML::Node m(YAML::NodeType::Map);
          m["rate"] = rl;
          Options o;
          if (ParseOptions(m, RateLimitOptions(), {}, where + ".rate_limit", path, &o, errors,
                           &rl)) {
            d.rate_limit = o.Int("rate");
          }
        } else {
          Options o;
          if (ParseOptions(rl, RateLimitOptions(), {}, where + ".rate_limit", path, &o, errors)) {
            d.rate_limit = o.Int("rate");
            d.rate_burst = o.Int("burst");
          }
        }
        if (d.rate_burst == 0) d.rate_burst = d.rate_limit;
      }
      Options backlog;
      ParseOptions(MapOrEmpty(d.common.Node("backlog")), BacklogOptions(), {},
                   where + ".backlog", path, &backlog, errors);
      d.backlog_max_bytes = backlog.Bytes("max_bytes");
      d.backlog_max_events = backlog.Int("max_events");
      d.backlog_shed = backlog.Str("policy") == "shed";
      const std::string& prio = d.common.Str("priority");
      d.priority = prio == "high" ? Priority::kHigh : prio == "low" ? Priority::kLow
                                                                     : Priority::kNormal;
      d.from_earliest = d.common.Str("from") == "earliest";
      d.fingerprint = YAML::Dump(it->second);
      if (const YAML::Node tn = d.common.Node("transforms"); tn.IsDefined() && !tn.IsNull()) {
        transforms::ParseChain(tn, where + ".transforms", pc, &d.chain);
        transforms::AppendChainText(tn, templates, &d.fingerprint);
      }
      if (d.backlog_shed && d.chain.aggregate) {
        errors->push_back({path, backlog.Get("policy").mark,
                           where + ".backlog.policy: shed cannot be used with an aggregate step "
                                   "(its windows would silently miss events); use block"});
      }
      out->push_back(std::move(d));
    }
  }
  if (out->size() > 64) {
    errors->push_back({path, MarkOf(dests), "destinations: at most 64 are supported, not " +
                                                std::to_string(out->size())});
  }
}

}  // namespace forkd
