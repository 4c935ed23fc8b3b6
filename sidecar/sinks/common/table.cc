#include "sinks/common/table.h"

#include <algorithm>

#include "sinks/common/json.h"

namespace forkd::sinks {

namespace {
// Values here were validated when they entered the log; their end is not
// needed to walk them, only a bound that does not overflow.
constexpr size_t kValidated = size_t{1} << 30;
}  // namespace

std::vector<OptionSpec> TableOptions() {
  return {
      {"table", OptType::kString, "", "Table to write (created when missing)", true},
      {"columns", OptType::kNode, "",
       "Columns as {name: type} (text, integer, real, boolean, json, timestamp); inferred from "
       "the first record when unset"},
      {"mode", OptType::kEnum, "append",
       "append: insert every record; upsert: insert or replace the row with the same key",
       false, {"append", "upsert"}},
      {"key", OptType::kString, "_fork_id",
       "The column upserts match on (aggregate rows are keyed by _fork_id)"},
      {"extra", OptType::kBool, "true",
       "Fields the table has no column for go to an `extra` json column; when false such a "
       "record is refused (dead letters)"},
  };
}

bool DestinationTableSpec(const SinkContext& ctx, TableSpec* out, std::string* error) {
  const Options& o = ctx.destination->sink;
  if (!ParseTableSpec(o, out, error)) {
    *error = "destinations." + ctx.destination->name + "." + *error;
    return false;
  }
  if (ctx.destination->chain.aggregate && !o.Get("mode").present) out->upsert = true;
  return true;
}

bool CheckTableOptions(const Options& o, std::string* error) {
  TableSpec spec;
  return ParseTableSpec(o, &spec, error);
}

const char* ColTypeName(ColType t) {
  switch (t) {
    case ColType::kText: return "text";
    case ColType::kInteger: return "integer";
    case ColType::kReal: return "real";
    case ColType::kBoolean: return "boolean";
    case ColType::kJson: return "json";
    case ColType::kTimestamp: return "timestamp";
  }
  return "text";
}

bool ParseColType(std::string_view s, ColType* out) {
  struct Alias {
    std::string_view name;
    ColType type;
  };
  static const Alias kAliases[] = {
      {"text", ColType::kText},       {"string", ColType::kText},
      {"integer", ColType::kInteger}, {"int", ColType::kInteger},
      {"bigint", ColType::kInteger},  {"real", ColType::kReal},
      {"float", ColType::kReal},      {"double", ColType::kReal},
      {"boolean", ColType::kBoolean}, {"bool", ColType::kBoolean},
      {"json", ColType::kJson},       {"timestamp", ColType::kTimestamp},
  };
  for (const auto& a : kAliases) {
    if (a.name == s) {
      *out = a.type;
      return true;
    }
  }
  return false;
}

bool ParseTableSpec(const Options& o, TableSpec* out, std::string* error) {
  out->table = o.Str("table");
  out->upsert = o.Str("mode") == "upsert";
  out->key = o.Str("key");
  out->extra = o.Bool("extra");
  if (out->table.empty()) {
    *error = "table: must not be empty";
    return false;
  }
  const YAML::Node& cols = o.Node("columns");
  if (cols.IsDefined() && !cols.IsNull()) {
    if (!cols.IsMap()) {
      *error = "columns: expected a map of name: type";
      return false;
    }
    for (auto it = cols.begin(); it != cols.end(); ++it) {
      Column c;
      c.name = it->first.Scalar();
      if (c.name.empty() || c.name == "_fork_id" || c.name == "extra") {
        *error = "columns: '" + c.name + "' is reserved or empty";
        return false;
      }
      if (!it->second.IsScalar() || !ParseColType(it->second.Scalar(), &c.type)) {
        *error = "columns." + c.name +
                 ": expected one of text, integer, real, boolean, json, timestamp";
        return false;
      }
      out->columns.push_back(std::move(c));
    }
  }
  if (out->upsert && out->key != "_fork_id" && !out->columns.empty() &&
      std::none_of(out->columns.begin(), out->columns.end(),
                   [&](const Column& c) { return c.name == out->key; })) {
    *error = "key: '" + out->key + "' is not one of the declared columns";
    return false;
  }
  return true;
}

namespace {

ColType TypeOf(const wire::Value& v) {
  switch (v.kind) {
    case wire::Kind::kStr: return ColType::kText;
    case wire::Kind::kInt:
    case wire::Kind::kUint: return ColType::kInteger;
    case wire::Kind::kFloat: return ColType::kReal;
    case wire::Kind::kBool: return ColType::kBoolean;
    case wire::Kind::kArray:
    case wire::Kind::kMap: return ColType::kJson;
    case wire::Kind::kExt: return v.ext_type == -1 ? ColType::kTimestamp : ColType::kText;
    default: return ColType::kText;
  }
}

}  // namespace

std::vector<Column> InferColumns(const TableSpec& spec, const uint8_t* payload) {
  std::vector<Column> cols{{"_fork_id", ColType::kText}};
  wire::Reader rd(payload, kValidated);
  const wire::Value m = rd.Next();
  for (uint32_t i = 0; m.kind == wire::Kind::kMap && i < m.len; ++i) {
    const wire::Value k = rd.Next();
    const wire::Value v = rd.Peek();
    rd.Skip();
    if (k.kind != wire::Kind::kStr) continue;
    const std::string_view name = k.str();
    if (name.empty() || name == "_fork_id" || name == "extra") continue;
    if (std::any_of(cols.begin(), cols.end(), [&](const Column& c) { return c.name == name; })) {
      continue;
    }
    cols.push_back({std::string(name), TypeOf(v)});
  }
  if (spec.extra) cols.push_back({"extra", ColType::kJson});
  return cols;
}

std::vector<Column> CompleteColumns(const TableSpec& spec) {
  std::vector<Column> cols{{"_fork_id", ColType::kText}};
  cols.insert(cols.end(), spec.columns.begin(), spec.columns.end());
  if (spec.extra) cols.push_back({"extra", ColType::kJson});
  return cols;
}

void RowMapper::Reset(const std::vector<Column>* columns, bool extra) {
  columns_ = columns;
  values_.assign(columns->size(), nullptr);
  hints_.clear();
  extra_index_ = extra ? columns->size() - 1 : SIZE_MAX;
}

bool RowMapper::Map(const uint8_t* payload, size_t size, std::string* error) {
  std::fill(values_.begin(), values_.end(), nullptr);
  extra_.clear();
  wire::Reader rd(payload, size);
  const wire::Value m = rd.Next();
  const size_t last = extra_index_ == SIZE_MAX ? columns_->size() : extra_index_;
  for (uint32_t i = 0; m.kind == wire::Kind::kMap && i < m.len; ++i) {
    const uint8_t* key_at = rd.pos();
    const wire::Value k = rd.Next();
    const uint8_t* value_at = rd.pos();
    rd.Skip();
    const std::string_view name = k.kind == wire::Kind::kStr ? k.str() : std::string_view();
    if (name == "_fork_id") continue;  // the id is forkd's
    // Records of one stream share their field order: try where the field
    // at this position went last time, then search.
    if (hints_.size() <= i) hints_.resize(i + 1, 1);
    size_t c = hints_[i];
    if (c >= last || (*columns_)[c].name != name) {
      c = 1;
      while (c < last && (*columns_)[c].name != name) ++c;
      if (c < last) hints_[i] = c;
    }
    if (c < last && k.kind == wire::Kind::kStr) {
      values_[c] = value_at;
      continue;
    }
    if (extra_index_ == SIZE_MAX) {
      std::string shown;
      AppendJsonKey(key_at, &shown);
      *error = "field " + shown + " has no column in the table (and extra: false)";
      return false;
    }
    extra_.push_back(extra_.empty() ? '{' : ',');
    AppendJsonKey(key_at, &extra_);
    extra_.push_back(':');
    AppendJson(value_at, &extra_);
  }
  if (!extra_.empty()) extra_.push_back('}');
  return true;
}

bool CellText(const uint8_t* value, ColType t, std::string* out) {
  out->clear();
  if (value == nullptr) return false;
  wire::Reader rd(value, kValidated);
  const wire::Value v = rd.Peek();
  if (v.kind == wire::Kind::kNil) return false;
  if (t == ColType::kJson) {
    AppendJson(value, out);
    return true;
  }
  switch (v.kind) {
    case wire::Kind::kStr: out->assign(v.str()); return true;
    case wire::Kind::kBool: out->assign(v.b ? "true" : "false"); return true;
    case wire::Kind::kInt: out->assign(std::to_string(v.i)); return true;
    case wire::Kind::kUint: out->assign(std::to_string(v.u)); return true;
    case wire::Kind::kFloat: AppendDouble(v.f, out); return *out != "null";
    default: break;
  }
  // Maps, arrays, binary, timestamps in a non-json column: their JSON text,
  // unquoted when it is a JSON string (a timestamp's ISO form).
  AppendJson(value, out);
  if (out->size() >= 2 && out->front() == '"' && out->back() == '"') {
    *out = out->substr(1, out->size() - 2);
  }
  return true;
}

}  // namespace forkd::sinks
