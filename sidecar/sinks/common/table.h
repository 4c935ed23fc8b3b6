// The table a SQL-like sink writes (sqlite, postgres, clickhouse): its
// columns, declared in the config or inferred from the first record, and the
// mapping of one record onto them.
//
// Declared: `columns: { orderId: text, total: real, items: json }`. Types:
// text, integer, real, boolean, json, timestamp (each store maps them to its
// own; aliases: string, int, bigint, float, double, bool).
//
// Inferred (no `columns`): the first record's top-level fields, in order:
// string -> text, integer -> integer, float -> real, boolean -> boolean,
// map or array -> json, the timestamp extension -> timestamp, nil or binary
// -> text. Later records are mapped onto those columns.
//
// Every table also has `_fork_id` (text, first) and, unless `extra: false`,
// an `extra` json column that holds the fields the table has no column for.
// With `extra: false`, a record with such a field is refused (it goes to dead
// letters) with the field named.
//
// `mode: upsert` needs a key: `key` (a column name, default `_fork_id`, which
// is what aggregate rows are keyed by).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/options.h"
#include "sinks/sink.h"
#include "wire/msgpack.h"

namespace forkd::sinks {

enum class ColType { kText, kInteger, kReal, kBoolean, kJson, kTimestamp };

struct Column {
  std::string name;
  ColType type = ColType::kText;
};

struct TableSpec {
  std::string table;
  std::vector<Column> columns;  // declared; empty: inferred from the first record
  bool upsert = false;
  std::string key = "_fork_id";
  bool extra = true;
};

// The options every SQL-like sink shares, for their tables: table, columns,
// mode, key, extra.
std::vector<OptionSpec> TableOptions();
// Reads them. False with *error (naming the option) on a bad value.
bool ParseTableSpec(const Options& o, TableSpec* out, std::string* error);
// The table spec of a destination, as its sink starts: parsed (an error is
// prefixed "destinations.<name>.", for Open to report), and upserting by
// default when the destination aggregates: its rows are versions of one row
// per (window, group).
bool DestinationTableSpec(const SinkContext& ctx, TableSpec* out, std::string* error);
// ParseTableSpec as a check, for the config loader.
bool CheckTableOptions(const Options& o, std::string* error);
const char* ColTypeName(ColType t);
bool ParseColType(std::string_view s, ColType* out);

// Columns for a table with no declared ones: _fork_id, the first record's
// fields, and extra (when enabled). A field named _fork_id or extra is left
// to the record's own columns (it is dropped / lands in extra).
std::vector<Column> InferColumns(const TableSpec& spec, const uint8_t* payload);
// Declared columns, completed with _fork_id first and extra last.
std::vector<Column> CompleteColumns(const TableSpec& spec);

// One record laid out on the columns: per column, the msgpack value (null
// when the record lacks the field), and the JSON text of the extra fields.
class RowMapper {
 public:
  // `columns` as returned by InferColumns or CompleteColumns.
  void Reset(const std::vector<Column>* columns, bool extra);
  // Maps the record. False with *error when a field has no column and extra
  // is off.
  bool Map(const uint8_t* payload, size_t size, std::string* error);
  // The value of column i (the msgpack bytes), or null for a missing field.
  // Column 0 (_fork_id) and the extra column are filled by the sink.
  const uint8_t* value(size_t i) const { return values_[i]; }
  // {"field": value, ...} of the fields without a column; "" when none.
  const std::string& extra_json() const { return extra_; }
  size_t extra_index() const { return extra_index_; }  // SIZE_MAX without extra

 private:
  const std::vector<Column>* columns_ = nullptr;
  std::vector<const uint8_t*> values_;
  std::vector<size_t> hints_;  // by field position: the column it matched last
  std::string extra_;
  size_t extra_index_ = SIZE_MAX;
};

// A value as text for a column of type `t` (for stores that take text):
// strings as they are, numbers in their shortest form, booleans true/false,
// json columns as JSON text, timestamps ISO-8601. Returns false for nil.
bool CellText(const uint8_t* value, ColType t, std::string* out);

}  // namespace forkd::sinks
