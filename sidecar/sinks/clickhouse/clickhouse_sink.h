// The `clickhouse` sink: each batch is one INSERT over ClickHouse's HTTP
// interface, `INSERT INTO `db`.`table` (columns) FORMAT JSONEachRow` in the
// url and one JSON object per record in the body, on one kept-alive libcurl
// connection. Values only ever travel in the body; identifiers are quoted
// with backticks and escaped.
//
// The table (sinks/common/table.h says which columns) is created when missing,
// before the first insert:
//   _fork_id String, <columns> Nullable(T), extra String [, _version UInt64]
//   ENGINE = ReplacingMergeTree[(_version)] ORDER BY <key>
// text and json -> String (json as its JSON text), integer -> Int64, real ->
// Float64, boolean -> Bool (UInt8 before ClickHouse has Bool), timestamp ->
// DateTime64(3, 'UTC') (DateTime('UTC'), whole seconds, before DateTime64).
// The upsert key is not Nullable. A batch sent twice (a retry after a
// timeout whose insert did land) gives rows that ReplacingMergeTree collapses
// on merge, and that `SELECT ... FINAL` shows once. `mode: upsert` orders by
// the key and versions each row with the log position it came from, so the
// newest version of a key wins; a destination with an aggregate step upserts
// unless its `mode` says otherwise. On servers that have them, the table is also
// created with non_replicated_deduplication_window and each insert carries an
// insert_deduplication_token (the SHA-256 of its body): a resent batch is
// dropped at insert time.
//
// A table that exists is used as it is: records are mapped onto its columns
// (declared columns it lacks are added, Nullable), and values are written
// for each column's actual type.
//
// Answers: 2xx is ok. Errors about the data (the server cannot parse a value
// into its column, a type mismatch, a value out of range) are fatal, with
// the server's message, so that the pipeline splits the batch down to the
// refused records; so is a record the sink cannot map itself (a field
// without a column with `extra: false`, an upsert without its key, an
// integer out of its column's range). Everything else (network errors,
// timeouts, 5xx, too many parts, memory limits, a wrong password, a missing
// database) is a retry: nothing is dead-lettered for a problem of the store.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/options.h"
#include "sinks/common/curl.h"
#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "sinks/sink.h"

namespace forkd::sinks {

const std::vector<OptionSpec>& ClickHouseSinkOptions();
std::unique_ptr<Sink> CreateClickHouseSink(const SinkContext& ctx);
// For `forkd check`: the table options, the url's scheme, the database,
// declared column names. The error starts with the option it is about.
bool CheckClickHouseOptions(const Options& o, std::string* error);

// Exposed for tests.
namespace clickhouse {
// `name` as a backquoted identifier: backslashes and backquotes escaped.
std::string QuoteIdent(std::string_view name);
// The ClickHouse error code of an answer: the X-ClickHouse-Exception-Code
// header's when given, else the "Code: N" the body starts with; 0 if none.
int ErrorCode(std::string_view header, std::string_view body);
// True for the errors that are about the data sent (cannot parse, type
// mismatch, out of range...): the batch can never succeed as it is.
bool IsDataError(int code, std::string_view body);
// A column's type as ClickHouse names it, seen by how values are written.
struct ChType {
  enum Kind { kString, kInt, kFloat, kBool, kDateTime, kDateTime64, kOther } kind = kOther;
  bool nullable = false;
  bool is_signed = true;  // kInt
  int bits = 64;          // kInt; 0 when wider than 64 (not range-checked)
};
ChType ParseChType(std::string_view type);
}  // namespace clickhouse

class ClickHouseSink : public Sink {
 public:
  struct Settings {
    std::string url;
    std::string database = "default";
    std::string user;
    std::string password;
    int64_t timeout_ms = 30000;
    int64_t connect_timeout_ms = 2000;
    TableSpec table;
    bool merge = false;  // an aggregate shared by instances (sinks/common/merge.h)
    MergeSpec merge_spec;
    std::string error;  // from reading the options; Open reports it
  };
  explicit ClickHouseSink(Settings s);
  ~ClickHouseSink() override;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override;
  Status Flush() override;
  void Discard() override;
  // A batch delivered again gives rows ReplacingMergeTree collapses (by
  // _fork_id, or by key and version): nothing changes for a FINAL reader.
  bool idempotent() const override { return true; }
  // Each batch on its way has its own connection (a lane), all driven by
  // one curl multi handle on the pipeline's thread.
  bool pipelines() const override { return true; }
  Status Send(uint64_t ticket) override;
  Status Await(uint64_t ticket) override;
  bool merges_instances() const override { return s_.merge; }

 private:
  struct Col {
    std::string name;
    ColType type = ColType::kText;  // what the record's value is taken as
    clickhouse::ChType ch;          // how it is written
    std::string key;                // ,"name": as it precedes the value in a row
  };
  struct Held {
    size_t id_off, id_len, payload_off, payload_len;
    uint64_t lsn;
  };

  // POSTs `data` to `url`, keeping `keep` bytes of the answer: true on 2xx.
  bool Post(const std::string& url, const std::string& data, size_t keep);
  // One statement: ok with the answer in conn_.body(), or why not (Fail).
  Status Query(const std::string& sql, const std::string& what);
  // The Status of a request that failed (`what` names it): retry, or fatal
  // for an error about the data. Sets last_code_.
  Status Fail(const std::string& what) { return Fail(conn_, what); }
  Status Fail(const CurlConnection& conn, const std::string& what);
  // Makes the batch's INSERT ready: the server probed, the table prepared,
  // the body encoded.
  Status Ready();
  Status Probe();
  Status PrepareTable();
  // The merged view over the parts table (created, or migrated from a
  // single-instance table), for an aggregate shared by instances.
  Status EnsureMergeView(const std::vector<std::pair<std::string, std::string>>& parts_columns);
  Status Describe(bool* exists, std::vector<std::pair<std::string, std::string>>* cols);
  std::string ChTypeFor(ColType t, bool nullable) const;
  Status Encode();
  bool EncodeValue(const uint8_t* v, const Col& c, std::string* out, std::string* error);
  void Clear();

  Settings s_;
  std::string safe_url_;
  std::string target_;  // `db`.`table`
  CurlConnection conn_;
  bool opened_ = false;
  int last_code_ = 0;  // the ClickHouse error code of the last failed request

  // What the server has (probed once per connection setup).
  bool probed_ = false;
  std::set<std::string> features_;
  // Two of them, looked up once per probe rather than per value or batch.
  bool best_effort_time_ = false;  // date_time_input_format=best_effort
  bool dedup_token_ = false;       // insert_deduplication_token
  // The table as found or created; ready_ false until it is.
  bool ready_ = false;
  std::vector<Col> cols_;          // data columns, in the table's order
  std::vector<Column> map_cols_;   // for the RowMapper: _fork_id, data columns, [extra]
  bool has_extra_ = false;         // the table has `extra` and the spec wants it
  bool has_version_ = false;       // the table has `_version`
  clickhouse::ChType extra_type_;
  std::string insert_url_;
  RowMapper mapper_;

  // The batch, as received (encoded at Flush, when the table is known).
  std::string arena_;
  std::vector<Held> held_;
  std::string body_;
  bool body_valid_ = false;
  std::string token_;  // insert_deduplication_token of body_

  // Batches sent and not yet awaited, each on its own connection.
  CurlLanes lanes_;
  std::string scratch_;
};

}  // namespace forkd::sinks
