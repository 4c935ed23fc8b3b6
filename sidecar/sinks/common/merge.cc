#include "sinks/common/merge.h"

#include <algorithm>

#include "transforms/aggregate.h"

namespace forkd::sinks {

namespace {

bool IsPartialColumn(const std::string& name) {
  return name == "_fork_id" || name == "_fork_instance" || name == "_fork_row" ||
         name == "_version" || name.rfind(transforms::kPartialSumPrefix, 0) == 0 ||
         name.rfind(transforms::kPartialCountPrefix, 0) == 0;
}

const Column* FindColumn(const std::vector<Column>& cols, const std::string& name) {
  for (const Column& c : cols) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

}  // namespace

std::string QuoteIdentFor(SqlDialect d, std::string_view name) {
  const char q = d == SqlDialect::kClickHouse ? '`' : '"';
  std::string out(1, q);
  for (char c : name) {
    if (d == SqlDialect::kClickHouse && (c == '`' || c == '\\')) {
      out.push_back('\\');
    } else if (c == q) {
      out.push_back(q);
    }
    out.push_back(c);
  }
  out.push_back(q);
  return out;
}

bool MergeSpecFor(const SinkContext& ctx, TableSpec* table, MergeSpec* out) {
  const auto& agg = ctx.destination->chain.aggregate;
  if (!agg || !table->upsert || table->key != "_fork_id") return false;
  out->view = table->table;
  out->parts = table->table + "_parts";
  out->backup = table->table + "_before_merge";
  out->instance = ctx.config->instance;
  out->keys = {"window_start", "window"};
  for (const auto& g : agg->group_by) out->keys.push_back(g.text);
  out->measures.clear();
  for (const auto& m : agg->measures) {
    MergeSpec::Measure mm;
    mm.name = m.name;
    switch (m.fn) {
      case transforms::Measure::Fn::kCount:
      case transforms::Measure::Fn::kSum: mm.fn = MergeSpec::Fn::kSum; break;
      case transforms::Measure::Fn::kMin: mm.fn = MergeSpec::Fn::kMin; break;
      case transforms::Measure::Fn::kMax: mm.fn = MergeSpec::Fn::kMax; break;
      case transforms::Measure::Fn::kAvg: mm.fn = MergeSpec::Fn::kAvg; break;
    }
    out->measures.push_back(std::move(mm));
  }
  table->table = out->parts;
  if (!table->columns.empty()) {
    // Declared columns: the partial row's own come first, an avg's parts last.
    std::vector<Column> cols = {{"_fork_instance", ColType::kText}, {"_fork_row", ColType::kText}};
    cols.insert(cols.end(), table->columns.begin(), table->columns.end());
    for (const auto& m : out->measures) {
      if (m.fn != MergeSpec::Fn::kAvg) continue;
      cols.push_back({transforms::kPartialSumPrefix + m.name, ColType::kReal});
      cols.push_back({transforms::kPartialCountPrefix + m.name, ColType::kInteger});
    }
    table->columns = std::move(cols);
  }
  return true;
}

std::string MergeSelect(SqlDialect d, const MergeSpec& m, const std::vector<Column>& cols,
                        const std::string& parts_ref, std::string* error) {
  auto q = [d](std::string_view n) { return QuoteIdentFor(d, n); };
  auto need = [&](const std::string& name) {
    if (FindColumn(cols, name)) return true;
    *error = "the parts table " + m.parts + " has no column '" + name +
             "': an aggregate's rows merge across instances by their window, groups and "
             "measures, so steps after the aggregate must keep those fields";
    return false;
  };
  for (const std::string& k : m.keys) {
    if (!need(k)) return "";
  }
  if (!need("_fork_row")) return "";
  for (const auto& me : m.measures) {
    if (me.fn == MergeSpec::Fn::kAvg) {
      if (!need(transforms::kPartialSumPrefix + me.name) ||
          !need(transforms::kPartialCountPrefix + me.name)) {
        return "";
      }
    } else if (!need(me.name)) {
      return "";
    }
  }
  std::string sel = "SELECT " + q("_fork_row") + " AS " + q("_fork_id");
  std::string group = q("_fork_row");
  for (const Column& c : cols) {
    if (IsPartialColumn(c.name)) continue;
    const std::string n = q(c.name);
    sel += ", ";
    if (std::find(m.keys.begin(), m.keys.end(), c.name) != m.keys.end()) {
      sel += n;
      group += ", " + n;
      continue;
    }
    const auto me = std::find_if(m.measures.begin(), m.measures.end(),
                                 [&](const MergeSpec::Measure& x) { return x.name == c.name; });
    if (me == m.measures.end()) {
      // Not the aggregate's (a field a later step set): one of the values.
      switch (d) {
        case SqlDialect::kSqlite: sel += "MAX(" + n + ")"; break;
        case SqlDialect::kPostgres: sel += "(array_agg(" + n + "))[1]"; break;
        case SqlDialect::kClickHouse: sel += "any(" + n + ")"; break;
      }
      sel += " AS " + n;
      continue;
    }
    switch (me->fn) {
      case MergeSpec::Fn::kSum:
        if (d == SqlDialect::kPostgres && c.type == ColType::kInteger) {
          sel += "CAST(SUM(" + n + ") AS bigint)";  // SUM(bigint) is numeric
        } else {
          sel += d == SqlDialect::kClickHouse ? "sum(" + n + ")" : "SUM(" + n + ")";
        }
        break;
      case MergeSpec::Fn::kMin: sel += (d == SqlDialect::kClickHouse ? "min(" : "MIN(") + n + ")"; break;
      case MergeSpec::Fn::kMax: sel += (d == SqlDialect::kClickHouse ? "max(" : "MAX(") + n + ")"; break;
      case MergeSpec::Fn::kAvg: {
        const std::string s = q(transforms::kPartialSumPrefix + me->name);
        const std::string k = q(transforms::kPartialCountPrefix + me->name);
        switch (d) {
          case SqlDialect::kSqlite:
            sel += "CAST(SUM(" + s + ") AS REAL) / NULLIF(SUM(" + k + "), 0)";
            break;
          case SqlDialect::kPostgres:
            sel += "CAST(SUM(" + s + ") AS double precision) / NULLIF(CAST(SUM(" + k +
                   ") AS double precision), 0)";
            break;
          case SqlDialect::kClickHouse:
            sel += "sum(" + s + ") / nullIf(sum(" + k + "), 0)";
            break;
        }
        break;
      }
    }
    sel += " AS " + n;
  }
  sel += " FROM " + parts_ref;
  if (d == SqlDialect::kClickHouse) sel += " FINAL";  // the newest version of each partial row
  sel += " GROUP BY " + group;
  return sel;
}

std::string MigrateRows(SqlDialect d, const MergeSpec& m, const std::vector<Column>& old_columns,
                        const std::vector<Column>& parts_columns, const std::string& old_ref,
                        const std::string& parts_ref) {
  auto q = [d](std::string_view n) { return QuoteIdentFor(d, n); };
  const std::string prefix = "'" + m.instance + "/'";  // an instance id needs no escaping
  std::string names = q("_fork_id") + ", " + q("_fork_instance") + ", " + q("_fork_row");
  std::string values = (d == SqlDialect::kClickHouse ? "concat(" + prefix + ", " + q("_fork_id") + ")"
                                                     : prefix + " || " + q("_fork_id")) +
                       ", '" + m.instance + "', " + q("_fork_id");
  for (const Column& c : old_columns) {
    if (IsPartialColumn(c.name) || !FindColumn(parts_columns, c.name)) continue;
    names += ", " + q(c.name);
    values += ", " + q(c.name);
  }
  for (const auto& me : m.measures) {
    if (me.fn != MergeSpec::Fn::kAvg || !FindColumn(old_columns, me.name)) continue;
    const std::string s = transforms::kPartialSumPrefix + me.name;
    const std::string k = transforms::kPartialCountPrefix + me.name;
    if (!FindColumn(parts_columns, s) || !FindColumn(parts_columns, k)) continue;
    names += ", " + q(s) + ", " + q(k);
    values += ", " + q(me.name) + ", CASE WHEN " + q(me.name) + " IS NULL THEN 0 ELSE 1 END";
  }
  if (d == SqlDialect::kClickHouse && FindColumn(parts_columns, "_version")) {
    names += ", " + q("_version");
    values += ", 0";
  }
  return "INSERT INTO " + parts_ref + " (" + names + ") SELECT " + values + " FROM " + old_ref +
         (d == SqlDialect::kClickHouse ? " FINAL" : "");
}

}  // namespace forkd::sinks
