// The `sources` section of the config: what feeds the log besides clients
// (a Kafka topic now; an outbox table, an HTTP feed later). Each source has
// the keys every source has (type, to) and its type's own options, checked
// against that type's table (sources/registry.h). Parsed by
// config/config.cc after the destinations, which `to` names.
//
//   sources:
//     bus: { type: kafka, brokers: "127.0.0.1:9092", topic: orders,
//            group: fork-hub, to: [store, ticker] }
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"

namespace forkd {

struct SourceConfig {
  std::string name;
  std::string type;
  Mark mark;        // of its name
  Options options;  // the type's own options, per its table
  // Destinations its events go to; empty: the routes decide.
  std::vector<std::string> to;
  // Changes whenever anything in its section does.
  std::string fingerprint;
};

// Looks up a source type's option table; nullptr for an unknown type.
using SourceOptionsLookup =
    std::function<const std::vector<OptionSpec>*(std::string_view type)>;

// A source type's own check of its parsed options, beyond the table: false
// with *error as "option: message" or "option.sub: message".
using SourceCheck =
    std::function<bool(std::string_view type, const Options& options, std::string* error)>;

// The keys every source has, for parsing and docs.
const std::vector<OptionSpec>& SourceOptions();

// Reads `sources` (a map of name: {type, ...}; unset or null: none) into
// *out, in file order; a source with an error is left out. `types` are the
// choices of `type`; `check` (may be null) runs after a type's table passed;
// `destinations` are the names `to` may use. Problems are added to *errors.
void ParseSources(const YAML::Node& sources, const std::string& file,
                  const SourceOptionsLookup& lookup, const std::vector<std::string_view>& types,
                  const SourceCheck& check, const std::vector<std::string>& destinations,
                  std::vector<SourceConfig>* out, std::vector<ConfigError>* errors);

}  // namespace forkd
