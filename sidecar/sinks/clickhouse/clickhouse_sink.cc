#include "sinks/clickhouse/clickhouse_sink.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "sinks/common/json.h"
#include "wire/hex.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace clickhouse {

std::string QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('`');
  for (char c : name) {
    if (c == '`' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

int ErrorCode(std::string_view header, std::string_view body) {
  auto digits = [](std::string_view s) {
    int code = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), code);
    return r.ec == std::errc() ? code : 0;
  };
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  if (!header.empty()) {
    if (const int c = digits(header); c > 0) return c;
  }
  // "Code: 27, e.displayText() = ..." (before 20.x), "Code: 27. DB::Exception: ..." after.
  while (!body.empty() && (body.front() == ' ' || body.front() == '\n')) body.remove_prefix(1);
  if (body.substr(0, 6) != "Code: ") return 0;
  return digits(body.substr(6));
}

bool IsDataError(int code, std::string_view body) {
  switch (code) {
    case 6:    // CANNOT_PARSE_TEXT
    case 25:   // CANNOT_PARSE_ESCAPE_SEQUENCE
    case 26:   // CANNOT_PARSE_QUOTED_STRING
    case 27:   // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    case 38:   // CANNOT_PARSE_DATE
    case 41:   // CANNOT_PARSE_DATETIME
    case 53:   // TYPE_MISMATCH
    case 69:   // ARGUMENT_OUT_OF_BOUND
    case 70:   // CANNOT_CONVERT_TYPE
    case 72:   // CANNOT_PARSE_NUMBER
    case 128:  // TOO_LARGE_ARRAY_SIZE
    case 130:  // CANNOT_READ_ARRAY_FROM_TEXT
    case 131:  // TOO_LARGE_STRING_SIZE
    case 321:  // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    case 349:  // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    case 376:  // CANNOT_PARSE_UUID
    case 407:  // DECIMAL_OVERFLOW
    case 441:  // CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING
    case 467:  // CANNOT_PARSE_BOOL
    case 469:  // VIOLATED_CONSTRAINT
      return true;
    case 117:  // INCORRECT_DATA, but an unknown field means the table changed under us
      return body.find("Unknown field") == std::string_view::npos;
    default:
      break;
  }
  // Newer servers end the message with the error's name: "(CANNOT_PARSE_IPV4)".
  return body.find("(CANNOT_PARSE_") != std::string_view::npos;
}

ChType ParseChType(std::string_view t) {
  ChType out;
  auto unwrap = [&](std::string_view prefix) {
    if (t.size() > prefix.size() + 1 && t.substr(0, prefix.size()) == prefix && t.back() == ')') {
      t = t.substr(prefix.size(), t.size() - prefix.size() - 1);
      return true;
    }
    return false;
  };
  if (unwrap("LowCardinality(")) {}
  if (unwrap("Nullable(")) out.nullable = true;
  if (unwrap("LowCardinality(")) {}
  auto starts = [&](std::string_view p) { return t.substr(0, p.size()) == p; };
  if (t == "String" || starts("FixedString(")) {
    out.kind = ChType::kString;
  } else if (t == "Bool") {
    out.kind = ChType::kBool;
  } else if (starts("Int") || starts("UInt")) {
    const bool is_unsigned = starts("UInt");
    std::string_view n = t.substr(is_unsigned ? 4 : 3);
    int bits = 0;
    const auto r = std::from_chars(n.data(), n.data() + n.size(), bits);
    if (r.ec != std::errc() || r.ptr != n.data() + n.size()) return out;  // Interval...: other
    out.kind = ChType::kInt;
    out.is_signed = !is_unsigned;
    out.bits = bits <= 64 ? bits : 0;
  } else if (starts("Float") || starts("Decimal")) {
    out.kind = ChType::kFloat;
  } else if (starts("DateTime64")) {
    out.kind = ChType::kDateTime64;
  } else if (starts("DateTime")) {
    out.kind = ChType::kDateTime;
  }
  return out;
}

}  // namespace clickhouse

