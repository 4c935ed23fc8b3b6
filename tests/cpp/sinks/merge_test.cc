// merge: the view that merges the instances' partial rows of an aggregate,
// in each store's SQL, and the copy of a single-instance table's rows. The
// stores running these statements are in tests/e2e/replicas.test.mjs.
#include "sinks/common/merge.h"

#include <catch2/catch.hpp>

namespace forkd::sinks {
namespace {

MergeSpec Spec() {
  MergeSpec m;
  m.view = "daily";
  m.parts = "daily_parts";
  m.backup = "daily_before_merge";
  m.instance = "web-1";
  m.keys = {"window_start", "window", "currency"};
  m.measures = {{"orders", MergeSpec::Fn::kSum},
                {"lo", MergeSpec::Fn::kMin},
                {"hi", MergeSpec::Fn::kMax},
                {"mean", MergeSpec::Fn::kAvg}};
  return m;
}

std::vector<Column> Parts() {
  return {{"_fork_id", ColType::kText},      {"_fork_instance", ColType::kText},
          {"_fork_row", ColType::kText},     {"window_start", ColType::kText},
          {"window", ColType::kText},        {"currency", ColType::kText},
          {"orders", ColType::kInteger},     {"lo", ColType::kReal},
          {"hi", ColType::kReal},            {"mean", ColType::kReal},
          {"_fork_sum_mean", ColType::kReal}, {"_fork_n_mean", ColType::kInteger},
          {"source", ColType::kText},        {"extra", ColType::kJson}};
}

}  // namespace

TEST_CASE("merge: the view's SELECT in each dialect", "[sinks][merge]") {
  std::string error;
  CHECK(MergeSelect(SqlDialect::kSqlite, Spec(), Parts(), "\"daily_parts\"", &error) ==
        "SELECT \"_fork_row\" AS \"_fork_id\", \"window_start\", \"window\", \"currency\", "
        "SUM(\"orders\") AS \"orders\", MIN(\"lo\") AS \"lo\", MAX(\"hi\") AS \"hi\", "
        "CAST(SUM(\"_fork_sum_mean\") AS REAL) / NULLIF(SUM(\"_fork_n_mean\"), 0) AS \"mean\", "
        "MAX(\"source\") AS \"source\", MAX(\"extra\") AS \"extra\" FROM \"daily_parts\" "
        "GROUP BY \"_fork_row\", \"window_start\", \"window\", \"currency\"");
  const std::string pg =
      MergeSelect(SqlDialect::kPostgres, Spec(), Parts(), "\"public\".\"daily_parts\"", &error);
  CHECK(pg.find("CAST(SUM(\"orders\") AS bigint) AS \"orders\"") != std::string::npos);
  CHECK(pg.find("(array_agg(\"source\"))[1] AS \"source\"") != std::string::npos);
  CHECK(pg.find("CAST(SUM(\"_fork_sum_mean\") AS double precision) / NULLIF(CAST(SUM("
                "\"_fork_n_mean\") AS double precision), 0) AS \"mean\"") != std::string::npos);
  const std::string ch =
      MergeSelect(SqlDialect::kClickHouse, Spec(), Parts(), "`default`.`daily_parts`", &error);
  CHECK(ch.find("sum(`orders`) AS `orders`") != std::string::npos);
  CHECK(ch.find("any(`source`) AS `source`") != std::string::npos);
  CHECK(ch.find("FROM `default`.`daily_parts` FINAL GROUP BY `_fork_row`") != std::string::npos);
  CHECK(error.empty());
}

TEST_CASE("merge: a measure or key without its column is named", "[sinks][merge]") {
  std::vector<Column> cols = Parts();
  std::erase_if(cols, [](const Column& c) { return c.name == "hi"; });
  std::string error;
  CHECK(MergeSelect(SqlDialect::kSqlite, Spec(), cols, "p", &error).empty());
  CHECK(error.find("has no column 'hi'") != std::string::npos);
  cols = Parts();
  std::erase_if(cols, [](const Column& c) { return c.name == "_fork_n_mean"; });
  error.clear();
  CHECK(MergeSelect(SqlDialect::kPostgres, Spec(), cols, "p", &error).empty());
  CHECK(error.find("'_fork_n_mean'") != std::string::npos);
}

TEST_CASE("merge: a single-instance table's rows become this instance's", "[sinks][merge]") {
  const std::vector<Column> old = {{"_fork_id", ColType::kText}, {"window_start", ColType::kText},
                                   {"window", ColType::kText},   {"currency", ColType::kText},
                                   {"orders", ColType::kInteger}, {"mean", ColType::kReal},
                                   {"gone", ColType::kText}};
  CHECK(MigrateRows(SqlDialect::kSqlite, Spec(), old, Parts(), "\"daily\"", "\"daily_parts\"") ==
        "INSERT INTO \"daily_parts\" (\"_fork_id\", \"_fork_instance\", \"_fork_row\", "
        "\"window_start\", \"window\", \"currency\", \"orders\", \"mean\", \"_fork_sum_mean\", "
        "\"_fork_n_mean\") SELECT 'web-1/' || \"_fork_id\", 'web-1', \"_fork_id\", "
        "\"window_start\", \"window\", \"currency\", \"orders\", \"mean\", \"mean\", CASE WHEN "
        "\"mean\" IS NULL THEN 0 ELSE 1 END FROM \"daily\"");
  std::vector<Column> ch_parts = Parts();
  ch_parts.push_back({"_version", ColType::kInteger});
  const std::string ch = MigrateRows(SqlDialect::kClickHouse, Spec(), old, ch_parts, "`d`", "`p`");
  CHECK(ch.find("SELECT concat('web-1/', `_fork_id`), 'web-1'") != std::string::npos);
  CHECK(ch.find(", `_version`) SELECT") != std::string::npos);
  CHECK(ch.substr(ch.size() - 14) == "FROM `d` FINAL");
}

TEST_CASE("merge: identifiers quoted for each store", "[sinks][merge]") {
  CHECK(QuoteIdentFor(SqlDialect::kSqlite, "a\"b") == "\"a\"\"b\"");
  CHECK(QuoteIdentFor(SqlDialect::kPostgres, "x") == "\"x\"");
  CHECK(QuoteIdentFor(SqlDialect::kClickHouse, "a`b\\c") == "`a\\`b\\\\c`");
}

}  // namespace forkd::sinks
