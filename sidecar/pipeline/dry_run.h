// A dry run of one event through the config: the routes, then each
// destination's transforms (its aggregate included), exactly as forkd runs
// them, without a log or sinks. `forkd explain` prints it; `forkd test`
// compares it with expected records.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace forkd::pipeline {

struct DryRunEvent {
  std::string payload;                    // msgpack map
  std::vector<std::string> destinations;  // named by the caller; empty: the routes decide
  std::string options;                    // msgpack map of per-call options, or empty
  int64_t recv_us = 0;                    // receipt time
  std::string event_id = "00000000000000000000000000000000-1";
};

struct DryRunResult {
  struct Destination {
    std::string name;
    std::vector<std::pair<std::string, std::string>> records;  // (id, msgpack map)
    std::vector<std::string> dead_letters;                     // reasons
    int filtered = 0;
  };
  std::vector<Destination> destinations;  // in config order

  // {"dest": [{"_fork_id": ..., ...}, ...], ...}
  std::string ToJson(bool with_ids) const;
};

// Returns a nack code (FORK_...) with *error when forkd would refuse the
// event, or nullptr.
const char* DryRun(const Config& config, const DryRunEvent& event, DryRunResult* out,
                   std::string* error);

}  // namespace forkd::pipeline
