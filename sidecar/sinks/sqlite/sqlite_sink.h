// The `sqlite` sink: the embedded default store, no server to run.
//
// One transaction per batch, in WAL mode, with one prepared statement bound
// value by value (identifiers quoted, values never in the SQL text).
// mode: append inserts each record once: `_fork_id` is the primary key and a
// record delivered again after a crash is ignored (ON CONFLICT DO NOTHING).
// mode: upsert replaces the row with the same `key` (ON CONFLICT DO UPDATE);
// a destination with an aggregate step upserts by default, so its rows are
// current per (window, group). The table is created from `columns`, or from
// the first record (sinks/common/table.h has the rule); an existing table is
// used as it is, with an `extra` column added when it lacks one, and a
// unique index on `_fork_id` when it has none (appends stay exactly once; a
// table that already holds duplicate ids is refused at open, named).
// An aggregating destination shared by several forkd writes its partial rows
// to `<table>_parts` and makes `<table>` a view merging them
// (sinks/common/merge.h).
//
// Errors: busy, locked, I/O and full-disk are retried; constraint and type
// errors are fatal, so the pipeline splits the batch down to the records the
// table refuses, which go to dead letters.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"
#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "sinks/sink.h"

struct sqlite3;
struct sqlite3_stmt;

namespace forkd::sinks {

const std::vector<OptionSpec>& SqliteSinkOptions();
std::unique_ptr<Sink> CreateSqliteSink(const SinkContext& ctx);
// For `forkd check`: reads the database, if it exists, without changing it.
// *note says how the destination writes (appends exactly once by a primary
// key or by a unique index added at open, upserts, merges an aggregate);
// false with *error for a table it cannot write exactly once.
bool InspectSqlite(const SinkContext& ctx, std::string* note, std::string* error);

class SqliteSink : public Sink {
 public:
  struct Settings {
    std::string path;  // absolute
    TableSpec table;
    bool merge = false;  // an aggregate shared by instances (sinks/common/merge.h)
    MergeSpec merge_spec;
    bool synchronous_full = true;
    std::string error;  // a bad option: Open fails with it
  };
  explicit SqliteSink(Settings s);
  ~SqliteSink() override;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override { return arena_.size(); }
  Status Flush() override;
  void Discard() override;
  // Append ignores an id it has; upsert replaces with the same values.
  bool idempotent() const override { return true; }
  bool merges_instances() const override { return s_.merge; }

 private:
  // Creates or reads the table and prepares the insert for these columns.
  Status Prepare(const uint8_t* first_payload);
  Status Exec(const char* sql);
  // The merged view over the parts table (created, or migrated from a
  // single-instance table), for an aggregate shared by instances.
  Status EnsureMergeView(const std::vector<Column>& parts_columns);
  // An existing table without a unique _fork_id gets a unique index, so
  // that appends stay exactly once.
  Status EnsureUniqueId();
  Status Error(const char* what, int rc) const;
  void Close();

  Settings s_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  std::vector<Column> columns_;
  RowMapper mapper_;
  // The batch: ids and payloads copied (the log's memory moves on), kept
  // until a Flush succeeds so a retry sends the same records.
  std::string arena_;
  struct Held {
    size_t id_at, id_size, payload_at, payload_size;
  };
  std::vector<Held> batch_;
  std::string cell_;  // scratch for json and timestamps
};

}  // namespace forkd::sinks
