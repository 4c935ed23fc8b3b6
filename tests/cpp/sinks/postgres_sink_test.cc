// The postgres sink's pure parts: how a SQLSTATE maps to retry or fatal,
// identifier quoting, COPY text escaping, urls for messages and password
// redaction, and the checks `forkd check` runs. The sink against a real
// server is tested end to end (tests/e2e/postgres.test.mjs).
#include "sinks/postgres/postgres_sink.h"

#include <catch2/catch.hpp>

#include "config/config.h"

namespace forkd::sinks {
namespace {

TEST_CASE("postgres: SQLSTATEs worth retrying, and those refusing the records", "[postgres]") {
  // Connection, serialization, deadlock, shutdown, cannot connect now,
  // resources, timeouts: the same batch may succeed later.
  for (const char* s : {"08000", "08003", "08006", "08001", "40001", "40P01", "57P01", "57P02",
                        "57P03", "53000", "53100", "53200", "53300", "57014", "55P03", "58030",
                        "25006", "XX000", "42501", "42P10", "3F000", ""}) {
    INFO(s);
    CHECK(pg::SqlStateRetries(s));
  }
  // Constraints, data and type errors, undefined columns and tables: the
  // records themselves, so the pipeline splits the batch down to them.
  for (const char* s : {"23505", "23514", "23502", "23503", "22P02", "22001", "22003", "22021",
                        "22P05", "42703", "42P01", "42804", "21000", "40002", "54000", "P0001",
                        "0A000", "44000"}) {
    INFO(s);
    CHECK_FALSE(pg::SqlStateRetries(s));
  }
}

TEST_CASE("postgres: identifiers are quoted, quotes doubled", "[postgres]") {
  CHECK(pg::QuoteIdent("orders") == "\"orders\"");
  CHECK(pg::QuoteIdent("orderId") == "\"orderId\"");
  CHECK(pg::QuoteIdent("x\"; DROP TABLE t; --") == "\"x\"\"; DROP TABLE t; --\"");
  CHECK(pg::QuoteIdent("\"\"") == "\"\"\"\"\"\"");
  CHECK(pg::ValidIdent("a"));
  CHECK(pg::ValidIdent(std::string(63, 'x')));
  CHECK_FALSE(pg::ValidIdent(std::string(64, 'x')));
  CHECK_FALSE(pg::ValidIdent(""));
  CHECK_FALSE(pg::ValidIdent(std::string("a\0b", 3)));
}

TEST_CASE("postgres: COPY text escapes backslash, newline, carriage return and tab", "[postgres]") {
  std::string out;
  pg::AppendCopyText("plain 'quoted' \"double\" ✓", &out);
  CHECK(out == "plain 'quoted' \"double\" ✓");
  out.clear();
  pg::AppendCopyText("a\\b\nc\rd\te", &out);
  CHECK(out == "a\\\\b\\nc\\rd\\te");
  out.clear();
  // Neither the null marker nor the end-of-data marker survives as such.
  pg::AppendCopyText("\\N", &out);
  out.push_back('|');
  pg::AppendCopyText("\\.", &out);
  CHECK(out == "\\\\N|\\\\.");
}

TEST_CASE("postgres: messages show the url without user, password or query", "[postgres]") {
  CHECK(pg::SafeUrl("postgres://u:pw@db.example:5432/app?sslmode=require&password=x") ==
        "postgres://db.example:5432/app");
  CHECK(pg::SafeUrl("postgresql://db/app") == "postgresql://db/app");
  CHECK(pg::SafeUrl("postgres://u:p@ss@h/d") == "postgres://h/d");
  CHECK(pg::SafeUrl("host=x password=y") == "postgres (url not shown)");

  const std::string url = "postgres://app:s3cr%21t@h:5432/d?password=other&sslmode=verify-full";
  const std::string m = pg::Redact(
      "URI \"" + url + "\" is bad; also s3cr!t and s3cr%21t and other", url);
  CHECK(m.find("s3cr") == std::string::npos);
  CHECK(m.find("other") == std::string::npos);
  CHECK(m.find("postgres://h:5432/d") != std::string::npos);
  // A url without a password leaves messages alone.
  CHECK(pg::Redact("connection refused", "postgres://h/d") == "connection refused");
}

bool Check(const std::string& yaml, std::string* error) {
  Options o;
  std::vector<ConfigError> errors;
  REQUIRE(ParseOptions(YAML::Load(yaml), PostgresSinkOptions(), {}, "destinations.pg", "fork.yaml",
                       &o, &errors));
  return CheckPostgresOptions(o, error);
}

TEST_CASE("postgres: forkd check refuses bad urls, names and table options", "[postgres]") {
  std::string e;
  CHECK(Check("{url: 'postgres://u:pw@127.0.0.1:5432/app', table: orders}", &e));
  CHECK(Check("{url: 'postgresql://h/app', table: t, mode: upsert, key: id, "
              "columns: {id: text, n: int}}", &e));

  CHECK_FALSE(Check("{url: 'mysql://h/app', table: t}", &e));
  CHECK(e == "url: must start with postgres:// or postgresql://");
  CHECK_FALSE(Check("{url: 'postgres://u:Sekrit@[::1/app', table: t}", &e));
  CHECK(e.starts_with("url: "));
  CHECK(e.find("Sekrit") == std::string::npos);
  CHECK_FALSE(Check("{url: 'postgres://h/app', table: " + std::string(64, 't') + "}", &e));
  CHECK(e.starts_with("table: "));
  CHECK_FALSE(Check("{url: 'postgres://h/app', table: t, schema: " + std::string(64, 's') + "}",
                    &e));
  CHECK(e.starts_with("schema: "));
  CHECK_FALSE(Check("{url: 'postgres://h/app', table: t, columns: {" + std::string(64, 'c') +
                        ": text}}",
                    &e));
  CHECK(e.starts_with("columns."));
  CHECK_FALSE(Check("{url: 'postgres://h/app', table: t, mode: upsert, key: nope, "
                    "columns: {id: text}}",
                    &e));
  CHECK(e.starts_with("key: "));
}

}  // namespace
}  // namespace forkd::sinks
