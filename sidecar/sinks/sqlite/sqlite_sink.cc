#include "sinks/sqlite/sqlite_sink.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>

#include "core/fs.h"
#include "sinks/common/json.h"

namespace forkd::sinks {

namespace {

std::string Quote(std::string_view id) {
  std::string q = "\"";
  for (char c : id) {
    if (c == '"') q.push_back('"');
    q.push_back(c);
  }
  q.push_back('"');
  return q;
}

const char* SqlType(ColType t) {
  switch (t) {
    case ColType::kInteger: return "INTEGER";
    case ColType::kReal: return "REAL";
    case ColType::kBoolean: return "INTEGER";
    case ColType::kJson: return "TEXT";  // JSON text; query it with json_extract
    case ColType::kTimestamp: return "TEXT";  // ISO-8601 UTC
    default: return "TEXT";
  }
}

// A declared type read back from an existing table.
ColType FromSqlType(std::string t) {
  std::transform(t.begin(), t.end(), t.begin(), ::toupper);
  if (t.find("INT") != std::string::npos) return ColType::kInteger;
  if (t.find("REAL") != std::string::npos || t.find("FLOA") != std::string::npos ||
      t.find("DOUB") != std::string::npos) {
    return ColType::kReal;
  }
  if (t.find("BOOL") != std::string::npos) return ColType::kBoolean;
  if (t.find("JSON") != std::string::npos) return ColType::kJson;
  return ColType::kText;
}

// Errors about the records themselves can never succeed; the rest may.
bool IsFatal(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
      return false;
    default:
      return true;
  }
}

// Is there a unique index on _fork_id alone in `table` (a PRIMARY KEY is
// one)? An sqlite result code.
int HasUniqueId(sqlite3* db, const std::string& table, bool* unique) {
  *unique = false;
  sqlite3_stmt* list = nullptr;
  int rc = sqlite3_prepare_v2(db, ("PRAGMA index_list(" + Quote(table) + ")").c_str(), -1, &list,
                              nullptr);
  if (rc != SQLITE_OK) return rc;
  std::vector<std::string> indexes;
  while ((rc = sqlite3_step(list)) == SQLITE_ROW) {
    const char* name = reinterpret_cast<const char*>(sqlite3_column_text(list, 1));
    if (sqlite3_column_int(list, 2) == 1 && name != nullptr) indexes.emplace_back(name);
  }
  sqlite3_finalize(list);
  if (rc != SQLITE_DONE) return rc;
  for (const std::string& ix : indexes) {
    sqlite3_stmt* info = nullptr;
    rc = sqlite3_prepare_v2(db, ("PRAGMA index_info(" + Quote(ix) + ")").c_str(), -1, &info,
                            nullptr);
    if (rc != SQLITE_OK) return rc;
    int n = 0;
    bool on_id = false;
    while ((rc = sqlite3_step(info)) == SQLITE_ROW) {
      ++n;
      const char* col = reinterpret_cast<const char*>(sqlite3_column_text(info, 2));
      on_id = col != nullptr && std::string_view(col) == "_fork_id";
    }
    sqlite3_finalize(info);
    if (n == 1 && on_id) *unique = true;
  }
  return SQLITE_OK;
}

// "table", "view" or "" for `name` in `db`.
std::string ObjectType(sqlite3* db, const std::string& name) {
  std::string type;
  sqlite3_stmt* q = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE", -1,
                         &q, nullptr) != SQLITE_OK) {
    return type;
  }
  sqlite3_bind_text(q, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  if (sqlite3_step(q) == SQLITE_ROW) {
    const char* t = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
    type = t ? t : "";
  }
  sqlite3_finalize(q);
  return type;
}

}  // namespace

const std::vector<OptionSpec>& SqliteSinkOptions() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> v = {
        {"path", OptType::kString, "", "The database file (created when missing)", true},
        {"synchronous", OptType::kEnum, "full",
         "full: each batch is on disk before the cursor moves; normal: faster, a power loss "
         "may lose the last batches (they are not redelivered)",
         false, {"full", "normal"}},
    };
    for (auto& o : TableOptions()) v.push_back(o);
    return v;
  }();
  return specs;
}

std::unique_ptr<Sink> CreateSqliteSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  SqliteSink::Settings s;
  s.path = ctx.config->Resolve(o.Str("path"));
  s.synchronous_full = o.Str("synchronous") == "full";
  if (DestinationTableSpec(ctx, &s.table, &s.error)) {
    s.merge = MergeSpecFor(ctx, &s.table, &s.merge_spec);
  }
  return std::make_unique<SqliteSink>(std::move(s));
}

