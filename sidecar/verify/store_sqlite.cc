// The sqlite store, read back in one read transaction: under WAL it is a
// snapshot, so forkd may go on writing meanwhile.
#include <sqlite3.h>

#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "verify/store_internal.h"

namespace forkd::verify {
namespace {

class SqliteStore : public StoreReader {
 public:
  SqliteStore(std::string path, std::string table) : path_(std::move(path)), table_(std::move(table)) {}
  ~SqliteStore() override {
    if (db_) sqlite3_close_v2(db_);
  }
  Kind kind() const override { return Kind::kTable; }
  std::string where() const override { return "sqlite " + path_ + " table " + table_; }
  const std::vector<std::string>& columns() const override { return columns_; }

  Status Open() override {
    if (::access(path_.c_str(), F_OK) != 0) return Status::Ok();  // nothing written yet
    if (int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr); rc != SQLITE_OK) {
      return Error("open", rc);
    }
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_stmt* st = nullptr;
    const std::string sql = "PRAGMA table_info(" + sinks::QuoteIdentFor(sinks::SqlDialect::kSqlite, table_) + ")";
    if (int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr); rc != SQLITE_OK) return Error("read the table's columns", rc);
    bool has_id = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
      if (name == "_fork_id") {
        has_id = true;
      } else {
        columns_.push_back(name);
      }
    }
    sqlite3_finalize(st);
    exists_ = has_id;
    if (!has_id && !columns_.empty()) {
      return Status::InvalidArgument(where() + ": the table has no _fork_id column");
    }
    return Status::Ok();
  }

  Status ForEach(const RowFn& fn) override {
    if (!exists_) return Status::Ok();
    std::string sql = "SELECT \"_fork_id\"";
    for (const auto& c : columns_) sql += ", " + sinks::QuoteIdentFor(sinks::SqlDialect::kSqlite, c);
    sql += " FROM " + sinks::QuoteIdentFor(sinks::SqlDialect::kSqlite, table_);
    // One statement is one read transaction: a consistent snapshot.
    sqlite3_stmt* st = nullptr;
    if (int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr); rc != SQLITE_OK) return Error("read the rows", rc);
    std::vector<std::optional<std::string_view>> cells(columns_.size());
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      const std::string_view idv(id ? id : "", id ? static_cast<size_t>(sqlite3_column_bytes(st, 0)) : 0);
      for (size_t i = 0; i < columns_.size(); ++i) {
        const int c = static_cast<int>(i) + 1;
        if (sqlite3_column_type(st, c) == SQLITE_NULL) {
          cells[i] = std::nullopt;
        } else {
          const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
          cells[i] = std::string_view(t, static_cast<size_t>(sqlite3_column_bytes(st, c)));
        }
      }
      fn(idv, cells);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Error("read the rows", rc);
    return Status::Ok();
  }

  Status Delete(const std::vector<std::string>& ids) override {
    if (!exists_ || ids.empty()) return Status::Ok();
    const std::string sql = "DELETE FROM " + sinks::QuoteIdentFor(sinks::SqlDialect::kSqlite, table_) +
                            " WHERE \"_fork_id\" = ?";
    sqlite3_stmt* st = nullptr;
    if (int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr); rc != SQLITE_OK) return Error("delete", rc);
    sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (const auto& id : ids) {
      sqlite3_bind_text(st, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
      const int rc = sqlite3_step(st);
      sqlite3_reset(st);
      if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Error("delete", rc);
      }
    }
    sqlite3_finalize(st);
    if (int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr); rc != SQLITE_OK) return Error("delete", rc);
    return Status::Ok();
  }

 private:
  Status Error(const char* what, int rc) const {
    return Status::IoError(where() + ": " + what + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
  }
  std::string path_, table_;
  sqlite3* db_ = nullptr;
  bool exists_ = false;
  std::vector<std::string> columns_;
};

}  // namespace

std::unique_ptr<StoreReader> NewSqliteStore(const Config& config, const DestinationConfig& d,
                                            std::string* why) {
  sinks::SinkContext ctx{&config, &d};
  sinks::TableSpec spec;
  if (!sinks::DestinationTableSpec(ctx, &spec, why)) return nullptr;
  sinks::MergeSpec merge;
  sinks::MergeSpecFor(ctx, &spec, &merge);
  return std::make_unique<SqliteStore>(config.Resolve(d.sink.Str("path")), spec.table);
}

}  // namespace forkd::verify
