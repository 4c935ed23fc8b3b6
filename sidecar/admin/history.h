// The last hour of every destination, one sample a second: what the
// dashboard charts (GET /api/history) and what the `rate` alert signal reads.
//
// Each destination has a fixed ring of kCapacity samples (40 bytes each,
// about 140 KiB),
// allocated when it first appears. Record() is called once a second by one
// thread (the server's housekeeping tick) with cumulative counters; the ring
// keeps per-second rates computed from the difference with the previous
// reading. Readers (the admin server's threads) take the same lock briefly.
//
// Destinations follow the config: one missing from a Record() call (removed
// by a reload) loses its history; one that appears (added by a reload)
// starts a new one, its first reading being only the baseline. A counter
// lower than at the previous reading (the destination's pipeline restarted
// after a config change) counts from zero again, so a rate is never
// negative. A missed second (a tick skipped while a reload held the server)
// leaves a gap: the next sample spans the whole interval.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace forkd::admin {

// Cumulative counters and current gauges of one destination at one moment.
struct Counters {
  uint64_t routed = 0;     // events routed to it since forkd started
  uint64_t delivered = 0;  // events its sink committed
  uint64_t errors = 0;     // failed attempts (flush, open, read, commit, start)
  double lag_events = 0;
  double lag_seconds = 0;
  double dead_letters = 0;  // lines in its dead letters file
};

// One second (or `span` seconds after a gap) of one destination.
struct Sample {
  int64_t at = 0;      // unix seconds at the end of the interval
  uint32_t span = 1;   // seconds since the previous sample
  float routed = 0;    // events per second routed to it
  float delivered = 0; // events per second delivered
  float errors = 0;    // failed attempts per second
  float lag_events = 0;
  float lag_seconds = 0;
  float dead_letters = 0;
};

class History {
 public:
  static constexpr size_t kCapacity = 3600;

  // One reading of every configured destination, in config order, taken at
  // unix second `at`. A reading at or before the last recorded second is
  // ignored (the clock stepped back, or a second tick in the same second).
  void Record(int64_t at, const std::vector<std::pair<std::string, Counters>>& readings);

  // Events routed per second to `destination`, averaged over its samples of
  // the last `window` seconds (fewer when it has less history). False when
  // it has no sample yet.
  [[nodiscard]] bool RoutedRate(const std::string& destination, int64_t window,
                                double* out) const;

  // The samples newer than `since` (unix seconds; 0: all), as JSON:
  //   {"now":T,"capacity":3600,"destinations":[{"name":"d","at":[...],
  //    "span":[...],"throughput":[...],"routed":[...],"errors":[...],
  //    "lag_events":[...],"lag_seconds":[...],"dead_letters":[...]}, ...]}
  // Each array holds one value per sample, oldest first; throughput is the
  // delivered rate. "now" is the newest sample's second, to pass back as
  // `since` on the next call.
  std::string Json(int64_t since) const;

  // Samples of `destination`, oldest first (for tests).
  std::vector<Sample> SamplesOf(const std::string& destination) const;

 private:
  struct Ring {
    std::vector<Sample> samples;  // kCapacity, circular
    size_t next = 0;              // where the next sample goes
    size_t count = 0;
    Counters last;
    int64_t last_at = 0;
    template <typename F>
    void ForEach(F&& f) const;  // oldest first
  };
  mutable std::mutex mu_;
  std::vector<std::string> order_;    // guarded; config order
  std::map<std::string, Ring> rings_;  // guarded
  int64_t now_ = 0;                    // guarded; the last second recorded
};

// Reads the `since` query parameter of GET /api/history: unix seconds, a
// decimal integer of at most 12 digits (empty: 0). False with *error set
// otherwise.
[[nodiscard]] bool ParseSince(const std::string& text, int64_t* out, std::string* error);

}  // namespace forkd::admin