namespace {

using clickhouse::ChType;
using clickhouse::QuoteIdent;

constexpr size_t kMessageBytes = 400;  // of a server's error, in messages
// Values here were validated when they entered the log.
constexpr size_t kValidated = size_t{1} << 30;

// A field name that can be a column: it comes through a JSON key and a
// backquoted identifier unchanged, so it is valid UTF-8 (AppendJsonString
// would replace anything else) without control characters. Fields with other
// names stay in `extra`.
bool UsableName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  std::string json;
  AppendJsonString(s, &json);
  // Only `"` and `\` are escaped now (a byte each); a replaced byte grows by two.
  const auto escaped = static_cast<size_t>(std::count(s.begin(), s.end(), '"') +
                                           std::count(s.begin(), s.end(), '\\'));
  return json.size() == s.size() + 2 + escaped;
}

// A server error made fit for a message: one line, without the old servers'
// ", e.what() = DB::Exception" tail.
std::string ServerMessage(std::string body) {
  const size_t what = body.find(", e.what() = ");
  if (what != std::string::npos) body.resize(what);
  std::string out = Excerpt(body, kMessageBytes);
  // Excerpt turns each control character into a space; fold the runs.
  std::string folded;
  for (char c : out) {
    if (c == ' ' && !folded.empty() && folded.back() == ' ') continue;
    folded.push_back(c);
  }
  return folded;
}

// Epoch milliseconds -> "2026-11-21T12:00:00.123Z".
void AppendIsoMillis(int64_t ms, std::string* out) {
  int64_t secs = ms / 1000;
  int64_t rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    secs -= 1;
  }
  AppendIsoTime(secs, static_cast<uint32_t>(rem) * 1000000u, out);
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

void AppendUint(uint64_t v, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

// Splits TabSeparated output into rows of unescaped fields.
std::vector<std::vector<std::string>> ParseTsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      const char e = text[++i];
      switch (e) {
        case 'n': field.push_back('\n'); break;
        case 't': field.push_back('\t'); break;
        case 'r': field.push_back('\r'); break;
        case 'b': field.push_back('\b'); break;
        case 'f': field.push_back('\f'); break;
        case '0': field.push_back('\0'); break;
        default: field.push_back(e); break;  // \\ \' and the rest
      }
    } else if (c == '\t') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
    } else {
      field.push_back(c);
    }
  }
  if (!field.empty() || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

const std::vector<OptionSpec>& ClickHouseSinkOptions() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> v = {
        {"url", OptType::kString, "",
         "ClickHouse's HTTP interface, e.g. http://127.0.0.1:8123 (http:// or https://)", true},
        {"database", OptType::kString, "default", "Database of the table (created when missing)"},
        {"user", OptType::kString, "",
         "User to authenticate as (HTTP basic auth); the server's default user when empty"},
        {"password", OptType::kString, "",
         "Password of `user`; use ${ENV}. Never shown in messages or logs"},
        {"timeout", OptType::kDuration, "30s", "Limit on one request (an insert), connecting included",
         false, {}, 1, 3600000},
        {"connect_timeout", OptType::kDuration, "2s", "Limit on establishing the connection",
         false, {}, 1, 3600000},
    };
    for (auto& o : TableOptions()) v.push_back(o);
    return v;
  }();
  return specs;
}

bool CheckClickHouseOptions(const Options& o, std::string* error) {
  TableSpec spec;
  if (!ParseTableSpec(o, &spec, error)) return false;
  if (std::string bad = CheckHttpUrl(o.Str("url")); !bad.empty()) {
    *error = "url: " + bad.substr(bad.rfind("url ", 0) == 0 ? 4 : 0);
    return false;
  }
  if (o.Str("database").empty()) {
    *error = "database: must not be empty";
    return false;
  }
  for (const Column& c : spec.columns) {
    if (!UsableName(c.name)) {
      *error = "columns: a column name must be valid UTF-8 without control characters";
      return false;
    }
  }
  return true;
}

std::unique_ptr<Sink> CreateClickHouseSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  ClickHouseSink::Settings s;
  s.url = o.Str("url");
  s.database = o.Str("database");
  s.user = o.Str("user");
  s.password = o.Str("password");
  s.timeout_ms = o.Millis("timeout");
  s.connect_timeout_ms = o.Millis("connect_timeout");
  // Problems are reported by Open, named as in the config.
  if (DestinationTableSpec(ctx, &s.table, &s.error)) {
    s.merge = MergeSpecFor(ctx, &s.table, &s.merge_spec);
  }
  if (s.error.empty() && s.database.empty()) {
    s.error = "destinations." + ctx.destination->name + ".database: must not be empty";
  }
  return std::make_unique<ClickHouseSink>(std::move(s));
}