SqliteSink::SqliteSink(Settings s) : s_(std::move(s)) {}

SqliteSink::~SqliteSink() { Close(); }

void SqliteSink::Close() {
  if (insert_) sqlite3_finalize(insert_);
  insert_ = nullptr;
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

Status SqliteSink::Error(const char* what, int rc) const {
  std::string m = std::string("sqlite ") + what + " (" + s_.path + ", table " + s_.table.table +
                  "): " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  return IsFatal(rc) ? Status::Fatal(std::move(m)) : Status::Retry(std::move(m));
}

Status SqliteSink::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  return rc == SQLITE_OK ? Status::Ok() : Error("statement", rc);
}

Status SqliteSink::Open(const std::string&) {
  if (!s_.error.empty()) return Status::Fatal(s_.error);
  Close();
  const size_t slash = s_.path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    Status st = fs::MakeDirs(s_.path.substr(0, slash), 0750);
    if (!st.ok()) return Status::Retry(st.message());
  }
  // A new database starts as an empty file of mode 0640 (sqlite would make
  // it 0644); its -wal and -shm files take the database file's mode.
  const int fd = ::open(s_.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd >= 0) {
    ::close(fd);
  } else if (errno != EEXIST) {
    return Status::Retry(ErrnoStatus("create database", s_.path, errno).message());
  }
  int rc = sqlite3_open_v2(s_.path.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Status e = Status::Retry("sqlite open " + s_.path + ": " +
                             (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
    Close();
    return e;
  }
  sqlite3_busy_timeout(db_, 5000);
  Status st = Exec("PRAGMA journal_mode=WAL");
  if (st.ok()) st = Exec(s_.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  if (!st.ok()) {
    Close();
    return Status::Retry(st.message());
  }
  if (!s_.table.columns.empty()) return Prepare(nullptr);
  return Status::Ok();  // the table waits for the first record
}

Status SqliteSink::Prepare(const uint8_t* first_payload) {
  // An existing table is used as it is.
  const std::string table = Quote(s_.table.table);
  std::vector<Column> existing;
  {
    sqlite3_stmt* info = nullptr;
    const std::string q = "PRAGMA table_info(" + table + ")";
    int rc = sqlite3_prepare_v2(db_, q.c_str(), -1, &info, nullptr);
    if (rc != SQLITE_OK) return Error("table_info", rc);
    while ((rc = sqlite3_step(info)) == SQLITE_ROW) {
      const char* name = reinterpret_cast<const char*>(sqlite3_column_text(info, 1));
      const char* type = reinterpret_cast<const char*>(sqlite3_column_text(info, 2));
      existing.push_back({name ? name : "", FromSqlType(type ? type : "")});
    }
    sqlite3_finalize(info);
    if (rc != SQLITE_DONE) return Error("table_info", rc);
  }
  std::vector<Column> cols;
  if (!existing.empty()) {
    const bool has_id = std::any_of(existing.begin(), existing.end(),
                                    [](const Column& c) { return c.name == "_fork_id"; });
    if (!has_id) {
      return Status::Fatal("sqlite table " + s_.table.table + " in " + s_.path +
                           " exists without a _fork_id column; add one (TEXT PRIMARY KEY) or "
                           "name another table");
    }
    // _fork_id first, extra last, the table's other columns between.
    cols.push_back({"_fork_id", ColType::kText});
    for (const auto& c : existing) {
      if (c.name != "_fork_id" && c.name != "extra") cols.push_back(c);
    }
    const bool has_extra = std::any_of(existing.begin(), existing.end(),
                                       [](const Column& c) { return c.name == "extra"; });
    if (s_.table.extra && !has_extra) {
      Status st = Exec(("ALTER TABLE " + table + " ADD COLUMN \"extra\" TEXT").c_str());
      if (!st.ok()) return st;
    }
    if (s_.table.extra) cols.push_back({"extra", ColType::kJson});
  } else {
    cols = s_.table.columns.empty() ? InferColumns(s_.table, first_payload)
                                    : CompleteColumns(s_.table);
    std::string ddl = "CREATE TABLE IF NOT EXISTS " + table + " (";
    for (size_t i = 0; i < cols.size(); ++i) {
      if (i) ddl += ", ";
      ddl += Quote(cols[i].name) + " " + SqlType(cols[i].type);
      const bool primary = cols[i].name == "_fork_id" &&
                           (!s_.table.upsert || s_.table.key == "_fork_id");
      if (primary) ddl += " PRIMARY KEY";
      if (s_.table.upsert && s_.table.key != "_fork_id" && cols[i].name == s_.table.key) {
        ddl += " UNIQUE";
      }
    }
    ddl += ")";
    Status st = Exec(ddl.c_str());
    if (!st.ok()) return st;
  }
  if (s_.table.upsert && std::none_of(cols.begin(), cols.end(), [&](const Column& c) {
        return c.name == s_.table.key;
      })) {
    return Status::Fatal("sqlite table " + s_.table.table + ": the upsert key '" + s_.table.key +
                         "' is not one of its columns");
  }
  if (!existing.empty() && !s_.table.upsert) {
    Status st = EnsureUniqueId();
    if (!st.ok()) return st;
  }
  if (s_.merge) {
    Status st = EnsureMergeView(cols);
    if (!st.ok()) return st;
  }
  // INSERT ... ON CONFLICT: append ignores a record delivered again; upsert
  // replaces the row with the same key.
  std::string names, params, updates;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) {
      names += ", ";
      params += ", ";
    }
    names += Quote(cols[i].name);
    params += "?";
    if (cols[i].name != s_.table.key) {
      if (!updates.empty()) updates += ", ";
      updates += Quote(cols[i].name) + " = excluded." + Quote(cols[i].name);
    }
  }
  const std::string base = "INSERT INTO " + table + " (" + names + ") VALUES (" + params + ")";
  std::string sql = s_.table.upsert
                        ? base + " ON CONFLICT(" + Quote(s_.table.key) + ") DO UPDATE SET " + updates
                        : base + " ON CONFLICT(\"_fork_id\") DO NOTHING";
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &insert_, nullptr);
  if (rc != SQLITE_OK) {
    Status e = Error("prepare insert", rc);
    if (s_.table.upsert) {
      e = Status::Fatal(e.message() + " (an upsert needs a PRIMARY KEY or UNIQUE constraint on " +
                        s_.table.key + ")");
    }
    return e;
  }
  columns_ = std::move(cols);
  mapper_.Reset(&columns_, s_.table.extra);
  return Status::Ok();
}

