// The postgres store, read back in a REPEATABLE READ, READ ONLY
// transaction (one snapshot while forkd writes), row by row.
#include <libpq-fe.h>

#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "sinks/postgres/postgres_sink.h"
#include "verify/store_internal.h"

namespace forkd::verify {
namespace {

class PostgresStore : public StoreReader {
 public:
  PostgresStore(std::string url, std::string schema, std::string table)
      : url_(std::move(url)), schema_(std::move(schema)), table_(std::move(table)) {}
  ~PostgresStore() override {
    if (conn_) PQfinish(conn_);
  }
  Kind kind() const override { return Kind::kTable; }
  std::string where() const override {
    return "postgres " + sinks::pg::SafeUrl(url_) + " table " + schema_ + "." + table_;
  }
  const std::vector<std::string>& columns() const override { return columns_; }

  Status Open() override {
    const char* keys[] = {"connect_timeout", "application_name", "dbname", "client_encoding", nullptr};
    const char* values[] = {"10", "forkd-verify", url_.c_str(), "UTF8", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn_) != CONNECTION_OK) return Error("connect");
    if (!Exec("SET TIME ZONE 'UTC'")) return Error("set the time zone");
    if (schema_.empty()) {
      // As the sink does: the first schema of the search_path that exists.
      PGresult* r = PQexec(conn_, "SELECT current_schema()");
      const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
      if (ok) schema_ = PQgetvalue(r, 0, 0);
      PQclear(r);
      if (!ok) return Error("read current_schema() (set `schema`)");
    }
    const char* params[] = {schema_.c_str(), table_.c_str()};
    PGresult* r = PQexecParams(conn_,
                               "SELECT column_name FROM information_schema.columns WHERE "
                               "table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                               2, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      PQclear(r);
      return Error("read the table's columns");
    }
    bool has_id = false;
    for (int i = 0; i < PQntuples(r); ++i) {
      const std::string name = PQgetvalue(r, i, 0);
      if (name == "_fork_id") {
        has_id = true;
      } else {
        columns_.push_back(name);
      }
    }
    PQclear(r);
    exists_ = has_id;
    if (!has_id && !columns_.empty()) {
      return Status::InvalidArgument(where() + ": the table has no _fork_id column");
    }
    return Status::Ok();
  }

  Status ForEach(const RowFn& fn) override {
    if (!exists_) return Status::Ok();
    if (!Exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")) return Error("begin");
    std::string sql = "SELECT \"_fork_id\"";
    for (const auto& c : columns_) sql += ", " + sinks::pg::QuoteIdent(c) + "::text";
    sql += " FROM " + sinks::pg::QuoteIdent(schema_) + "." + sinks::pg::QuoteIdent(table_);
    if (!PQsendQuery(conn_, sql.c_str()) || !PQsetSingleRowMode(conn_)) return Error("read the rows");
    std::vector<std::optional<std::string_view>> cells(columns_.size());
    Status status;
    while (PGresult* r = PQgetResult(conn_)) {
      const ExecStatusType t = PQresultStatus(r);
      if (t == PGRES_SINGLE_TUPLE) {
        for (size_t i = 0; i < columns_.size(); ++i) {
          const int c = static_cast<int>(i) + 1;
          if (PQgetisnull(r, 0, c)) {
            cells[i] = std::nullopt;
          } else {
            cells[i] = std::string_view(PQgetvalue(r, 0, c), static_cast<size_t>(PQgetlength(r, 0, c)));
          }
        }
        fn(std::string_view(PQgetvalue(r, 0, 0), static_cast<size_t>(PQgetlength(r, 0, 0))), cells);
      } else if (t != PGRES_TUPLES_OK && status.ok()) {
        status = Error("read the rows");
      }
      PQclear(r);
    }
    Exec("COMMIT");
    return status;
  }

  Status Delete(const std::vector<std::string>& ids) override {
    if (!exists_ || ids.empty()) return Status::Ok();
    const std::string sql = "DELETE FROM " + sinks::pg::QuoteIdent(schema_) + "." +
                            sinks::pg::QuoteIdent(table_) + " WHERE \"_fork_id\" = $1";
    for (const auto& id : ids) {
      const char* params[] = {id.c_str()};
      PGresult* r = PQexecParams(conn_, sql.c_str(), 1, nullptr, params, nullptr, nullptr, 0);
      const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      if (!ok) return Error("delete");
    }
    return Status::Ok();
  }

 private:
  bool Exec(const char* sql) {
    PGresult* r = PQexec(conn_, sql);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
  }
  Status Error(const std::string& what) const {
    std::string m = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    for (char& c : m) {
      if (c == '\n' || c == '\t') c = ' ';  // one line per destination in the report
    }
    return Status::IoError(sinks::pg::Redact(where() + ": " + what + ": " + m, url_));
  }
  std::string url_, schema_, table_;
  PGconn* conn_ = nullptr;
  bool exists_ = false;
  std::vector<std::string> columns_;
};

}  // namespace

std::unique_ptr<StoreReader> NewPostgresStore(const Config& config, const DestinationConfig& d,
                                              std::string* why) {
  sinks::SinkContext ctx{&config, &d};
  sinks::TableSpec spec;
  if (!sinks::DestinationTableSpec(ctx, &spec, why)) return nullptr;
  sinks::MergeSpec merge;
  sinks::MergeSpecFor(ctx, &spec, &merge);
  return std::make_unique<PostgresStore>(d.sink.Str("url"), d.sink.Str("schema"), spec.table);
}

}  // namespace forkd::verify