ClickHouseSink::ClickHouseSink(Settings s) : s_(std::move(s)) {
  safe_url_ = SafeUrl(s_.url);
  target_ = QuoteIdent(s_.database) + "." + QuoteIdent(s_.table.table);
}

ClickHouseSink::~ClickHouseSink() = default;

Status ClickHouseSink::Open(const std::string&) {
  if (!s_.error.empty()) return Status::Fatal(s_.error);
  if (std::string bad = CheckHttpUrl(s_.url); !bad.empty()) return Status::Fatal(bad);
  for (const Column& c : s_.table.columns) {
    if (!UsableName(c.name)) {
      return Status::Fatal("columns: a name must be valid UTF-8 without control characters");
    }
  }
  if (!conn_.Init(s_.timeout_ms, s_.connect_timeout_ms)) {
    return Status::Retry("cannot create a curl handle");
  }
  CURL* c = conn_.get();
  if (!s_.user.empty() || !s_.password.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(c, CURLOPT_USERNAME, s_.user.empty() ? "default" : s_.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, s_.password.c_str());
  }
  opened_ = true;
  // The server and the table are looked at before the first insert: a server
  // down now does not hold the pipeline in Open.
  probed_ = false;
  ready_ = false;
  return Status::Ok();
}

void ClickHouseSink::Write(const Record& r) {
  Held h;
  h.id_off = arena_.size();
  h.id_len = r.event_id.size();
  arena_.append(r.event_id);
  h.payload_off = arena_.size();
  h.payload_len = r.payload_size;
  arena_.append(reinterpret_cast<const char*>(r.payload), r.payload_size);
  h.lsn = r.header != nullptr ? r.header->lsn : 0;
  held_.push_back(h);
  body_valid_ = false;
}

size_t ClickHouseSink::buffered_bytes() const {
  return body_valid_ ? body_.size() : arena_.size();
}

void ClickHouseSink::Clear() {
  arena_.clear();
  held_.clear();
  body_.clear();
  body_valid_ = false;
}

void ClickHouseSink::Discard() { Clear(); }

Status ClickHouseSink::Fail(const CurlConnection& conn, const std::string& what) {
  // A network error, or an answer that is not a success.
  last_code_ = 0;
  if (!conn.error().empty()) {
    return Status::Retry("clickhouse " + safe_url_ + ": " + what + " failed: " + conn.error());
  }
  std::string header;
  struct curl_header* h = nullptr;
  if (curl_easy_header(conn.get(), "X-ClickHouse-Exception-Code", 0, CURLH_HEADER, -1, &h) ==
      CURLHE_OK) {
    header = h->value;
  }
  const int code = clickhouse::ErrorCode(header, conn.body());
  last_code_ = code;
  std::string msg = "clickhouse " + safe_url_ + ": " + what + ": http " +
                    std::to_string(conn.status());
  const std::string server = ServerMessage(conn.body());
  if (!server.empty()) msg += ": " + server;
  if (code == 60 || code == 81 || code == 16 ||
      (code == 117 && conn.body().find("Unknown field") != std::string::npos)) {
    // The table (or database) is gone or changed: look at it again.
    ready_ = false;
    body_valid_ = false;
    return Status::Retry(std::move(msg));
  }
  if (code != 0 && clickhouse::IsDataError(code, conn.body())) return Status::Fatal(std::move(msg));
  // A request too large for a proxy in front: halves will pass.
  if (code == 0 && conn.status() == 413) return Status::Fatal(std::move(msg));
  return Status::Retry(std::move(msg));
}

bool ClickHouseSink::Post(const std::string& url, const std::string& data, size_t keep) {
  CURL* c = conn_.get();
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: text/plain; charset=utf-8");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, data.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(data.size()));
  conn_.keep_body(keep);
  last_code_ = 0;
  const bool answered = conn_.Perform();
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  return answered && conn_.status() >= 200 && conn_.status() < 300;
}

Status ClickHouseSink::Query(const std::string& sql, const std::string& what) {
  // The statement is the body; the answer is kept whole (it is small).
  if (Post(s_.url, sql, 1 << 20)) return Status::Ok();
  return Fail(what);
}

