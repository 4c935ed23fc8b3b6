// aggregate: tumbling windows over an event-time field, grouped, with count,
// sum, min, max and avg. It emits one row per (window, group) — an upsert
// keyed by both — whenever that row changed, at most every `emit_every`, so
// analytics sees today's totals while the day runs.
//
// Exactness across crashes: the pipeline commits Checkpoint() with its
// cursor, and the state it holds covers exactly the log entries below that
// cursor. After a restart the pipeline restores it and re-reads the entries
// after the cursor, so each acknowledged event is counted once. Rows already
// emitted but not committed are emitted again with the same key and the
// same or newer values, which an upsert absorbs.
//
// Several forkd (one per app replica) may aggregate into one table. Each
// then emits its own partial rows (SetInstance): the row carries
// `_fork_instance` and `_fork_row` (the (window, group) id), an avg measure
// also its `_fork_sum_<name>` and `_fork_n_<name>`, and its id is
// "<instance>/<row id>". The table sinks keep those rows apart and merge
// them in a view (sinks/common/merge.h).
//
// Threads: an Aggregator belongs to one pipeline thread; the spec is shared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "transforms/transform.h"

namespace forkd::transforms {

// The fields of a partial row that carry an average's parts.
inline const std::string kPartialSumPrefix = "_fork_sum_";
inline const std::string kPartialCountPrefix = "_fork_n_";

struct Measure {
  enum class Fn : uint8_t { kCount, kSum, kMin, kMax, kAvg };
  std::string name;
  Fn fn = Fn::kCount;
  Path field;  // unused for count
};

struct AggregateSpec {
  int64_t window_ms = 86400000;
  bool has_time_field = false;
  Path time_field;  // receipt time when unset
  std::vector<Path> group_by;
  std::vector<Measure> measures;
  int64_t lateness_ms = 0;
  int64_t emit_every_ms = 1000;
  uint64_t fingerprint = 0;  // changes when the spec's meaning does
};

std::shared_ptr<const AggregateSpec> ParseAggregate(const YAML::Node& args,
                                                    const std::string& path,
                                                    const ParseContext& pc);

// "daily", "day", "1d", "hourly", "1h", "15m" ... to milliseconds; false if
// it is none of these.
bool ParseWindow(std::string_view s, int64_t* ms);
// 86400000 -> "1d", 3600000 -> "1h", 900000 -> "15m", 1500 -> "1500ms".
std::string FormatWindow(int64_t ms);

class Aggregator {
 public:
  explicit Aggregator(std::shared_ptr<const AggregateSpec> spec);

  // Folds one record in. `window_ms` 0 means the spec's window. Returns
  // kDeadLetter with *reason for an event whose window closed more than
  // `lateness` ago, or whose time field is not a time.
  Outcome Add(const Doc& doc, int64_t recv_us, int64_t window_ms, std::string* reason);

  // Emit partial rows of this forkd instance (see above); "" (the
  // default): plain rows, ids without an instance.
  void SetInstance(std::string instance) { instance_ = std::move(instance); }

  bool dirty() const { return dirty_count_ > 0; }
  size_t groups() const { return groups_.size(); }
  int64_t late() const { return late_; }

  // Calls `emit(id, row)` for each (window, group) changed since the last
  // Emit — `row` is a msgpack map: window_start, window, the group fields,
  // the measures — then forgets the windows the watermark has closed.
  void Emit(const std::function<void(std::string_view id, const wire::Buffer& row)>& emit);

  // The whole state, for the cursor; Restore takes it back. Restore fails
  // (and leaves the state empty) for bytes of another spec or version.
  std::string Checkpoint() const;
  [[nodiscard]] bool Restore(std::string_view state, std::string* error);

 private:
  struct Acc {
    int64_t n = 0;       // values seen
    int64_t isum = 0;
    double fsum = 0;
    bool is_float = false;
    double min = 0, max = 0;
    bool all_int = true;
  };
  struct Group {
    int64_t window_ms = 0;
    int64_t start_ms = 0;
    std::string values;  // the group-by values, msgpack, concatenated
    int64_t count = 0;
    bool dirty = false;
    std::vector<Acc> accs;
  };
  void Row(const Group& g, wire::Buffer* out, std::string* id) const;

  std::shared_ptr<const AggregateSpec> spec_;
  std::unordered_map<std::string, Group> groups_;
  int64_t watermark_ms_ = INT64_MIN;
  size_t dirty_count_ = 0;
  int64_t late_ = 0;
  std::string key_;  // reused per Add
  std::string instance_;
};

}  // namespace forkd::transforms
