// How `forkd verify` matches a store's spelling of a value with forkd's own.
#include "verify/compare.h"

#include "test_util.h"

namespace forkd::verify {

TEST_CASE("SameCell takes each store's spelling of a number, boolean, instant and JSON", "[verify]") {
  using S = std::optional<std::string>;
  using V = std::optional<std::string_view>;
  CHECK(SameCell(S("abc"), V("abc")));
  CHECK_FALSE(SameCell(S("abc"), V("abd")));
  CHECK(SameCell(std::nullopt, std::nullopt));
  CHECK_FALSE(SameCell(S(""), std::nullopt));
  CHECK_FALSE(SameCell(std::nullopt, V("")));
  // Numbers: text that reads as the same double.
  CHECK(SameCell(S("73.5"), V("73.50")));
  CHECK(SameCell(S("1e3"), V("1000")));
  CHECK(SameCell(S("0.1"), V("0.10000000000000001")));
  CHECK_FALSE(SameCell(S("73.5"), V("999")));
  CHECK_FALSE(SameCell(S("12"), V("12abc")));
  // Booleans: SQLite 1/0, PostgreSQL t/f.
  CHECK(SameCell(S("true"), V("1")));
  CHECK(SameCell(S("true"), V("t")));
  CHECK(SameCell(S("false"), V("0")));
  CHECK(SameCell(S("false"), V("f")));
  CHECK_FALSE(SameCell(S("true"), V("0")));
  CHECK_FALSE(SameCell(S("false"), V("yes")));
  // Instants in UTC, with a T or a space, with or without a zone.
  CHECK(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:03.456+00")));
  CHECK(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:03.456")));
  CHECK(SameCell(S("2026-12-05T01:02:03.000Z"), V("2026-12-05 01:02:03")));
  CHECK_FALSE(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:03.457")));
  CHECK_FALSE(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:03.456+01")));
  // JSON: keys in any order, any white space (PostgreSQL's jsonb).
  CHECK(SameCell(S(R"({"a":1,"b":[1,2]})"), V(R"({"b": [1, 2], "a": 1})")));
  CHECK(SameCell(S(R"([1.5,"x"])"), V(R"([1.50, "x"])")));
  CHECK_FALSE(SameCell(S(R"({"a":1})"), V(R"({"a": 2})")));
  CHECK_FALSE(SameCell(S(R"({"a":1})"), V(R"({"a": 1, "b": 1})")));
  CHECK_FALSE(SameCell(S(R"({"a":1})"), V("not json")));
}

TEST_CASE("CanonicalJson sorts keys, drops white space and refuses what is not JSON", "[verify]") {
  CHECK(CanonicalJson(R"( { "b" : {"d":1, "c":2}, "a" : [ true, null, "s\"q" ] } )") ==
        std::optional<std::string>(R"({"a":[true,null,"s\"q"],"b":{"c":2,"d":1}})"));
  CHECK(CanonicalJson("{}") == std::optional<std::string>("{}"));
  CHECK(CanonicalJson("[]") == std::optional<std::string>("[]"));
  CHECK_FALSE(CanonicalJson("{").has_value());
  CHECK_FALSE(CanonicalJson(R"({"a":1,})").has_value());
  CHECK_FALSE(CanonicalJson(R"({"a" 1})").has_value());
  CHECK_FALSE(CanonicalJson("[1] x").has_value());
  CHECK_FALSE(CanonicalJson(R"("unterminated)").has_value());
  // Deep nesting is refused, not a stack overflow.
  CHECK_FALSE(CanonicalJson(std::string(100000, '[')).has_value());
}

TEST_CASE("ParseInstantMs reads UTC timestamps and refuses others", "[verify]") {
  CHECK(ParseInstantMs("1970-01-01T00:00:00Z") == std::optional<int64_t>(0));
  CHECK(ParseInstantMs("2026-12-05T00:00:00.000Z") == std::optional<int64_t>(1796428800000));
  CHECK(ParseInstantMs("2026-12-05 00:00:01.5+00:00") == std::optional<int64_t>(1796428801500));
  CHECK_FALSE(ParseInstantMs("2026-12-05").has_value());
  CHECK_FALSE(ParseInstantMs("2026-13-05T00:00:00Z").has_value());
  CHECK_FALSE(ParseInstantMs("2026-12-05T00:00:00+02:00").has_value());
  CHECK_FALSE(ParseInstantMs("hello world, it is late").has_value());
}

}  // namespace forkd::verify

namespace forkd::verify {

TEST_CASE("SameCell matches a store that keeps whole seconds only when it stored no fraction", "[verify]") {
  using S = std::optional<std::string>;
  using V = std::optional<std::string_view>;
  CHECK(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:03")));
  CHECK_FALSE(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:04")));
  CHECK_FALSE(SameCell(S("2026-12-05T01:02:03.456Z"), V("2026-12-05 01:02:03.000")));
}

}  // namespace forkd::verify