Status ClickHouseSink::Probe() {
  // What this server has, by name: no version arithmetic. system.settings and
  // system.data_type_families are there since before 18.16; a server that
  // cannot answer (restricted rights) is taken to have none of them.
  const std::string sql =
      "SELECT name FROM system.settings WHERE name IN ('date_time_input_format', "
      "'insert_deduplication_token') "
      "UNION ALL SELECT name FROM system.merge_tree_settings WHERE name = "
      "'non_replicated_deduplication_window' "
      "UNION ALL SELECT name FROM system.data_type_families WHERE name IN ('DateTime64', 'Bool') "
      "FORMAT TabSeparated";
  features_.clear();
  Status s = Query(sql, "probing the server");
  if (!s.ok()) {
    // Only a server that says it has no such table or may not read it is
    // taken to have none of these; anything else is tried again.
    const int c = last_code_;
    if (c != 60 && c != 47 && c != 16 && c != 291 && c != 497) return Status::Retry(s.message());
  } else {
    for (auto& row : ParseTsv(conn_.body())) {
      if (!row.empty()) features_.insert(row[0]);
    }
  }
  best_effort_time_ = features_.count("date_time_input_format") > 0;
  dedup_token_ = features_.count("insert_deduplication_token") > 0;
  probed_ = true;
  return Status::Ok();
}

std::string ClickHouseSink::ChTypeFor(ColType t, bool nullable) const {
  std::string base;
  switch (t) {
    case ColType::kText:
    case ColType::kJson: base = "String"; break;
    case ColType::kInteger: base = "Int64"; break;
    case ColType::kReal: base = "Float64"; break;
    case ColType::kBoolean: base = features_.count("Bool") ? "Bool" : "UInt8"; break;
    case ColType::kTimestamp:
      base = features_.count("DateTime64") ? "DateTime64(3, 'UTC')" : "DateTime('UTC')";
      break;
  }
  return nullable ? "Nullable(" + base + ")" : base;
}

Status ClickHouseSink::Describe(bool* exists,
                                std::vector<std::pair<std::string, std::string>>* cols) {
  cols->clear();
  *exists = false;
  Status s = Query("DESCRIBE TABLE " + target_ + " FORMAT TabSeparated",
                   "describing table " + target_);
  if (!s.ok()) {
    if (last_code_ == 60 || last_code_ == 81) return Status::Ok();  // missing
    return Status::Retry(s.message());
  }
  *exists = true;
  for (auto& row : ParseTsv(conn_.body())) {
    if (row.size() < 2) continue;
    // Columns the server computes cannot be inserted.
    if (row.size() >= 3 && (row[2] == "MATERIALIZED" || row[2] == "ALIAS")) continue;
    cols->emplace_back(std::move(row[0]), std::move(row[1]));
  }
  return Status::Ok();
}

namespace {

std::vector<Column> AsColumns(const std::vector<std::pair<std::string, std::string>>& found) {
  std::vector<Column> cols;
  for (const auto& [name, type] : found) {
    const ChType ch = clickhouse::ParseChType(type);
    ColType t = ColType::kText;
    if (ch.kind == ChType::kInt) t = ColType::kInteger;
    if (ch.kind == ChType::kFloat) t = ColType::kReal;
    cols.push_back({name, t});
  }
  return cols;
}

}  // namespace

