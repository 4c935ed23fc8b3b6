// The answer of GET /api/events/<id> (and `forkd status --event`): where one
// event stands per configured destination, from what the engine knows
// without tracking anything per event: the destinations its log entry
// records, the destination's transforms run again on it (the pipelines'
// Shaper), the destination's delivery position, and its dead letters.
//
// Threads: any; reads the dead-letter files.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "log/event_indexer.h"
#include "pipeline/dead_letters.h"

namespace forkd::pipeline {

// Where one destination's delivery stands.
struct DeliveryProgress {
  bool known = false;     // false: no position (between a reload's stop and start)
  uint64_t next_lsn = 0;  // every entry below is done with
  std::string state;      // running, retrying, breaker open, failed to start, stopped...
  int64_t attempts = 0;   // failed tries of what it delivers now
  std::string last_error;
  // When the position passed `lsn`, wall-clock microseconds: *at the first
  // time it was seen past it, *after the last time it was seen short of it
  // (0: not known). Null: not known at all.
  std::function<void(uint64_t lsn, int64_t* at, int64_t* after)> passed;
};

// The JSON answer for `id`, found at `entries` (oldest first, not empty):
// {"id", "lsn", "received_at", "received_us", ["entries"], "destinations":
// [{"name", "status": delivered|pending|dead_lettered|filtered, ...}]}.
// `progress` is asked once per configured destination routed the event.
std::string EventStatusJson(const Config& config, const std::string& id,
                            const std::vector<log::FoundEntry>& entries,
                            const std::function<DeliveryProgress(const std::string&)>& progress,
                            const DeadLetters& dead_letters);

// Why `id` cannot be an event id ("" when it can): empty, longer than
// kMaxEventIdBytes (an idempotencyKey's limit), control characters, not UTF-8.
inline constexpr size_t kMaxEventIdBytes = 256;
std::string MalformedEventId(const std::string& id);

// "2026-12-04T22:30:00.123Z"
std::string UtcMillis(int64_t wall_us);

}  // namespace forkd::pipeline
