// The clickhouse store, read back with SELECT ... FINAL (rows collapsed by
// ReplacingMergeTree as a reader sees them) in TabSeparated, over HTTP.
#include <curl/curl.h>

#include <cstring>

#include "sinks/clickhouse/clickhouse_sink.h"
#include "sinks/common/curl.h"
#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "verify/store_internal.h"

namespace forkd::verify {
namespace {

// TabSeparated's escapes undone in place; "\N" is NULL.
std::optional<std::string_view> Unescape(std::string_view f, std::string* scratch) {
  if (f == "\\N") return std::nullopt;
  if (f.find('\\') == std::string_view::npos) return f;
  scratch->clear();
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '\\' || i + 1 == f.size()) {
      scratch->push_back(f[i]);
      continue;
    }
    switch (f[++i]) {
      case 'n': scratch->push_back('\n'); break;
      case 't': scratch->push_back('\t'); break;
      case 'r': scratch->push_back('\r'); break;
      case 'b': scratch->push_back('\b'); break;
      case 'f': scratch->push_back('\f'); break;
      case '0': scratch->push_back('\0'); break;
      default: scratch->push_back(f[i]);
    }
  }
  return std::string_view(*scratch);
}

class ClickHouseStore : public StoreReader {
 public:
  ClickHouseStore(const Options& o, std::string table)
      : url_(o.Str("url")), database_(o.Str("database")), user_(o.Str("user")),
        password_(o.Str("password")), table_(std::move(table)) {}
  Kind kind() const override { return Kind::kTable; }
  std::string where() const override {
    return "clickhouse " + sinks::SafeUrl(url_) + " table " + database_ + "." + table_;
  }
  const std::vector<std::string>& columns() const override { return columns_; }

  Status Open() override {
    if (!conn_.Init(600000, 10000)) return Status::IoError(where() + ": curl cannot start");
    CURL* c = conn_.get();
    curl_easy_setopt(c, CURLOPT_USERNAME, user_.empty() ? "default" : user_.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, password_.c_str());
    std::string body;
    const std::string target =
        sinks::clickhouse::QuoteIdent(database_) + "." + sinks::clickhouse::QuoteIdent(table_);
    Status s = Query("DESCRIBE TABLE " + target + " FORMAT TabSeparated", "describe the table", &body);
    if (!s.ok()) {
      // Code 60 (UNKNOWN_TABLE) or 81 (UNKNOWN_DATABASE): nothing written yet.
      if (body.find("Code: 60.") != std::string::npos || body.find("Code: 81.") != std::string::npos) {
        return Status::Ok();
      }
      return s;
    }
    bool has_id = false;
    size_t at = 0;
    std::string scratch;
    while (at < body.size()) {
      size_t nl = body.find('\n', at);
      if (nl == std::string::npos) nl = body.size();
      std::string_view line = std::string_view(body).substr(at, nl - at);
      at = nl + 1;
      const size_t tab = line.find('\t');
      // Columns the server computes are not forkd's.
      if (line.find("\tMATERIALIZED") != std::string_view::npos ||
          line.find("\tALIAS") != std::string_view::npos) {
        continue;
      }
      const auto name = Unescape(line.substr(0, tab), &scratch);
      if (!name || name->empty()) continue;
      if (*name == "_fork_id") {
        has_id = true;
      } else if (*name != "_version") {
        columns_.emplace_back(*name);
      }
    }
    exists_ = has_id;
    if (!has_id && !columns_.empty()) {
      return Status::InvalidArgument(where() + ": the table has no _fork_id column");
    }
    return Status::Ok();
  }

  Status ForEach(const RowFn& fn) override {
    if (!exists_) return Status::Ok();
    std::string sql = "SELECT `_fork_id`";
    for (const auto& col : columns_) sql += ", " + sinks::clickhouse::QuoteIdent(col);
    const std::string from = " FROM " + sinks::clickhouse::QuoteIdent(database_) + "." +
                             sinks::clickhouse::QuoteIdent(table_);
    std::string body;
    Status s = Query(sql + from + " FINAL FORMAT TabSeparated", "read the rows", &body);
    if (!s.ok() && body.find("ILLEGAL_FINAL") != std::string::npos) {
      s = Query(sql + from + " FORMAT TabSeparated", "read the rows", &body);  // not a ReplacingMergeTree
    }
    if (!s.ok()) return s;
    std::vector<std::optional<std::string_view>> cells(columns_.size());
    std::vector<std::string> scratch(columns_.size() + 1);
    size_t at = 0;
    while (at < body.size()) {
      size_t nl = body.find('\n', at);
      if (nl == std::string::npos) nl = body.size();
      const std::string_view line = std::string_view(body).substr(at, nl - at);
      at = nl + 1;
      size_t f = 0;
      std::optional<std::string_view> id;
      for (size_t i = 0; i <= columns_.size(); ++i) {
        size_t tab = line.find('\t', f);
        if (tab == std::string_view::npos) tab = line.size();
        const auto v = Unescape(line.substr(f, tab - f), &scratch[i]);
        if (i == 0) {
          id = v;
        } else {
          cells[i - 1] = v;
        }
        f = tab + 1;
      }
      fn(id.value_or(std::string_view()), cells);
    }
    return Status::Ok();
  }

  // A row written again replaces the one there: ReplacingMergeTree keeps the
  // last inserted of equal versions.
  Status Delete(const std::vector<std::string>&) override { return Status::Ok(); }

 private:
  static std::string Literal(std::string_view s) {
    std::string out;
    for (char ch : s) {
      if (ch == '\\' || ch == '\'') out.push_back('\\');
      out.push_back(ch);
    }
    return out;
  }
  Status Query(const std::string& sql, const char* what, std::string* body) {
    CURL* c = conn_.get();
    std::string url = url_;
    url += (url.find('?') == std::string::npos ? "?" : "&");
    url += "database=";
    char* esc = curl_easy_escape(c, database_.c_str(), static_cast<int>(database_.size()));
    url += esc ? esc : "";
    curl_free(esc);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, sql.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(sql.size()));
    conn_.keep_body(size_t{4} << 30);
    if (!conn_.Perform()) return Status::IoError(where() + ": " + what + ": " + conn_.error());
    *body = conn_.body();
    if (conn_.status() < 200 || conn_.status() >= 300) {
      return Status::IoError(where() + ": " + what + ": HTTP " + std::to_string(conn_.status()) +
                             ": " + sinks::Excerpt(*body));
    }
    return Status::Ok();
  }
  std::string url_, database_, user_, password_, table_;
  sinks::CurlConnection conn_;
  bool exists_ = false;
  std::vector<std::string> columns_;
};

}  // namespace

std::unique_ptr<StoreReader> NewClickHouseStore(const Config& config, const DestinationConfig& d,
                                                std::string* why) {
  sinks::SinkContext ctx{&config, &d};
  sinks::TableSpec spec;
  if (!sinks::DestinationTableSpec(ctx, &spec, why)) return nullptr;
  sinks::MergeSpec merge;
  sinks::MergeSpecFor(ctx, &spec, &merge);
  return std::make_unique<ClickHouseStore>(d.sink, spec.table);
}

}  // namespace forkd::verify