Status ClickHouseSink::EnsureMergeView(
    const std::vector<std::pair<std::string, std::string>>& parts_columns) {
  const MergeSpec& m = s_.merge_spec;
  const std::string view = QuoteIdent(s_.database) + "." + QuoteIdent(m.view);
  const std::vector<Column> parts = AsColumns(parts_columns);
  std::string error;
  const std::string select = MergeSelect(SqlDialect::kClickHouse, m, parts, target_, &error);
  if (select.empty()) return Status::Fatal("clickhouse " + safe_url_ + ": " + error);
  Status s = Query("SHOW CREATE TABLE " + view + " FORMAT TabSeparatedRaw", "looking up " + view);
  if (s.ok()) {
    const std::string& ddl = conn_.body();
    if (ddl.find("CREATE VIEW") != std::string::npos) return Status::Ok();
    // Written by the single-instance layout: its rows become this
    // instance's partial rows (copied first, so that a crash before the
    // rename copies them again, onto the same ids), then the table steps
    // aside for the view.
    std::vector<std::pair<std::string, std::string>> old_found;
    s = Query("DESCRIBE TABLE " + view + " FORMAT TabSeparated", "describing " + view);
    if (!s.ok()) return Status::Retry(s.message());
    for (auto& row : ParseTsv(conn_.body())) {
      if (row.size() >= 2) old_found.emplace_back(std::move(row[0]), std::move(row[1]));
    }
    const std::vector<Column> old = AsColumns(old_found);
    if (std::none_of(old.begin(), old.end(), [](const Column& c) { return c.name == "_fork_id"; })) {
      return Status::Fatal("clickhouse " + safe_url_ + ": table " + view +
                           " exists and was not written by forkd (no _fork_id); the merged view "
                           "of an aggregate shared by instances needs its name");
    }
    s = Query(MigrateRows(SqlDialect::kClickHouse, m, old, parts, view, target_),
              "copying " + view + " into " + target_);
    if (s.ok()) {
      s = Query("RENAME TABLE " + view + " TO " + QuoteIdent(s_.database) + "." +
                    QuoteIdent(m.backup),
                "renaming " + view);
    }
    if (!s.ok()) return Status::Retry(s.message());
  } else if (last_code_ != 60 && last_code_ != 81 && last_code_ != 390) {
    return Status::Retry(s.message());
  }
  s = Query("CREATE VIEW IF NOT EXISTS " + view + " AS " + select, "creating the view " + view);
  if (!s.ok()) return Status::Retry(s.message());
  return Status::Ok();
}

