// An aggregating destination's table when several forkd (one per app
// replica, each with its own log) feed it. Each instance upserts its own
// partial rows, keyed "<instance>/<row id>", into `<table>_parts`; the table
// name the user configured is a view that merges them per (window, group):
// count and sum add up, min and max take the extremes, avg divides the summed
// sums by the summed counts (each partial row carries `_fork_sum_<m>` and
// `_fork_n_<m>` for that). An instance's rows hold its exact totals (the
// aggregate's state is committed with its cursor), so the view is exact over
// every instance's events, and stays so when an instance goes away for good:
// its rows stay.
//
//   SELECT * FROM daily_revenue    -- one row per (window, group), merged
//   SELECT * FROM daily_revenue_parts WHERE _fork_instance = 'web-1'
//
// A table written by the single-instance layout (a table, not a view, under
// the configured name) is migrated when the sink first opens: its rows are
// copied into the parts table as this instance's, the table is renamed
// `<table>_before_merge`, and the view takes its name. An average carried
// over that way counts as one value of its window.
#pragma once

#include <string>
#include <vector>

#include "sinks/common/table.h"
#include "sinks/sink.h"

namespace forkd::sinks {

struct MergeSpec {
  enum class Fn { kSum, kMin, kMax, kAvg };
  struct Measure {
    std::string name;
    Fn fn = Fn::kSum;
  };
  std::string view;      // the configured table: what users query
  std::string parts;     // <view>_parts: the instances' partial rows
  std::string backup;    // <view>_before_merge: a migrated single-instance table
  std::string instance;  // this forkd's
  std::vector<std::string> keys;  // window_start, window, the group-by fields
  std::vector<Measure> measures;
};

// True, with *out filled, for a destination whose rows merge across
// instances: it aggregates and upserts on _fork_id (the default). Its table
// spec then names the parts table, and declared columns gain the partial
// row's own (_fork_instance, _fork_row, an avg's parts).
bool MergeSpecFor(const SinkContext& ctx, TableSpec* table, MergeSpec* out);

enum class SqlDialect { kSqlite, kPostgres, kClickHouse };

// The view's SELECT over the parts table `parts_ref` (quoted, qualified as
// the store needs) with these columns. "" with *error when a key or measure
// has no column (a step after the aggregate renamed or dropped it).
std::string MergeSelect(SqlDialect d, const MergeSpec& m, const std::vector<Column>& parts_columns,
                        const std::string& parts_ref, std::string* error);

// INSERT INTO parts ... SELECT ... FROM old: a single-instance table's rows
// as this instance's partial rows.
std::string MigrateRows(SqlDialect d, const MergeSpec& m, const std::vector<Column>& old_columns,
                        const std::vector<Column>& parts_columns, const std::string& old_ref,
                        const std::string& parts_ref);

// An identifier quoted for the dialect: "x" (sqlite, postgres) or `x`.
std::string QuoteIdentFor(SqlDialect d, std::string_view name);

}  // namespace forkd::sinks
