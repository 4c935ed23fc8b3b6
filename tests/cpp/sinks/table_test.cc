// The table model the SQL sinks share: options, declared and inferred
// columns, records mapped onto columns with an extra json column, and cell
// text per type.
#include "sinks/common/table.h"

#include "test_util.h"

namespace forkd::sinks {
namespace {

using test::Pack;
using test::U8;

std::string Order() {
  return Pack([](wire::Writer& w) {
    w.MapHeader(7);
    w.Str("orderId");
    w.Str("o-1");
    w.Str("amount");
    w.Double(12.5);
    w.Str("qty");
    w.Int(3);
    w.Str("ok");
    w.Bool(true);
    w.Str("items");
    w.ArrayHeader(1);
    w.MapHeader(1);
    w.Str("sku");
    w.Str("mug");
    w.Str("_fork_id");
    w.Str("spoofed");
    w.Str("note");
    w.Nil();
  });
}

std::vector<std::pair<std::string, ColType>> Shape(const std::vector<Column>& cols) {
  std::vector<std::pair<std::string, ColType>> v;
  for (const auto& c : cols) v.emplace_back(c.name, c.type);
  return v;
}

TEST_CASE("table: columns inferred from the first record, by the documented rule", "[table]") {
  TableSpec spec;
  // Moved in, not copied from the literal: GCC 12 warns falsely
  // (-Wrestrict) on that copy here at -O3.
  spec.table = std::string("t");
  const std::string o = Order();
  const auto cols = InferColumns(spec, U8(o));
  CHECK(Shape(cols) == std::vector<std::pair<std::string, ColType>>{
                           {"_fork_id", ColType::kText},  {"orderId", ColType::kText},
                           {"amount", ColType::kReal},    {"qty", ColType::kInteger},
                           {"ok", ColType::kBoolean},     {"items", ColType::kJson},
                           {"note", ColType::kText},      {"extra", ColType::kJson}});
  spec.extra = false;
  CHECK(InferColumns(spec, U8(o)).back().name == "note");
}

TEST_CASE("table: records map onto columns; the rest goes to extra, or is refused", "[table]") {
  TableSpec spec;
  // Moved in, not copied from the literal: GCC 12 warns falsely
  // (-Wrestrict) on that copy here at -O3.
  spec.table = std::string("t");
  spec.columns = {{"orderId", ColType::kText}, {"qty", ColType::kInteger}};
  const auto cols = CompleteColumns(spec);
  REQUIRE(cols.size() == 4);
  RowMapper m;
  m.Reset(&cols, true);
  const std::string o = Order();
  std::string error;
  REQUIRE(m.Map(U8(o), o.size(), &error));
  std::string text;
  REQUIRE(CellText(m.value(1), ColType::kText, &text));
  CHECK(text == "o-1");
  REQUIRE(CellText(m.value(2), ColType::kInteger, &text));
  CHECK(text == "3");
  CHECK(m.extra_index() == 3);
  // _fork_id from the payload is not forkd's id: dropped, not kept in extra.
  CHECK(m.extra_json() ==
        R"({"amount":12.5,"ok":true,"items":[{"sku":"mug"}],"note":null})");
  // The same shape again uses the remembered positions; a new order still maps.
  const std::string swapped = Pack([](wire::Writer& w) {
    w.MapHeader(2);
    w.Str("qty");
    w.Int(9);
    w.Str("orderId");
    w.Str("o-2");
  });
  REQUIRE(m.Map(U8(swapped), swapped.size(), &error));
  REQUIRE(CellText(m.value(1), ColType::kText, &text));
  CHECK(text == "o-2");
  REQUIRE(CellText(m.value(2), ColType::kInteger, &text));
  CHECK(text == "9");
  CHECK(m.extra_json().empty());

  RowMapper strict;
  const auto strict_cols = [&] {
    TableSpec s = spec;
    s.extra = false;
    return CompleteColumns(s);
  }();
  strict.Reset(&strict_cols, false);
  CHECK_FALSE(strict.Map(U8(o), o.size(), &error));
  CHECK(error == "field \"amount\" has no column in the table (and extra: false)");
}

TEST_CASE("table: a missing field is null; cell text per type", "[table]") {
  TableSpec spec;
  // Moved in, not copied from the literal: GCC 12 warns falsely
  // (-Wrestrict) on that copy here at -O3.
  spec.table = std::string("t");
  spec.columns = {{"absent", ColType::kText}, {"items", ColType::kJson}, {"ok", ColType::kText}};
  const auto cols = CompleteColumns(spec);
  RowMapper m;
  m.Reset(&cols, true);
  const std::string o = Order();
  std::string error, text;
  REQUIRE(m.Map(U8(o), o.size(), &error));
  CHECK(m.value(1) == nullptr);
  CHECK_FALSE(CellText(m.value(1), ColType::kText, &text));
  REQUIRE(CellText(m.value(2), ColType::kJson, &text));
  CHECK(text == R"([{"sku":"mug"}])");
  REQUIRE(CellText(m.value(3), ColType::kText, &text));
  CHECK(text == "true");
  // A nil field maps to a value that is null as a cell.
  spec.columns = {{"note", ColType::kText}};
  const auto cols2 = CompleteColumns(spec);
  m.Reset(&cols2, true);
  REQUIRE(m.Map(U8(o), o.size(), &error));
  REQUIRE(m.value(1) != nullptr);
  CHECK_FALSE(CellText(m.value(1), ColType::kText, &text));
}

TEST_CASE("table: column types and their aliases", "[table]") {
  ColType t;
  for (const char* s : {"text", "string"}) CHECK((ParseColType(s, &t) && t == ColType::kText));
  for (const char* s : {"integer", "int", "bigint"}) CHECK((ParseColType(s, &t) && t == ColType::kInteger));
  for (const char* s : {"real", "float", "double"}) CHECK((ParseColType(s, &t) && t == ColType::kReal));
  for (const char* s : {"boolean", "bool"}) CHECK((ParseColType(s, &t) && t == ColType::kBoolean));
  CHECK((ParseColType("json", &t) && t == ColType::kJson));
  CHECK((ParseColType("timestamp", &t) && t == ColType::kTimestamp));
  CHECK_FALSE(ParseColType("varchar", &t));
  CHECK_FALSE(ParseColType("", &t));
}

}  // namespace
}  // namespace forkd::sinks