Status ClickHouseSink::PrepareTable() {
  const TableSpec& spec = s_.table;
  bool exists = false;
  std::vector<std::pair<std::string, std::string>> found;
  Status s = Describe(&exists, &found);
  if (!s.ok()) return s;

  if (!exists) {
    // The columns: declared, or the first record's.
    std::vector<Column> cols;
    if (!spec.columns.empty()) {
      cols = CompleteColumns(spec);
    } else {
      const Held& h = held_.front();
      cols = InferColumns(spec, reinterpret_cast<const uint8_t*>(arena_.data() + h.payload_off));
      cols.erase(std::remove_if(cols.begin() + 1, cols.end(),
                                [](const Column& c) { return !UsableName(c.name); }),
                 cols.end());
    }
    const bool upsert = spec.upsert;
    if (upsert && spec.key != "_fork_id" &&
        std::none_of(cols.begin(), cols.end(), [&](const Column& c) { return c.name == spec.key; })) {
      cols.insert(cols.end() - (spec.extra ? 1 : 0), Column{spec.key, ColType::kText});
    }
    std::string sql = "CREATE TABLE IF NOT EXISTS " + target_ + " (";
    for (size_t i = 0; i < cols.size(); ++i) {
      const Column& c = cols[i];
      if (i) sql += ", ";
      sql += QuoteIdent(c.name) + " ";
      if (c.name == "_fork_id" || (i + 1 == cols.size() && spec.extra && c.name == "extra")) {
        sql += "String";
      } else {
        sql += ChTypeFor(c.type, !(upsert && c.name == spec.key));
      }
    }
    if (upsert) sql += ", `_version` UInt64";
    sql += ") ENGINE = ReplacingMergeTree";
    if (upsert) sql += "(`_version`)";
    sql += " ORDER BY " + QuoteIdent(upsert ? spec.key : std::string("_fork_id"));
    if (features_.count("non_replicated_deduplication_window")) {
      sql += " SETTINGS non_replicated_deduplication_window = 1000";
    }
    s = Query(sql, "creating table " + target_);
    if (!s.ok() && last_code_ == 81) {
      s = Query("CREATE DATABASE IF NOT EXISTS " + QuoteIdent(s_.database),
                "creating database " + QuoteIdent(s_.database));
      if (s.ok()) s = Query(sql, "creating table " + target_);
    }
    if (!s.ok()) return Status::Retry(s.message());
    s = Describe(&exists, &found);
    if (!s.ok()) return s;
    if (!exists) return Status::Retry("clickhouse " + safe_url_ + ": table " + target_ +
                                      " missing right after it was created");
  } else if (!spec.columns.empty()) {
    // Declared columns the table lacks are added.
    for (const Column& c : spec.columns) {
      if (std::any_of(found.begin(), found.end(), [&](const auto& f) { return f.first == c.name; })) {
        continue;
      }
      s = Query("ALTER TABLE " + target_ + " ADD COLUMN " + QuoteIdent(c.name) + " " +
                    ChTypeFor(c.type, true),
                "adding column " + QuoteIdent(c.name) + " to " + target_);
      if (!s.ok()) return Status::Retry(s.message());
    }
    s = Describe(&exists, &found);
    if (!s.ok()) return s;
  }

  // Map records onto the table as it is.
  cols_.clear();
  has_extra_ = false;
  has_version_ = false;
  bool has_id = false;
  auto declared = [&](const std::string& name) -> const Column* {
    for (const Column& c : spec.columns) {
      if (c.name == name) return &c;
    }
    return nullptr;
  };
  for (const auto& [name, type] : found) {
    const ChType ch = clickhouse::ParseChType(type);
    if (name == "_fork_id") {
      has_id = true;
      continue;
    }
    if (name == "_version") {
      has_version_ = true;
      continue;
    }
    if (name == "extra") {
      has_extra_ = spec.extra;
      extra_type_ = ch;
      continue;
    }
    const Column* d = declared(name);
    if (!spec.columns.empty() && d == nullptr) continue;  // not declared: left to its default
    Col c;
    c.name = name;
    c.ch = ch;
    c.key = ",";
    AppendJsonString(name, &c.key);
    c.key.push_back(':');
    if (d != nullptr) {
      c.type = d->type;
    } else {
      switch (ch.kind) {
        case ChType::kInt: c.type = ColType::kInteger; break;
        case ChType::kFloat: c.type = ColType::kReal; break;
        case ChType::kBool: c.type = ColType::kBoolean; break;
        case ChType::kDateTime:
        case ChType::kDateTime64: c.type = ColType::kTimestamp; break;
        default: c.type = ColType::kText; break;
      }
    }
    cols_.push_back(std::move(c));
  }
  if (!has_id) {
    return Status::Retry("clickhouse " + safe_url_ + ": table " + target_ +
                         " has no _fork_id column");
  }
  if (spec.upsert && spec.key != "_fork_id" &&
      std::none_of(cols_.begin(), cols_.end(), [&](const Col& c) { return c.name == spec.key; })) {
    return Status::Retry("clickhouse " + safe_url_ + ": table " + target_ + " has no column " +
                         QuoteIdent(spec.key) + " (the upsert key)");
  }
  if (s_.merge) {
    s = EnsureMergeView(found);
    if (!s.ok()) return s;
  }
  map_cols_.clear();
  map_cols_.push_back({"_fork_id", ColType::kText});
  for (const Col& c : cols_) map_cols_.push_back({c.name, c.type});
  if (has_extra_) map_cols_.push_back({"extra", ColType::kJson});
  mapper_.Reset(&map_cols_, has_extra_);

  // INSERT INTO `db`.`t` (`_fork_id`, ...) FORMAT JSONEachRow
  std::string sql = "INSERT INTO " + target_ + " (`_fork_id`";
  for (const Col& c : cols_) sql += ", " + QuoteIdent(c.name);
  if (has_extra_) sql += ", `extra`";
  if (has_version_) sql += ", `_version`";
  sql += ") FORMAT JSONEachRow";
  char* q = curl_easy_escape(conn_.get(), sql.data(), static_cast<int>(sql.size()));
  insert_url_ = s_.url + (s_.url.find('?') == std::string::npos ? "?" : "&") + "query=" + q;
  curl_free(q);
  if (best_effort_time_) {
    insert_url_ += "&date_time_input_format=best_effort";
  }
  insert_url_ += "&input_format_skip_unknown_fields=0";
  ready_ = true;
  body_valid_ = false;
  return Status::Ok();
}