Status SqliteSink::EnsureUniqueId() {
  const std::string table = Quote(s_.table.table);
  bool unique = false;
  const int rc = HasUniqueId(db_, s_.table.table, &unique);
  if (rc != SQLITE_OK) return Error("index_list", rc);
  if (unique) return Status::Ok();
  const std::string index = Quote(s_.table.table + "_fork_id");
  Status st = Exec(("CREATE UNIQUE INDEX IF NOT EXISTS " + index + " ON " + table +
                    " (\"_fork_id\")")
                       .c_str());
  if (st.ok()) return st;
  if (st.IsFatal()) {
    return Status::Fatal("sqlite table " + s_.table.table + " in " + s_.path +
                         " has no unique index on _fork_id and already holds rows with the same "
                         "_fork_id, so appends cannot be exactly once; remove the duplicate rows "
                         "(keep one per _fork_id) or name another table (" + st.message() + ")");
  }
  return st;
}

bool InspectSqlite(const SinkContext& ctx, std::string* note, std::string* error) {
  SqliteSink::Settings s;
  s.path = ctx.config->Resolve(ctx.destination->sink.Str("path"));
  if (!DestinationTableSpec(ctx, &s.table, error)) return false;
  const std::string configured = s.table.table;
  s.merge = MergeSpecFor(ctx, &s.table, &s.merge_spec);
  sqlite3* db = nullptr;
  const bool exists = ::access(s.path.c_str(), F_OK) == 0 &&
                      sqlite3_open_v2(s.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK;
  const std::string where = "sqlite " + s.path + ", table " + configured + ": ";
  std::string type = exists ? ObjectType(db, s.table.table) : "";
  bool ok = true;
  if (s.merge) {
    const std::string view = exists ? ObjectType(db, configured) : "";
    *note = where + "an aggregate shared by instances: partial rows in " + s.table.table +
            ", merged by the view " + configured;
    if (view == "table") *note += " (the single-instance table is migrated at open, kept as " +
                                  s.merge_spec.backup + ")";
  } else if (s.table.upsert) {
    *note = where + "upserts on " + s.table.key;
  } else if (type != "table") {
    *note = where + "appends exactly once (created with _fork_id as its primary key)";
  } else {
    bool unique = false;
    bool has_id = false;
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db, ("SELECT 1 FROM pragma_table_info(" + Quote(configured) +
                                ") WHERE name = '_fork_id'").c_str(),
                           -1, &q, nullptr) == SQLITE_OK) {
      has_id = sqlite3_step(q) == SQLITE_ROW;
      sqlite3_finalize(q);
    }
    if (!has_id) {
      *error = where + "the table exists without a _fork_id column; add one (TEXT PRIMARY KEY) or "
                       "name another table";
      ok = false;
    } else if (HasUniqueId(db, configured, &unique) == SQLITE_OK && unique) {
      *note = where + "appends exactly once (_fork_id is unique)";
    } else {
      std::string dup;
      if (sqlite3_prepare_v2(db, ("SELECT _fork_id FROM " + Quote(configured) +
                                  " GROUP BY _fork_id HAVING count(*) > 1 LIMIT 1").c_str(),
                             -1, &q, nullptr) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) {
          const char* id = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
          dup = id ? id : "NULL";
        }
        sqlite3_finalize(q);
      }
      if (!dup.empty()) {
        *error = where + "the table has no unique index on _fork_id and holds rows with the same "
                         "_fork_id ('" + dup.substr(0, 80) +
                 "'), so appends cannot be exactly once; remove the duplicate rows or name "
                 "another table";
        ok = false;
      } else {
        *note = where + "appends exactly once (a unique index on _fork_id is added at open)";
      }
    }
  }
  if (db) sqlite3_close_v2(db);
  return ok;
}

