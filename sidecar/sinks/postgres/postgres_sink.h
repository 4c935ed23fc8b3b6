// The `postgres` sink (libpq): each batch is one transaction into `table`.
//
// The table is created when missing (CREATE TABLE IF NOT EXISTS) from the
// declared `columns` or from the first record (sinks/common/table.h): text ->
// text, integer -> bigint, real -> double precision, boolean -> boolean, json
// -> jsonb, timestamp -> timestamptz, `_fork_id text` first and `extra jsonb`
// last. `_fork_id` is the PRIMARY KEY, except with `mode: upsert` and another
// `key`: that column then gets a UNIQUE constraint and `_fork_id` none.
// A table that exists is used as it is: its columns are read from
// information_schema.columns (declared `columns` are then ignored); columns
// the server fills (a default, identity or generated) are left to it; a table
// without `extra` refuses fields it has no column for.
//
// append: COPY ... FROM STDIN (text format), one statement per batch. When
// the table has a unique index on _fork_id alone (a table the sink created
// has), a COPY refused for a duplicate key is sent again as INSERT ... ON
// CONFLICT (_fork_id) DO NOTHING: a batch delivered again after a crash
// changes nothing, so appends are exactly once and the sink is idempotent.
// upsert: multi-row INSERT ... ON CONFLICT (key) DO UPDATE SET every column =
// EXCLUDED.column, values bound as parameters; of several records with the
// same key in a batch only the last is sent. Identifiers are always quoted;
// no SQL is built from values. A destination with an aggregate step upserts
// unless it sets `mode`.
//
// Pipelining (append only): up to `batch.in_flight` batches are on their way
// at once, each a COPY on its own connection. Send starts the COPY and streams
// the rows; Await reads its answer. A COPY refused for a duplicate _fork_id
// (a batch after a failed one, sent again) goes again as INSERT ... ON
// CONFLICT DO NOTHING on the same connection, from the batch it keeps until
// answered. A table without a unique index on _fork_id is not idempotent, so
// there each batch is delivered whole within Send, one at a time. Upserts are
// never pipelined: two batches updating one key could commit out of order.
//
// Answers: connection lost, serialization failure, deadlock, shutdown, out of
// resources, timeouts -> retry (the connection is dropped and made again at
// the next Flush); a record the server refuses (constraint, data or type
// error) -> fatal with the server's message, so the pipeline splits the batch
// down to that record. An undefined table or column means the table changed
// since it was read: it is read again (created if missing) and the batch
// retried; fatal only if the table just read fails the same way. Messages
// name the table and never contain the url's password.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"
#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "sinks/sink.h"

struct pg_conn;
struct pg_result;

namespace forkd::sinks {

const std::vector<OptionSpec>& PostgresSinkOptions();
std::unique_ptr<Sink> CreatePostgresSink(const SinkContext& ctx);
// `forkd check`: the table options, the url's scheme and syntax, identifier
// lengths. Errors start with the option they are about.
bool CheckPostgresOptions(const Options& o, std::string* error);

namespace pg {

// True when an error with this SQLSTATE is worth retrying (the same batch may
// succeed later); false when the server refuses the records themselves.
bool SqlStateRetries(std::string_view sqlstate);
// "name" with any " doubled: an identifier as SQL spells it.
std::string QuoteIdent(std::string_view name);
// Appends `s` as one field of COPY's text format (\\, \n, \r, \t escaped).
void AppendCopyText(std::string_view s, std::string* out);
// The url for messages: scheme, host, port and database; no user, password
// or query.
std::string SafeUrl(const std::string& url);
// `msg` with the url's password (and the url itself) replaced.
std::string Redact(std::string msg, const std::string& url);
// An identifier postgres can hold as it is: 1-63 bytes, no NUL.
bool ValidIdent(std::string_view name);

}  // namespace pg

class PostgresSink : public Sink {
 public:
  struct Settings {
    std::string url;
    std::string schema;  // empty: the connection's current_schema()
    TableSpec table;
    bool merge = false;  // an aggregate shared by instances (sinks/common/merge.h)
    MergeSpec merge_spec;
    int64_t timeout_ms = 30000;
    std::string error;  // a problem found while reading the options; Open() reports it
  };
  explicit PostgresSink(Settings s);
  ~PostgresSink() override;
  PostgresSink(const PostgresSink&) = delete;
  PostgresSink& operator=(const PostgresSink&) = delete;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override { return bytes_.size(); }
  Status Flush() override;
  void Discard() override;
  // Upserts are; appends are when the table has a unique index on _fork_id.
  bool idempotent() const override { return s_.table.upsert || id_unique_; }
  bool pipelines() const override { return !s_.table.upsert && !s_.merge; }
  Status Send(uint64_t ticket) override;
  Status Await(uint64_t ticket) override;
  bool merges_instances() const override { return s_.merge; }