bool ClickHouseSink::EncodeValue(const uint8_t* p, const Col& c, std::string* out,
                                 std::string* error) {
  wire::Reader rd(p, kValidated);
  const wire::Value v = rd.Peek();
  auto as_string = [&] {
    // The value's text (strings as they are, others as their JSON text) as a
    // JSON string: the server parses it into the column or refuses it.
    if (v.kind == wire::Kind::kStr && c.type != ColType::kJson) {
      AppendJsonString(v.str(), out);  // the common case, without a copy
      return;
    }
    if (c.type == ColType::kJson && c.ch.kind == ChType::kString) {
      scratch_.clear();
      AppendJson(p, &scratch_);
    } else if (!CellText(p, c.type, &scratch_)) {
      scratch_.clear();
    }
    AppendJsonString(scratch_, out);
  };
  auto time_ms = [&](int64_t ms) {
    if (best_effort_time_) {
      out->push_back('"');
      AppendIsoMillis(ms, out);
      out->push_back('"');
    } else {
      // Whole seconds since the epoch: what an old server reads regardless
      // of the column's time zone.
      AppendInt(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000), out);
    }
  };
  switch (c.ch.kind) {
    case ChType::kString:
      as_string();
      return true;
    case ChType::kInt: {
      if (v.kind == wire::Kind::kInt || v.kind == wire::Kind::kUint ||
          (v.kind == wire::Kind::kFloat && std::isfinite(v.f) && std::trunc(v.f) == v.f &&
           std::fabs(v.f) < 9.2e18)) {
        const bool neg = v.kind == wire::Kind::kInt ? v.i < 0
                         : v.kind == wire::Kind::kFloat ? v.f < 0
                                                        : false;
        const uint64_t mag = v.kind == wire::Kind::kInt
                                 ? (v.i < 0 ? 0 - static_cast<uint64_t>(v.i) : static_cast<uint64_t>(v.i))
                             : v.kind == wire::Kind::kUint ? v.u
                                                          : static_cast<uint64_t>(std::fabs(v.f));
        if (c.ch.bits > 0) {
          const int b = c.ch.bits;
          const uint64_t max_pos = c.ch.is_signed ? (uint64_t{1} << (b - 1)) - 1
                                   : b == 64      ? UINT64_MAX
                                                  : (uint64_t{1} << b) - 1;
          const uint64_t max_neg = c.ch.is_signed ? uint64_t{1} << (b - 1) : 0;
          if ((neg && mag > max_neg) || (!neg && mag > max_pos)) {
            scratch_.clear();
            AppendJson(p, &scratch_);
            *error = "field \"" + c.name + "\": " + scratch_ + " is out of range for " +
                     (c.ch.is_signed ? "Int" : "UInt") + std::to_string(b);
            return false;
          }
        }
        if (neg) out->push_back('-');
        AppendUint(mag, out);
        return true;
      }
      if (v.kind == wire::Kind::kBool) {
        out->push_back(v.b ? '1' : '0');
        return true;
      }
      as_string();
      return true;
    }
    case ChType::kFloat:
      if (v.kind == wire::Kind::kInt || v.kind == wire::Kind::kUint) {
        AppendJson(p, out);
      } else if (v.kind == wire::Kind::kFloat) {
        if (std::isnan(v.f)) {
          out->append("\"nan\"");
        } else if (std::isinf(v.f)) {
          out->append(v.f > 0 ? "\"inf\"" : "\"-inf\"");
        } else {
          AppendDouble(v.f, out);
        }
      } else if (v.kind == wire::Kind::kBool) {
        out->push_back(v.b ? '1' : '0');
      } else {
        as_string();
      }
      return true;
    case ChType::kBool:
      if (v.kind == wire::Kind::kBool) {
        out->append(v.b ? "true" : "false");
      } else if (v.kind == wire::Kind::kInt || v.kind == wire::Kind::kUint) {
        AppendJson(p, out);
      } else {
        as_string();
      }
      return true;
    case ChType::kDateTime:
    case ChType::kDateTime64: {
      int64_t secs;
      uint32_t nanos;
      if (v.kind == wire::Kind::kExt && wire::DecodeTimestamp(v, &secs, &nanos)) {
        time_ms(secs * 1000 + nanos / 1000000);
      } else if (v.kind == wire::Kind::kInt) {
        time_ms(v.i);  // epoch milliseconds
      } else if (v.kind == wire::Kind::kUint && v.u <= static_cast<uint64_t>(INT64_MAX)) {
        time_ms(static_cast<int64_t>(v.u));
      } else if (v.kind == wire::Kind::kFloat && std::isfinite(v.f) && std::fabs(v.f) < 9e18) {
        time_ms(static_cast<int64_t>(std::floor(v.f)));
      } else {
        as_string();
      }
      return true;
    }
    case ChType::kOther:
      // Arrays, enums, dates, UUIDs...: the value's JSON, which ClickHouse
      // reads for most of them; it refuses what does not fit.
      AppendJson(p, out);
      return true;
  }
  return true;
}