Status SqliteSink::EnsureMergeView(const std::vector<Column>& parts_columns) {
  const MergeSpec& m = s_.merge_spec;
  std::string error;
  const std::string select =
      MergeSelect(SqlDialect::kSqlite, m, parts_columns, Quote(m.parts), &error);
  if (select.empty()) return Status::Fatal("sqlite " + s_.path + ": " + error);
  // One transaction: instances opening at once see the view made or
  // migrated by one of them, never half of it.
  Status st = Exec("BEGIN IMMEDIATE");
  if (!st.ok()) return st;
  auto fail = [&](Status e) {
    (void)Exec("ROLLBACK");
    return e;
  };
  std::string type;
  {
    sqlite3_stmt* q = nullptr;
    int rc = sqlite3_prepare_v2(db_, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                                -1, &q, nullptr);
    if (rc != SQLITE_OK) return fail(Error("sqlite_master", rc));
    sqlite3_bind_text(q, 1, m.view.data(), static_cast<int>(m.view.size()), SQLITE_STATIC);
    if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
      const char* t = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
      type = t ? t : "";
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(Error("sqlite_master", rc));
  }
  // Reads of a few windows go through the view to the parts rows of
  // those windows only: the filter on window_start reaches this index.
  st = Exec(("CREATE INDEX IF NOT EXISTS " + Quote(m.parts + "_window") + " ON " + Quote(m.parts) +
             " (\"window_start\")")
                .c_str());
  if (!st.ok()) return fail(st);
  if (type == "view") return Exec("COMMIT");
  if (type == "table") {
    // Written by the single-instance layout: its rows become this
    // instance's partial rows, and the table steps aside for the view.
    std::vector<Column> old;
    sqlite3_stmt* info = nullptr;
    int rc = sqlite3_prepare_v2(db_, ("PRAGMA table_info(" + Quote(m.view) + ")").c_str(), -1,
                                &info, nullptr);
    if (rc != SQLITE_OK) return fail(Error("table_info", rc));
    while ((rc = sqlite3_step(info)) == SQLITE_ROW) {
      const char* name = reinterpret_cast<const char*>(sqlite3_column_text(info, 1));
      const char* t = reinterpret_cast<const char*>(sqlite3_column_text(info, 2));
      old.push_back({name ? name : "", FromSqlType(t ? t : "")});
    }
    sqlite3_finalize(info);
    if (std::none_of(old.begin(), old.end(), [](const Column& c) { return c.name == "_fork_id"; })) {
      return fail(Status::Fatal("sqlite table " + m.view + " in " + s_.path +
                                " exists and was not written by forkd (no _fork_id); the merged "
                                "view of an aggregate shared by instances needs its name"));
    }
    st = Exec(MigrateRows(SqlDialect::kSqlite, m, old, parts_columns, Quote(m.view), Quote(m.parts))
                  .c_str());
    if (st.ok()) {
      st = Exec(("ALTER TABLE " + Quote(m.view) + " RENAME TO " + Quote(m.backup)).c_str());
    }
    if (!st.ok()) return fail(Status::Fatal("sqlite " + s_.path + ": migrating table " + m.view +
                                            " to the merged layout: " + st.message()));
  }
  st = Exec(("CREATE VIEW " + Quote(m.view) + " AS " + select).c_str());
  if (!st.ok()) return fail(st);
  st = Exec("COMMIT");
  if (!st.ok()) return fail(Status::Retry(st.message()));
  return st;
}