 private:
  struct Held {
    size_t id_at, id_size, payload_at, payload_size;
  };
  std::string_view Id(const Held& h) const { return {bytes_.data() + h.id_at, h.id_size}; }
  const uint8_t* Payload(const Held& h) const {
    return reinterpret_cast<const uint8_t*>(bytes_.data() + h.payload_at);
  }

  // A batch sent and not yet answered, with its own connection and records.
  struct Flight {
    uint64_t ticket = 0;
    pg_conn* conn = nullptr;
    bool answered = false;  // delivered whole within Send (not idempotent)
    std::string bytes;
    std::vector<Held> recs;
  };
  // Runs `fn` with *c as the connection (made by Connect when null); *c is
  // what the connection is afterwards (null once dropped).
  template <class F>
  Status On(pg_conn** c, F&& fn);
  // An idle connection for a flight: a spare one, else conn_, else null.
  pg_conn* TakeConn();
  void PutConn(pg_conn* c);
  // Appends with a unique _fork_id: the batch as INSERT ... ON CONFLICT DO
  // NOTHING (records delivered before are skipped).
  Status SendSkippingDuplicates();

  Status Connect();
  void Disconnect();
  Status EnsureTable();
  Status ReadColumns(std::vector<Column>* cols, std::vector<bool>* server_filled, bool* found);
  Status CreateTable();
  // The merged view over the parts table (created, or migrated from a
  // single-instance table), for an aggregate shared by instances.
  Status EnsureMergeView(const std::vector<Column>& parts_columns);
  // Lays the batch out as COPY text, or as parameter values (of the records
  // with the same key, the last when upserting).
  Status BuildRows(bool params);
  // One cell's text; false for NULL.
  bool Cell(size_t col, std::string_view id, std::string* out) const;
  Status SendCopy();
  // SendCopy up to its answer: the rows are streamed and the COPY ended.
  Status StartCopy();
  // Multi-row INSERTs ending in `conflict` (ON CONFLICT ...), in one
  // transaction.
  Status SendInsert(const std::string& conflict);

  // Low-level, non-blocking with the flush's deadline.
  Status Exec(const std::string& what, const std::string& sql,
              const std::vector<const char*>& params, pg_result** out = nullptr);
  Status WaitSocket(bool write);
  Status FlushOutput();
  Status Collect(const std::string& what, pg_result** out, bool copy_in = false);
  Status Failed(const std::string& what);                // from the connection's state
  Status ServerError(pg_result* r, const std::string& what);  // from a result
  void Rollback();

  Settings s_;
  std::string safe_url_;
  pg_conn* conn_ = nullptr;
  std::vector<pg_conn*> spare_conns_;  // idle connections of answered flights
  std::deque<Flight> flights_;         // in the order sent
  std::vector<Flight> spare_flights_;  // buffers to reuse
  int64_t deadline_ms_ = 0;
  std::string last_state_;  // SQLSTATE of the last server error

  // The table as it is at the server, once read.
  bool table_ready_ = false;
  bool table_fresh_ = false;  // read during this Flush
  std::string schema_;      // resolved
  std::string qualified_;   // "schema"."table"
  std::string shown_;       // schema.table, for messages
  std::vector<Column> cols_;  // _fork_id first, extra last (RowMapper's layout)
  bool has_id_ = false;       // the table has _fork_id
  bool has_extra_ = false;    // extra fields go to its extra column
  bool id_unique_ = false;    // a unique index on _fork_id alone
  size_t key_col_ = 0;        // upsert: index in cols_
  std::string column_list_;   // ("c1","c2",...) of the columns written
  RowMapper mapper_;

  // The batch: ids and payloads, copied.
  std::string bytes_;
  std::vector<Held> recs_;

  // Built at Flush.
  std::string copy_;                  // COPY text
  size_t rows_ = 0;
  std::string cells_;                 // upsert: NUL-terminated values
  std::vector<size_t> cell_at_;       // offset in cells_, SIZE_MAX for NULL
};

}  // namespace forkd::sinks
