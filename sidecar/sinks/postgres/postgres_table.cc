// The postgres sink's table: read from the server (its columns, whether
// _fork_id is unique), created from the declared columns or the first
// record when missing, and the merged view of an aggregate shared by
// instances. See postgres_sink.h.
#include <libpq-fe.h>

#include <algorithm>

#include "sinks/postgres/postgres_sink.h"

namespace forkd::sinks {
namespace {

const char* PgType(ColType t) {
  switch (t) {
    case ColType::kText: return "text";
    case ColType::kInteger: return "bigint";
    case ColType::kReal: return "double precision";
    case ColType::kBoolean: return "boolean";
    case ColType::kJson: return "jsonb";
    case ColType::kTimestamp: return "timestamptz";
  }
  return "text";
}

// information_schema's data_type -> the type cells are written as.
ColType FromPgType(std::string_view t) {
  if (t == "bigint" || t == "integer" || t == "smallint") return ColType::kInteger;
  if (t == "double precision" || t == "real" || t == "numeric") return ColType::kReal;
  if (t == "boolean") return ColType::kBoolean;
  if (t == "json" || t == "jsonb") return ColType::kJson;
  if (t.starts_with("timestamp") || t == "date") return ColType::kTimestamp;
  return ColType::kText;
}

}  // namespace

Status PostgresSink::ReadColumns(std::vector<Column>* cols, std::vector<bool>* filled,
                                 bool* found) {
  cols->clear();
  filled->clear();
  PGresult* r = nullptr;
  Status st = Exec("reading the table's columns",
                   "SELECT column_name::text, data_type::text, (column_default IS NOT NULL OR "
                   "is_identity = 'YES' OR is_generated <> 'NEVER') FROM information_schema.columns "
                   "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                   {schema_.c_str(), s_.table.table.c_str()}, &r);
  if (!st.ok()) return st;
  const int n = r != nullptr ? PQntuples(r) : 0;
  for (int i = 0; i < n; ++i) {
    cols->push_back({PQgetvalue(r, i, 0), FromPgType(PQgetvalue(r, i, 1))});
    filled->push_back(PQgetvalue(r, i, 2)[0] == 't');
  }
  if (r != nullptr) PQclear(r);
  *found = n > 0;
  return Status::Ok();
}

Status PostgresSink::CreateTable() {
  const TableSpec& spec = s_.table;
  std::vector<Column> cols;
  if (spec.columns.empty()) {
    const Held& first = recs_.front();
    cols = InferColumns(spec, Payload(first));
    // A field postgres cannot name (a NUL, over 63 bytes) gets no column:
    // it lands in extra, or is refused without it.
    std::erase_if(cols, [](const Column& c) { return !pg::ValidIdent(c.name); });
  } else {
    cols = CompleteColumns(spec);
  }
  if (spec.upsert && std::none_of(cols.begin(), cols.end(),
                                  [&](const Column& c) { return c.name == spec.key; })) {
    return Status::Fatal("postgres table " + shown_ + ": cannot create it keyed on '" + spec.key +
                         "': the first record has no such field");
  }
  std::string sql = "CREATE TABLE IF NOT EXISTS " + qualified_ + " (";
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i > 0) sql += ", ";
    sql += pg::QuoteIdent(cols[i].name);
    sql += ' ';
    sql += PgType(cols[i].type);
    // Ids are compared byte-wise: the C collation keeps the index cheap in a
    // database whose default collation is a locale's.
    if (cols[i].name == "_fork_id") sql += " COLLATE \"C\"";
    if (cols[i].name == "_fork_id" && (!spec.upsert || spec.key == "_fork_id")) sql += " PRIMARY KEY";
  }
  if (spec.upsert && spec.key != "_fork_id") sql += ", UNIQUE (" + pg::QuoteIdent(spec.key) + ")";
  sql += ")";
  return Exec("CREATE TABLE", sql, {});
}