void SqliteSink::Write(const Record& r) {
  Held h;
  h.id_at = arena_.size();
  h.id_size = r.event_id.size();
  arena_.append(r.event_id);
  h.payload_at = arena_.size();
  h.payload_size = r.payload_size;
  arena_.append(reinterpret_cast<const char*>(r.payload), r.payload_size);
  batch_.push_back(h);
}

void SqliteSink::Discard() {
  arena_.clear();
  batch_.clear();
}

Status SqliteSink::Flush() {
  if (batch_.empty()) return Status::Ok();
  if (db_ == nullptr) {
    Status st = Open("");
    if (!st.ok()) return st;
  }
  const auto* base = reinterpret_cast<const uint8_t*>(arena_.data());
  if (insert_ == nullptr) {
    Status st = Prepare(base + batch_[0].payload_at);
    if (!st.ok()) return st;
  }
  Status st = Exec("BEGIN IMMEDIATE");
  if (!st.ok()) return st;
  std::string error;
  for (const Held& h : batch_) {
    const uint8_t* payload = base + h.payload_at;
    if (!mapper_.Map(payload, h.payload_size, &error)) {
      (void)Exec("ROLLBACK");
      return Status::Fatal("sqlite table " + s_.table.table + ": record " +
                           std::string(arena_, h.id_at, h.id_size) + ": " + error);
    }
    sqlite3_bind_text(insert_, 1, arena_.data() + h.id_at, static_cast<int>(h.id_size),
                      SQLITE_STATIC);
    for (size_t c = 1; c < columns_.size(); ++c) {
      const int p = static_cast<int>(c + 1);
      if (c == mapper_.extra_index()) {
        const std::string& x = mapper_.extra_json();
        if (x.empty()) {
          sqlite3_bind_null(insert_, p);
        } else {
          sqlite3_bind_text(insert_, p, x.data(), static_cast<int>(x.size()), SQLITE_TRANSIENT);
        }
        continue;
      }
      const uint8_t* v = mapper_.value(c);
      if (v == nullptr) {
        sqlite3_bind_null(insert_, p);
        continue;
      }
      wire::Reader rd(v, h.payload_size - static_cast<size_t>(v - payload));
      const wire::Value val = rd.Peek();
      const ColType t = columns_[c].type;
      if (t == ColType::kJson && val.kind != wire::Kind::kNil) {
        cell_.clear();
        AppendJson(v, &cell_);
        sqlite3_bind_text(insert_, p, cell_.data(), static_cast<int>(cell_.size()),
                          SQLITE_TRANSIENT);
        continue;
      }
      switch (val.kind) {
        case wire::Kind::kNil: sqlite3_bind_null(insert_, p); break;
        case wire::Kind::kBool: sqlite3_bind_int(insert_, p, val.b ? 1 : 0); break;
        case wire::Kind::kInt: sqlite3_bind_int64(insert_, p, val.i); break;
        case wire::Kind::kUint:
          if (val.u <= static_cast<uint64_t>(INT64_MAX)) {
            sqlite3_bind_int64(insert_, p, static_cast<int64_t>(val.u));
          } else {
            sqlite3_bind_double(insert_, p, static_cast<double>(val.u));
          }
          break;
        case wire::Kind::kFloat: sqlite3_bind_double(insert_, p, val.f); break;
        case wire::Kind::kStr:
          // The arena holds the bytes until the statement is reset.
          sqlite3_bind_text(insert_, p, reinterpret_cast<const char*>(val.ptr),
                            static_cast<int>(val.len), SQLITE_STATIC);
          break;
        default:
          // Maps and arrays in a non-json column, binary, timestamps: text.
          CellText(v, t, &cell_);
          sqlite3_bind_text(insert_, p, cell_.data(), static_cast<int>(cell_.size()),
                            SQLITE_TRANSIENT);
      }
    }
    const int rc = sqlite3_step(insert_);
    sqlite3_reset(insert_);
    if (rc != SQLITE_DONE) {
      Status e = Error("insert", rc);
      (void)Exec("ROLLBACK");
      if (e.IsFatal()) {
        return Status::Fatal(e.message() + " (record " + std::string(arena_, h.id_at, h.id_size) +
                             ")");
      }
      return e;
    }
  }
  st = Exec("COMMIT");
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    // A failed commit is never the records' fault.
    return Status::Retry(st.message());
  }
  Discard();
  return Status::Ok();
}

}  // namespace forkd::sinks