Status ClickHouseSink::Encode() {
  body_.clear();
  body_.reserve(arena_.size() * 2);
  const TableSpec& spec = s_.table;
  const bool key_required = spec.upsert && spec.key != "_fork_id";
  std::string error;
  for (const Held& h : held_) {
    const std::string_view id(arena_.data() + h.id_off, h.id_len);
    const auto* payload = reinterpret_cast<const uint8_t*>(arena_.data() + h.payload_off);
    auto refuse = [&](const std::string& why) {
      std::string shown;
      AppendJsonString(id.substr(0, 200), &shown);
      return Status::Fatal("clickhouse: record " + shown + " refused: " + why);
    };
    if (!mapper_.Map(payload, h.payload_len, &error)) return refuse(error);
    body_.append("{\"_fork_id\":");
    AppendJsonString(id, &body_);
    for (size_t i = 0; i < cols_.size(); ++i) {
      const Col& c = cols_[i];
      const uint8_t* v = mapper_.value(i + 1);
      const bool nil = v == nullptr || wire::Reader(v, kValidated).Peek().kind == wire::Kind::kNil;
      if (nil) {
        if (key_required && c.name == spec.key) return refuse("no value for the key \"" + spec.key + "\"");
        // Missing: the column's default (NULL for a Nullable column).
        continue;
      }
      body_.append(c.key);
      if (!EncodeValue(v, c, &body_, &error)) return refuse(error);
    }
    if (has_extra_ && !mapper_.extra_json().empty()) {
      body_.append(",\"extra\":");
      if (extra_type_.kind == ChType::kString) {
        AppendJsonString(mapper_.extra_json(), &body_);
      } else {
        body_.append(mapper_.extra_json());  // a JSON or Map column of the user's
      }
    }
    if (has_version_) {
      body_.append(",\"_version\":");
      AppendUint(h.lsn, &body_);
    }
    body_.append("}\n");
  }
  token_.clear();
  if (dedup_token_) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(body_.data(), body_.size(), md, &len, EVP_sha256(), nullptr);
    token_ = wire::Hex(md, len);
  }
  body_valid_ = true;
  return Status::Ok();
}

Status ClickHouseSink::Ready() {
  if (!opened_) return Status::Fatal("clickhouse sink flushed before Open");
  if (!probed_) {
    Status s = Probe();
    if (!s.ok()) return s;
  }
  if (!ready_) {
    Status s = PrepareTable();
    if (!s.ok()) return s;
  }
  if (!body_valid_) return Encode();
  return Status::Ok();
}

Status ClickHouseSink::Send(uint64_t ticket) {
  if (Status s = Ready(); !s.ok()) return s;
  CurlLane* lane = lanes_.Take(ticket, s_.timeout_ms, s_.connect_timeout_ms);
  if (lane == nullptr) return Status::Retry("clickhouse: cannot create a curl handle");
  lane->conn.keep_body(4096);
  lane->body.swap(body_);
  lane->url = token_.empty() ? insert_url_ : insert_url_ + "&insert_deduplication_token=" + token_;
  Clear();
  if (lane->headers == nullptr) {
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: text/plain; charset=utf-8");
    lane->SetHeaders(curl_slist_append(h, "Expect:"));
  }
  lanes_.Post(lane);
  return Status::Ok();
}

Status ClickHouseSink::Await(uint64_t ticket) {
  const CurlLane* lane = lanes_.Await(ticket);
  if (lane == nullptr) return Status::Fatal("clickhouse: no batch " + std::to_string(ticket) + " was sent");
  const CurlConnection& conn = lane->conn;
  if (conn.error().empty() && conn.status() >= 200 && conn.status() < 300) return Status::Ok();
  return Fail(conn, "insert into " + target_);
}

Status ClickHouseSink::Flush() {
  if (held_.empty()) return Status::Ok();
  if (Status s = Ready(); !s.ok()) return s;
  const bool ok = token_.empty()
                      ? Post(insert_url_, body_, 4096)
                      : Post(insert_url_ + "&insert_deduplication_token=" + token_, body_, 4096);
  if (ok) {
    Clear();
    return Status::Ok();
  }
  return Fail("insert into " + target_);
}

}  // namespace forkd::sinks