Status PostgresSink::EnsureTable() {
  if (table_ready_) return Status::Ok();
  schema_ = s_.schema;
  if (schema_.empty()) {
    PGresult* r = nullptr;
    Status st = Exec("reading current_schema()", "SELECT current_schema()", {}, &r);
    if (!st.ok()) return st;
    const bool ok = r != nullptr && PQntuples(r) == 1 && PQgetisnull(r, 0, 0) == 0;
    if (ok) schema_ = PQgetvalue(r, 0, 0);
    if (r != nullptr) PQclear(r);
    if (!ok) {
      return Status::Retry("postgres table " + s_.table.table +
                           ": no current schema (search_path names none that exists); set "
                           "`schema`");
    }
  }
  qualified_ = pg::QuoteIdent(schema_) + "." + pg::QuoteIdent(s_.table.table);
  shown_ = schema_ + "." + s_.table.table;

  std::vector<Column> table;
  std::vector<bool> filled;
  bool found = false;
  Status st = ReadColumns(&table, &filled, &found);
  if (st.ok() && !found) {
    st = CreateTable();
    if (st.ok()) st = ReadColumns(&table, &filled, &found);
    if (st.ok() && !found) {
      return Status::Retry("postgres table " + shown_ + ": not visible after CREATE TABLE");
    }
  }
  if (!st.ok()) return st;

  // RowMapper's layout: _fork_id first, extra last, the table's other
  // columns between, in their order.
  cols_.assign(1, Column{"_fork_id", ColType::kText});
  has_id_ = has_extra_ = false;
  for (size_t i = 0; i < table.size(); ++i) {
    const Column& c = table[i];
    if (c.name == "_fork_id") {
      has_id_ = true;
    } else if (c.name == "extra" && s_.table.extra) {
      has_extra_ = true;
    } else if (!filled[i]) {
      cols_.push_back(c);
    }
  }
  if (has_extra_) cols_.push_back({"extra", ColType::kJson});
  mapper_.Reset(&cols_, has_extra_);

  column_list_ = "(";
  for (size_t i = has_id_ ? 0 : 1; i < cols_.size(); ++i) {
    if (column_list_.size() > 1) column_list_ += ", ";
    column_list_ += pg::QuoteIdent(cols_[i].name);
  }
  column_list_ += ")";
  if (column_list_ == "()") {
    return Status::Retry("postgres table " + shown_ + " has no column forkd can write");
  }
  // A unique index on _fork_id alone makes appends idempotent.
  id_unique_ = false;
  if (has_id_) {
    PGresult* r = nullptr;
    st = Exec("reading the table's indexes",
              "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
              "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = "
              "c.oid AND a.attnum = i.indkey[0] WHERE n.nspname = $1 AND c.relname = $2 AND "
              "i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL "
              "AND a.attname = '_fork_id')",
              {schema_.c_str(), s_.table.table.c_str()}, &r);
    if (!st.ok()) return st;
    id_unique_ = r != nullptr && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    if (r != nullptr) PQclear(r);
  }
  if (s_.table.upsert) {
    const std::string& key = s_.table.key;
    key_col_ = SIZE_MAX;
    for (size_t i = has_id_ ? 0 : 1; i < cols_.size(); ++i) {
      if (cols_[i].name == key && !(i == cols_.size() - 1 && has_extra_)) key_col_ = i;
    }
    if (key_col_ == SIZE_MAX) {
      return Status::Retry("postgres table " + shown_ + " has no column '" + key +
                           "' to upsert on (key)");
    }
  }
  if (s_.merge) {
    st = EnsureMergeView(table);
    if (!st.ok()) return st;
  }
  table_ready_ = table_fresh_ = true;
  return Status::Ok();
}

Status PostgresSink::EnsureMergeView(const std::vector<Column>& parts_columns) {
  const MergeSpec& m = s_.merge_spec;
  const std::string view = pg::QuoteIdent(schema_) + "." + pg::QuoteIdent(m.view);
  std::string error;
  const std::string select = MergeSelect(SqlDialect::kPostgres, m, parts_columns, qualified_, &error);
  if (select.empty()) return Status::Fatal("postgres " + schema_ + "." + m.view + ": " + error);
  // One transaction, serialised between instances by an advisory lock on
  // the view's name: they see the view made or migrated by one of them.
  Status st = Exec("BEGIN", "BEGIN", {});
  if (!st.ok()) return st;
  auto fail = [&](Status e) {
    if (conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) Rollback();
    return e;
  };
  const std::string lock_name = "fork merge " + schema_ + "." + m.view;
  st = Exec("locking the merged view", "SELECT pg_advisory_xact_lock(hashtext($1))",
            {lock_name.c_str()});
  if (!st.ok()) return fail(st);
  PGresult* r = nullptr;
  st = Exec("looking up the merged view",
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2",
            {schema_.c_str(), m.view.c_str()}, &r);
  if (!st.ok()) return fail(st);
  const std::string kind = r != nullptr && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "";
  if (r != nullptr) PQclear(r);
  // Reads of a few windows go through the view to the parts rows of
  // those windows only: the filter on window_start reaches this index.
  st = Exec("indexing the parts table",
            "CREATE INDEX IF NOT EXISTS " + pg::QuoteIdent(m.parts + "_window") + " ON " +
                qualified_ + " (\"window_start\")",
            {});
  if (!st.ok()) return fail(st);
  if (kind == "v") return Exec("COMMIT", "COMMIT", {});
  if (!kind.empty() && kind != "r" && kind != "p") {
    return fail(Status::Fatal("postgres " + schema_ + "." + m.view +
                              " exists and is neither a table nor a view; the merged view of an "
                              "aggregate shared by instances needs its name"));
  }
  if (!kind.empty()) {
    // Written by the single-instance layout: its rows become this
    // instance's partial rows, and the table steps aside for the view.
    std::vector<Column> old;
    st = Exec("reading the single-instance table's columns",
              "SELECT column_name::text, data_type::text FROM information_schema.columns "
              "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
              {schema_.c_str(), m.view.c_str()}, &r);
    if (!st.ok()) return fail(st);
    for (int i = 0; r != nullptr && i < PQntuples(r); ++i) {
      old.push_back({PQgetvalue(r, i, 0), FromPgType(PQgetvalue(r, i, 1))});
    }
    if (r != nullptr) PQclear(r);
    if (std::none_of(old.begin(), old.end(), [](const Column& c) { return c.name == "_fork_id"; })) {
      return fail(Status::Fatal("postgres table " + schema_ + "." + m.view +
                                " exists and was not written by forkd (no _fork_id); the merged "
                                "view of an aggregate shared by instances needs its name"));
    }
    st = Exec("copying the single-instance table's rows",
              MigrateRows(SqlDialect::kPostgres, m, old, parts_columns, view, qualified_), {});
    if (st.ok()) {
      st = Exec("renaming the single-instance table",
                "ALTER TABLE " + view + " RENAME TO " + pg::QuoteIdent(m.backup), {});
    }
    if (!st.ok()) return fail(st);
    // The table is kept, renamed: nothing is dropped.
  }
  st = Exec("creating the merged view", "CREATE VIEW " + view + " AS " + select, {});
  if (!st.ok()) return fail(st);
  st = Exec("COMMIT", "COMMIT", {});
  if (!st.ok()) return fail(st);
  return st;
}

}  // namespace forkd::sinks
