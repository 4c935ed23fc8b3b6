// The clickhouse sink against a fake ClickHouse HTTP interface on 127.0.0.1
// (cpp-httplib): the statements it sends (probe, describe, create, insert),
// the JSONEachRow rows, identifiers quoted, and how each answer maps to ok /
// retry / fatal. tests/e2e/clickhouse.test.mjs runs it against a real server.
#include "sinks/clickhouse/clickhouse_sink.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <mutex>
#include <thread>

#include "sinks/registry.h"
#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

using test::Pack;
using test::U8;

struct Seen {
  std::string query;  // the statement: the `query` parameter, or the body
  std::string body;   // the data, when the statement came as a parameter
  std::string url;    // every parameter, decoded
  std::string auth;
  int remote_port = -1;
};

// A fake server: answers the probe with `features`, DESCRIBE with the table
// it holds (UNKNOWN_TABLE until a CREATE), and INSERT with `insert`.
class FakeClickHouse {
 public:
  FakeClickHouse() {
    svr_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    svr_.set_keep_alive_max_count(1000);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~FakeClickHouse() {
    svr_.stop();
    thread_.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void SetInsertAnswer(int status, std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    insert_status_ = status;
    insert_body_ = std::move(body);
  }
  void SetFeatures(std::string tsv) {
    std::lock_guard<std::mutex> lock(mu_);
    features_ = std::move(tsv);
  }
  // The table as DESCRIBE shows it: "name\ttype\n..."; "" for none.
  void SetTable(std::string tsv) {
    std::lock_guard<std::mutex> lock(mu_);
    table_ = std::move(tsv);
  }
  std::vector<Seen> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  std::vector<Seen> Matching(const std::string& prefix) const {
    std::vector<Seen> out;
    for (const auto& s : Requests()) {
      if (s.query.rfind(prefix, 0) == 0) out.push_back(s);
    }
    return out;
  }

 private:
  // "CREATE TABLE IF NOT EXISTS `d`.`t` (`a` T, `b` Nullable(T2), ...) ENGINE" -> describe TSV.
  static std::string TableOf(const std::string& create) {
    std::string tsv;
    size_t i = create.find(" (");
    REQUIRE(i != std::string::npos);
    i += 2;
    while (i < create.size() && create[i] == '`') {
      std::string name;
      for (++i; i < create.size() && create[i] != '`'; ++i) {
        if (create[i] == '\\') ++i;
        name.push_back(create[i]);
      }
      i += 2;  // "` "
      std::string type;
      int depth = 0;
      for (; i < create.size(); ++i) {
        const char c = create[i];
        if (depth == 0 && (c == ',' || c == ')')) break;
        if (c == '(') ++depth;
        if (c == ')') --depth;
        type.push_back(c);
      }
      // DESCRIBE escapes names as TabSeparated does.
      std::string shown;
      for (char c : name) {
        if (c == '\\') shown += "\\\\";
        else if (c == '\t') shown += "\\t";
        else if (c == '\n') shown += "\\n";
        else shown.push_back(c);
      }
      tsv += shown + "\t" + type + "\t\t\n";
      if (create[i] == ')') break;
      i += 2;  // ", "
    }
    return tsv;
  }

  void Handle(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    Seen s;
    if (req.has_param("query")) {
      s.query = req.get_param_value("query");
      s.body = req.body;
    } else {
      s.query = req.body;
    }
    for (const auto& [k, v] : req.params) s.url += k + "=" + v + "&";
    auto it = req.headers.find("Authorization");
    if (it != req.headers.end()) s.auth = it->second;
    s.remote_port = req.remote_port;
    seen_.push_back(s);
    const std::string& q = s.query;
    if (q.rfind("SELECT name FROM system.settings", 0) == 0) {
      res.set_content(features_, "text/tab-separated-values");
    } else if (q.rfind("DESCRIBE TABLE", 0) == 0) {
      if (table_.empty()) {
        res.status = 404;
        res.set_content(
            "Code: 60, e.displayText() = DB::Exception: Table default.t doesn't exist., e.what() "
            "= DB::Exception\n",
            "text/plain");
      } else {
        res.set_content(table_, "text/tab-separated-values");
      }
    } else if (q.rfind("CREATE TABLE", 0) == 0) {
      table_ = TableOf(q);
    } else if (q.rfind("INSERT INTO", 0) == 0) {
      res.status = insert_status_;
      res.set_content(insert_body_, "text/plain");
    } else if (q.rfind("ALTER TABLE", 0) == 0 || q.rfind("CREATE DATABASE", 0) == 0) {
      res.status = 200;
    } else {
      res.status = 400;
      res.set_content("Code: 62, e.displayText() = DB::Exception: Syntax error", "text/plain");
    }
  }

  httplib::Server svr_;
  int port_ = -1;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
  std::string features_ = "date_time_input_format\n";
  std::string table_;
  int insert_status_ = 200;
  std::string insert_body_;
};

std::unique_ptr<Sink> MakeSink(const std::string& yaml) {
  DestinationConfig d;
  d.name = "ch";
  std::vector<ConfigError> errors;
  const bool ok = ParseOptions(YAML::Load(yaml), ClickHouseSinkOptions(), {}, "destinations.ch",
                               "fork.yaml", &d.sink, &errors);
  std::string all;
  for (const auto& e : errors) all += e.ToString() + "\n";
  INFO(all);
  REQUIRE(ok);
  Config c;
  SinkContext ctx{&c, &d};
  return CreateClickHouseSink(ctx);
}

std::unique_ptr<Sink> OpenSink(const std::string& yaml) {
  auto sink = MakeSink(yaml);
  const Status s = sink->Open("");
  INFO(s.ToString());
  REQUIRE(s.ok());
  return sink;
}

void Put(Sink& sink, const std::string& id, const std::string& payload, uint64_t lsn = 1) {
  log::EntryHeader h;
  h.lsn = lsn;
  Record r;
  r.header = &h;
  r.event_id = id;
  r.payload = U8(payload);
  r.payload_size = payload.size();
  sink.Write(r);
}

// {"user": u, "n": n, "amount": 1.25, "ok": true, "tags": ["a"], "at": <timestamp>}
std::string Purchase(const std::string& user, int64_t n) {
  return Pack([&](wire::Writer& w) {
    w.MapHeader(6);
    w.Str("user");
    w.Str(user);
    w.Str("n");
    w.Int(n);
    w.Str("amount");
    w.Double(1.25);
    w.Str("ok");
    w.Bool(true);
    w.Str("tags");
    w.ArrayHeader(1);
    w.Str("a");
    w.Str("at");
    w.Timestamp(1795000000, 123000000);
  });
}

// A port on 127.0.0.1 bound but not listening: connecting is refused.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("clickhouse: registered with its options and the shared table options", "[clickhouse]") {
  const SinkType* t = FindSinkType("clickhouse");
  REQUIRE(t != nullptr);
  std::vector<std::string_view> names;
  for (const auto& o : t->options()) names.push_back(o.name);
  CHECK(names == std::vector<std::string_view>{"url", "database", "user", "password", "timeout",
                                               "connect_timeout", "table", "columns", "mode",
                                               "key", "extra"});
  DestinationConfig d;
  std::vector<ConfigError> errors;
  REQUIRE(ParseOptions(YAML::Load("{url: 'http://x:8123', table: t}"), ClickHouseSinkOptions(),
                       {}, "d", "f", &d.sink, &errors));
  CHECK(d.sink.Str("database") == "default");
  CHECK(d.sink.Millis("timeout") == 30000);
  CHECK(d.sink.Str("mode") == "append");
}

TEST_CASE("clickhouse: identifiers, error codes, data errors, column types", "[clickhouse]") {
  using namespace clickhouse;
  CHECK(QuoteIdent("events") == "`events`");
  CHECK(QuoteIdent("a`b\\c; DROP TABLE x") == "`a\\`b\\\\c; DROP TABLE x`");

  CHECK(ErrorCode("", "Code: 27, e.displayText() = DB::Exception: Cannot parse input") == 27);
  CHECK(ErrorCode("", "Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)") == 252);
  CHECK(ErrorCode(" 241", "Code: 27, whatever") == 241);  // the header wins
  CHECK(ErrorCode("", "Bad Gateway") == 0);
  CHECK(ErrorCode("", "<html>... Code: 27 ...</html>") == 0);  // only at the start

  for (int code : {6, 26, 27, 38, 41, 53, 70, 72, 321, 349}) {
    INFO(code);
    CHECK(IsDataError(code, "Code: x"));
  }
  for (int code : {159, 164, 192, 193, 202, 209, 210, 241, 242, 252, 319, 516}) {
    INFO(code);
    CHECK_FALSE(IsDataError(code, "Code: x"));
  }
  CHECK(IsDataError(117, "Code: 117. Cannot read JSON"));
  CHECK_FALSE(IsDataError(117, "Code: 117, Unknown field found while parsing JSONEachRow format: x"));
  CHECK(IsDataError(675, "Code: 675. DB::Exception: Cannot parse IPv4 x. (CANNOT_PARSE_IPV4)"));

  CHECK(ParseChType("String").kind == ChType::kString);
  CHECK_FALSE(ParseChType("String").nullable);
  CHECK(ParseChType("Nullable(String)").nullable);
  CHECK(ParseChType("LowCardinality(Nullable(String))").kind == ChType::kString);
  CHECK(ParseChType("Nullable(Int64)").kind == ChType::kInt);
  const ChType u8 = ParseChType("UInt8");
  CHECK((u8.kind == ChType::kInt && !u8.is_signed && u8.bits == 8));
  CHECK(ParseChType("Int128").bits == 0);
  CHECK(ParseChType("Float64").kind == ChType::kFloat);
  CHECK(ParseChType("Bool").kind == ChType::kBool);
  CHECK(ParseChType("Nullable(DateTime64(3, 'UTC'))").kind == ChType::kDateTime64);
  CHECK(ParseChType("DateTime('UTC')").kind == ChType::kDateTime);
  CHECK(ParseChType("Array(String)").kind == ChType::kOther);
  CHECK(ParseChType("IntervalDay").kind == ChType::kOther);
}

TEST_CASE("clickhouse: creates the table from the first record, inserts JSONEachRow", "[clickhouse]") {
  FakeClickHouse ch;
  auto sink = OpenSink("{url: '" + ch.Url() + "', database: 'db`1', table: events}");
  CHECK(ch.Requests().empty());  // Open does not reach for the server
  Put(*sink, "id-1", Purchase("u1", 7));
  Put(*sink, "id-2", Pack([](wire::Writer& w) {
        w.MapHeader(3);
        w.Str("user");
        w.Str("u\"2\n");
        w.Str("later");  // no column: extra
        w.MapHeader(1);
        w.Str("k");
        w.Int(1);
        w.Str("_fork_id");  // forkd's id wins
        w.Str("spoof");
      }));
  const Status s = sink->Flush();
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(sink->buffered_bytes() == 0);

  const auto creates = ch.Matching("CREATE TABLE");
  REQUIRE(creates.size() == 1);
  CHECK(creates[0].query ==
        "CREATE TABLE IF NOT EXISTS `db\\`1`.`events` (`_fork_id` String, `user` Nullable(String), "
        "`n` Nullable(Int64), `amount` Nullable(Float64), `ok` Nullable(UInt8), "
        "`tags` Nullable(String), `at` Nullable(DateTime('UTC')), `extra` String) "
        "ENGINE = ReplacingMergeTree ORDER BY `_fork_id`");
  const auto inserts = ch.Matching("INSERT INTO");
  REQUIRE(inserts.size() == 1);
  CHECK(inserts[0].query ==
        "INSERT INTO `db\\`1`.`events` (`_fork_id`, `user`, `n`, `amount`, `ok`, `tags`, `at`, "
        "`extra`) FORMAT JSONEachRow");
  CHECK(inserts[0].url.find("date_time_input_format=best_effort") != std::string::npos);
  CHECK(inserts[0].body ==
        "{\"_fork_id\":\"id-1\",\"user\":\"u1\",\"n\":7,\"amount\":1.25,\"ok\":1,"
        "\"tags\":\"[\\\"a\\\"]\",\"at\":\"2026-11-18T11:06:40.123Z\"}\n"
        "{\"_fork_id\":\"id-2\",\"user\":\"u\\\"2\\n\",\"extra\":\"{\\\"later\\\":{\\\"k\\\":1}}\"}\n");

  // The next batch goes straight to the insert.
  const size_t before = ch.Requests().size();
  Put(*sink, "id-3", Purchase("u3", 3));
  REQUIRE(sink->Flush().ok());
  CHECK(ch.Requests().size() == before + 1);
  // Probe, describe, create, describe, two inserts: one kept-alive connection.
  for (const auto& r : ch.Requests()) {
    INFO(r.query.substr(0, 30));
    CHECK(r.remote_port == ch.Requests()[0].remote_port);
  }
}

TEST_CASE("clickhouse: newer servers get DateTime64, Bool and deduplication", "[clickhouse]") {
  FakeClickHouse ch;
  ch.SetFeatures(
      "date_time_input_format\ninsert_deduplication_token\nnon_replicated_deduplication_window\n"
      "DateTime64\nBool\n");
  auto sink = OpenSink("{url: '" + ch.Url() + "', table: t}");
  Put(*sink, "id-1", Purchase("u1", 1));
  REQUIRE(sink->Flush().ok());
  const auto creates = ch.Matching("CREATE TABLE");
  REQUIRE(creates.size() == 1);
  CHECK(creates[0].query.find("`ok` Nullable(Bool)") != std::string::npos);
  CHECK(creates[0].query.find("`at` Nullable(DateTime64(3, 'UTC'))") != std::string::npos);
  CHECK(creates[0].query.find("SETTINGS non_replicated_deduplication_window = 1000") !=
        std::string::npos);
  const auto inserts = ch.Matching("INSERT INTO");
  REQUIRE(inserts.size() == 1);
  CHECK(inserts[0].body.find("\"ok\":true") != std::string::npos);
  // The token is the body's SHA-256: a resent batch carries the same one.
  const size_t at = inserts[0].url.find("insert_deduplication_token=");
  REQUIRE(at != std::string::npos);
  CHECK(inserts[0].url.substr(at + 27, 64).size() == 64);
}

TEST_CASE("clickhouse: upsert versions rows by log position, the key is not Nullable", "[clickhouse]") {
  FakeClickHouse ch;
  auto sink = OpenSink("{url: '" + ch.Url() + "', table: t, mode: upsert, key: user}");
  Put(*sink, "id-1", Purchase("u1", 1), 41);
  Put(*sink, "id-2", Purchase("u1", 2), 42);
  REQUIRE(sink->Flush().ok());
  const auto creates = ch.Matching("CREATE TABLE");
  REQUIRE(creates.size() == 1);
  CHECK(creates[0].query.find("`user` String,") != std::string::npos);
  CHECK(creates[0].query.find(", `_version` UInt64) ENGINE = ReplacingMergeTree(`_version`) "
                              "ORDER BY `user`") != std::string::npos);
  const auto inserts = ch.Matching("INSERT INTO");
  REQUIRE(inserts.size() == 1);
  CHECK(inserts[0].body.find("\"_version\":41}\n") != std::string::npos);
  CHECK(inserts[0].body.find("\"_version\":42}\n") != std::string::npos);

  // A record without the key is refused before anything is sent.
  Put(*sink, "id-3", Pack([](wire::Writer& w) {
        w.MapHeader(1);
        w.Str("n");
        w.Int(3);
      }));
  const Status s = sink->Flush();
  CHECK(s.IsFatal());
  CHECK(s.message().find("\"id-3\"") != std::string::npos);
  CHECK(s.message().find("no value for the key \"user\"") != std::string::npos);
  CHECK(ch.Matching("INSERT INTO").size() == 1);
}

TEST_CASE("clickhouse: an existing table is used as it is", "[clickhouse]") {
  FakeClickHouse ch;
  ch.SetTable(
      "_fork_id\tString\t\t\nn\tInt8\t\t\nwhen\tDateTime('Europe/Berlin')\t\t\n"
      "tags\tArray(String)\t\t\ncomputed\tString\tMATERIALIZED\tupper(_fork_id)\n");
  auto sink = OpenSink("{url: '" + ch.Url() + "', table: t, extra: false}");
  Put(*sink, "id-1", Pack([](wire::Writer& w) {
        w.MapHeader(3);
        w.Str("n");
        w.Int(-128);
        w.Str("when");
        w.Int(1795000000123);  // epoch milliseconds
        w.Str("tags");
        w.ArrayHeader(2);
        w.Str("a");
        w.Str("b");
      }));
  REQUIRE(sink->Flush().ok());
  CHECK(ch.Matching("CREATE TABLE").empty());
  const auto inserts = ch.Matching("INSERT INTO");
  REQUIRE(inserts.size() == 1);
  CHECK(inserts[0].query == "INSERT INTO `default`.`t` (`_fork_id`, `n`, `when`, `tags`) FORMAT JSONEachRow");
  CHECK(inserts[0].body ==
        "{\"_fork_id\":\"id-1\",\"n\":-128,\"when\":\"2026-11-18T11:06:40.123Z\",\"tags\":[\"a\",\"b\"]}\n");

  // Out of the column's range: refused here, not wrapped around by the server.
  Put(*sink, "id-2", Pack([](wire::Writer& w) {
        w.MapHeader(1);
        w.Str("n");
        w.Int(128);
      }));
  Status s = sink->Flush();
  CHECK(s.IsFatal());
  CHECK(s.message().find("field \"n\": 128 is out of range for Int8") != std::string::npos);
  sink->Discard();

  // extra: false and a field without a column.
  Put(*sink, "id-3", Pack([](wire::Writer& w) {
        w.MapHeader(1);
        w.Str("nope");
        w.Int(1);
      }));
  s = sink->Flush();
  CHECK(s.IsFatal());
  CHECK(s.message().find("\"nope\"") != std::string::npos);
}

TEST_CASE("clickhouse: answers map to ok, retry and fatal", "[clickhouse]") {
  FakeClickHouse ch;
  auto sink = OpenSink("{url: '" + ch.Url() + "', table: t, user: fork, password: 'hunter2'}");
  Put(*sink, "id-1", Purchase("u1", 1));

  struct Case {
    int status;
    std::string body;
    bool fatal;
  };
  const Case cases[] = {
      {500, "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected , before: x, e.what() = DB::Exception", true},
      {400, "Code: 41. DB::Exception: Cannot read DateTime. (CANNOT_PARSE_DATETIME) (version 23.8)", true},
      {500, "Code: 53, e.displayText() = DB::Exception: Type mismatch", true},
      {500, "Code: 252, e.displayText() = DB::Exception: Too many parts (300)", false},
      {500, "Code: 241, e.displayText() = DB::Exception: Memory limit (total) exceeded", false},
      {500, "Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)", false},
      {401, "Code: 193, e.displayText() = DB::Exception: Wrong password for user fork", false},
      {503, "Service Unavailable", false},
      {502, "", false},
      {413, "<html>Request Entity Too Large</html>", true},
  };
  for (const Case& c : cases) {
    INFO(c.status << " " << c.body);
    ch.SetInsertAnswer(c.status, c.body);
    const Status s = sink->Flush();
    CHECK(s.IsFatal() == c.fatal);
    CHECK(s.IsRetry() == !c.fatal);
    CHECK(s.message().find("http " + std::to_string(c.status)) != std::string::npos);
    CHECK(s.message().find("hunter2") == std::string::npos);
    CHECK(s.message().find("e.what()") == std::string::npos);
    if (!c.body.empty() && c.body[0] == 'C') {
      CHECK(s.message().find(c.body.substr(0, 30)) != std::string::npos);
    }
    CHECK(sink->buffered_bytes() > 0);  // kept for the retry
  }
  // Basic auth, never the password in the url.
  const auto inserts = ch.Matching("INSERT INTO");
  REQUIRE(!inserts.empty());
  CHECK(inserts[0].auth == "Basic Zm9yazpodW50ZXIy");  // fork:hunter2
  CHECK(inserts[0].url.find("hunter2") == std::string::npos);

  // The table vanished: retry, and the next flush looks at it again.
  ch.SetTable("");
  ch.SetInsertAnswer(404, "Code: 60, e.displayText() = DB::Exception: Table default.t doesn't exist.");
  CHECK(sink->Flush().IsRetry());
  ch.SetInsertAnswer(200, "");
  const size_t creates = ch.Matching("CREATE TABLE").size();
  REQUIRE(sink->Flush().ok());
  CHECK(ch.Matching("CREATE TABLE").size() == creates + 1);
}

TEST_CASE("clickhouse: a server that is not there is a retry", "[clickhouse]") {
  RefusingPort port;
  auto sink = OpenSink("{url: 'http://user:pw@127.0.0.1:" + std::to_string(port.port()) +
                       "', table: t, connect_timeout: 500ms}");
  Put(*sink, "id-1", Purchase("u1", 1));
  const Status s = sink->Flush();
  CHECK(s.IsRetry());
  CHECK(s.message().find("127.0.0.1:" + std::to_string(port.port())) != std::string::npos);
  CHECK(s.message().find("pw") == std::string::npos);
}

TEST_CASE("clickhouse: bad options are reported by Open", "[clickhouse]") {
  auto sink = MakeSink("{url: 'ftp://x', table: t}");
  Status s = sink->Open("");
  CHECK(s.IsFatal());
  CHECK(s.message().find("http:// or https://") != std::string::npos);
  sink = MakeSink("{url: 'http://x', table: t, columns: {a: decimal}}");
  s = sink->Open("");
  CHECK(s.IsFatal());
  CHECK(s.message().find("destinations.ch.columns.a") != std::string::npos);
}

}  // namespace forkd::sinks
