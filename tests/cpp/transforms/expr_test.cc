// The expression language: parse errors say what was wrong and at which
// 0-based column; every operator and function behaves as documented at the
// top of transforms/expr.h; and a randomized differential test holds the
// compiled evaluator to a small reference evaluator written from that
// documentation alone.
#include "transforms/expr.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "sinks/common/json.h"
#include "test_util.h"
#include "transforms/yaml_value.h"

namespace forkd::transforms::expr {
namespace {

using test::U8;

// ---- helpers ----

// msgpack of a record written as YAML (or JSON).
std::string PackYaml(const std::string& yaml) {
  wire::Buffer b;
  wire::Writer w(&b);
  std::string error;
  INFO(yaml);
  REQUIRE(YamlToMsgpack(YAML::Load(yaml), &w, &error));
  return std::string(b.view());
}

std::string JsonOf(const uint8_t* p) {
  std::string out;
  sinks::AppendJson(p, &out);
  return out;
}

std::string FloatText(double d) {
  if (std::isnan(d)) return "nan";
  char buf[40];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, r.ptr);
}

// A value as "kind value", for readable assertions.
std::string Describe(const Val& v) {
  switch (v.t) {
    case Val::T::kMissing: return "missing";
    case Val::T::kNull: return "null";
    case Val::T::kBool: return v.b ? "true" : "false";
    case Val::T::kInt: return "int " + std::to_string(v.i);
    case Val::T::kFloat: return "float " + FloatText(v.f);
    case Val::T::kStr: return "str " + std::string(v.s);
    case Val::T::kRaw: return "raw " + JsonOf(v.raw.data);
  }
  return "?";
}

// Compiles `src` (which must compile) and evaluates it against the record.
std::string Ev(std::string_view src, const std::string& record_yaml = "{}") {
  Program p;
  std::string error;
  size_t col = 0;
  INFO("expression: " << src);
  const bool ok = Program::Compile(src, &p, &error, &col);
  INFO("error: " << error << " at " << col);
  REQUIRE(ok);
  const std::string bytes = PackYaml(record_yaml);
  Doc d;
  d.Load(U8(bytes), bytes.size());
  Arena scratch;
  return Describe(p.Eval(d, &scratch));
}

struct CompileError {
  std::string message;
  size_t column = 0;
};

CompileError Fails(std::string_view src) {
  Program p;
  CompileError e;
  e.column = 12345;
  INFO("expression: " << src);
  REQUIRE_FALSE(Program::Compile(src, &p, &e.message, &e.column));
  return e;
}

// Compile fails with a message containing `what` at `column`.
void ExpectError(std::string_view src, size_t column, const std::string& what) {
  const CompileError e = Fails(src);
  INFO("expression: " << src << "\nerror: " << e.message << " at " << e.column);
  CHECK(e.message.find(what) != std::string::npos);
  CHECK(e.column == column);
}

}  // namespace

// ---- parser errors ----

TEST_CASE("expression errors say what was wrong and where", "[transforms][expr]") {
  ExpectError("s == \"abc", 5, "unterminated string");
  ExpectError("s == 'abc", 5, "unterminated string");
  ExpectError("(a + 1", 6, "expected ')'");
  ExpectError("(a + 1 b", 7, "expected ')'");
  ExpectError("foo(a)", 0, "unknown function 'foo'");
  ExpectError("a && bar(1, 2)", 5, "unknown function 'bar'");
  ExpectError("a = 1", 2, "'=' is not a comparison; use ==");
  ExpectError("a < b < c", 6, "comparisons do not chain");
  ExpectError("a == b != c", 7, "comparisons do not chain");
  ExpectError("a == [1, 2]", 5, "a list [..] is only allowed after 'in'");
  ExpectError("[1, 2]", 0, "a list [..] is only allowed after 'in'");
  ExpectError("matches(s, \"(\")", 11, "bad regular expression");
  ExpectError("s.matches('[a')", 10, "bad regular expression");
  ExpectError("matches(s, p)", 11, "matches() takes a string literal pattern");
  ExpectError("exists(1)", 7, "exists() takes a field path");
  ExpectError("exists(a + b)", 7, "exists() takes a field path");
  ExpectError("len(a, b)", 0, "len takes 1 argument, not 2");
  ExpectError("x && startsWith(s)", 5, "startsWith takes 2 arguments, not 1");
  ExpectError("lower()", 0, "lower takes 1 argument, not 0");
  ExpectError("s.len(1)", 2, "len takes 1 argument, not 2");
  ExpectError("startsWith(s, 'a'", 17, "expected ',' or ')' in the arguments of startsWith");
  ExpectError("x in [1, 2", 10, "expected ',' or ']' in the list");
  ExpectError("a &&", 4, "expected a value, found the end");
  ExpectError("", 0, "expected a value, found the end");
  ExpectError("a + * b", 4, "unexpected '*'");
  ExpectError("a b", 2, "unexpected 'b'");
  ExpectError("1.2.3 > 0", 0, "malformed number");
  ExpectError("a[", 2, "expected an array index or a quoted key after '['");
  ExpectError("a[1", 3, "expected ']'");
  ExpectError("s == \"a\\qb\"", 7, "unknown escape \\q");
  ExpectError("in [1]", 0, "expected a value before 'in'");
}

TEST_CASE("expressions nest up to 64 levels and no deeper", "[transforms][expr]") {
  // Each parenthesis opens one level below the top-level expression.
  auto parens = [](int n) { return std::string(n, '(') + "a" + std::string(n, ')'); };
  CHECK(Ev(parens(10), "{a: 3}") == "int 3");
  CHECK(Ev(parens(63), "{a: 3}") == "int 3");
  ExpectError(parens(64), 64, "expression nested too deeply");
  ExpectError(parens(5000), 64, "expression nested too deeply");
  // Unary operators nest as well.
  CHECK(Ev(std::string(63, '!') + "a", "{a: 0}") == "true");
  ExpectError(std::string(64, '!') + "a", 64, "expression nested too deeply");
  ExpectError(std::string(100000, '-') + "1", 64, "expression nested too deeply");
  // Calls and lists count as levels too.
  std::string calls = "a";
  for (int i = 0; i < 63; ++i) calls = "lower(" + calls + ")";
  CHECK(Ev(calls, "{a: ABC}") == "str abc");
  ExpectError("lower(" + calls + ")", 6 * 64, "expression nested too deeply");
  // A long flat chain is not nesting.
  std::string chain = "a";
  for (int i = 0; i < 1000; ++i) chain += " + a";
  CHECK(Ev(chain, "{a: 1}") == "int 1001");
}

// ---- semantics ----

TEST_CASE("missing fields read as null; exists tells them apart", "[transforms][expr]") {
  CHECK(Ev("a", "{}") == "missing");
  CHECK(Ev("a", "{a: null}") == "null");
  CHECK(Ev("a == null", "{}") == "true");
  CHECK(Ev("a == null", "{a: null}") == "true");
  CHECK(Ev("a == b", "{a: null}") == "true");  // missing == null
  CHECK(Ev("a != null", "{a: 0}") == "true");
  CHECK(Ev("exists(a)", "{}") == "false");
  CHECK(Ev("exists(a)", "{a: null}") == "true");
  CHECK(Ev("a.exists()", "{a: 1}") == "true");
  CHECK(Ev("exists(a.b)", "{a: 5}") == "false");
  CHECK(Ev("exists(a.b)", "{a: {b: null}}") == "true");
  CHECK(Ev("exists(arr[2])", "{arr: [1, 2]}") == "false");
  CHECK(Ev("exists(arr[1])", "{arr: [1, 2]}") == "true");
  CHECK(Ev("!a", "{}") == "true");
  CHECK(Ev("a + 1", "{}") == "null");
  CHECK(Ev("a.b.c", "{a: {b: 7}}") == "missing");
  CHECK(Ev("a[0]", "{a: {b: 7}}") == "missing");
  CHECK(Ev("a.b", "{a: [1]}") == "missing");
  CHECK(Ev("a < 1", "{}") == "false");
  CHECK(Ev("a >= 1", "{}") == "false");
}

TEST_CASE("== and != compare numbers by value and other kinds with their own", "[transforms][expr]") {
  CHECK(Ev("1 == 1.0") == "true");
  CHECK(Ev("1 != 1.0") == "false");
  CHECK(Ev("n == 2", "{n: 2.0}") == "true");
  CHECK(Ev("n == 2.5", "{n: 2}") == "false");
  CHECK(Ev("0 == -0.0") == "true");
  CHECK(Ev("f == f", "{f: .nan}") == "false");
  CHECK(Ev("f != f", "{f: .nan}") == "true");
  CHECK(Ev("'1' == 1") == "false");
  CHECK(Ev("'1' != 1") == "true");
  CHECK(Ev("true == 1") == "false");
  CHECK(Ev("false == null") == "false");
  CHECK(Ev("'' == null") == "false");
  CHECK(Ev("0 == false") == "false");
  CHECK(Ev("'abc' == 'abc'") == "true");
  CHECK(Ev("'abc' == 'ABC'") == "false");
  CHECK(Ev("true == true") == "true");
  CHECK(Ev("null == null") == "true");
  // Large integers compare exactly with each other...
  CHECK(Ev("a == b", "{a: 9007199254740993, b: 9007199254740992}") == "false");
  CHECK(Ev("a == 9223372036854775807", "{a: 9223372036854775807}") == "true");
  // ...and with a float through the float's precision.
  CHECK(Ev("a == 9007199254740992.0", "{a: 9007199254740993}") == "true");
  // Arrays and maps compare by their encoding.
  CHECK(Ev("a == b", "{a: [1, 'x'], b: [1, 'x']}") == "true");
  CHECK(Ev("a == b", "{a: [1], b: [1.0]}") == "false");
  CHECK(Ev("a == b", "{a: {k: 1, j: 2}, b: {k: 1, j: 2}}") == "true");
  CHECK(Ev("a == b", "{a: {k: 1, j: 2}, b: {j: 2, k: 1}}") == "false");
  CHECK(Ev("a == b", "{a: [], b: {}}") == "false");
  CHECK(Ev("a == 1", "{a: [1]}") == "false");
  CHECK(Ev("a != b", "{a: [1], b: [2]}") == "true");
  // A uint64 beyond int64 reads as a float.
  CHECK(Ev("a", "{a: 18446744073709551615}") == "float 18446744073709551616");
  CHECK(Ev("a > 9223372036854775807", "{a: 18446744073709551615}") == "true");
}

TEST_CASE("< <= > >= order numbers and strings only", "[transforms][expr]") {
  CHECK(Ev("1 < 2") == "true");
  CHECK(Ev("2 <= 2") == "true");
  CHECK(Ev("2 > 2") == "false");
  CHECK(Ev("2 >= 2.0") == "true");
  CHECK(Ev("1 < 1.5") == "true");
  CHECK(Ev("-1.5 < -1") == "true");
  CHECK(Ev("a < b", "{a: -9223372036854775807, b: 9223372036854775807}") == "true");
  CHECK(Ev("a > b", "{a: 9223372036854775807, b: 9223372036854775806}") == "true");
  // Strings order bytewise: capitals before lower case, UTF-8 after ASCII.
  CHECK(Ev("'abc' < 'abd'") == "true");
  CHECK(Ev("'B' < 'a'") == "true");
  CHECK(Ev("'a' < 'ab'") == "true");
  CHECK(Ev("'' < 'a'") == "true");
  CHECK(Ev("s > 'z'", "{s: \"\\u00e9\"}") == "true");
  CHECK(Ev("'b' >= 'b'") == "true");
  // Mixed kinds, null, booleans and NaN are unordered: every comparison is false.
  for (const char* op : {"<", "<=", ">", ">="}) {
    INFO(op);
    CHECK(Ev(std::string("'1' ") + op + " 2") == "false");
    CHECK(Ev(std::string("2 ") + op + " '1'") == "false");
    CHECK(Ev(std::string("null ") + op + " 1") == "false");
    CHECK(Ev(std::string("null ") + op + " null") == "false");
    CHECK(Ev(std::string("true ") + op + " false") == "false");
    CHECK(Ev(std::string("f ") + op + " 1", "{f: .nan}") == "false");
    CHECK(Ev(std::string("1 ") + op + " f", "{f: .nan}") == "false");
    CHECK(Ev(std::string("a ") + op + " b", "{a: [1], b: [2]}") == "false");
  }
}

TEST_CASE("&&, || and ! work on truthiness and give booleans", "[transforms][expr]") {
  CHECK(Ev("1 && 'x'") == "true");
  CHECK(Ev("0 || ''") == "false");
  CHECK(Ev("0 || 'x'") == "true");
  CHECK(Ev("null || false") == "false");
  CHECK(Ev("a || b", "{}") == "false");
  CHECK(Ev("!0") == "true");
  CHECK(Ev("!0.0") == "true");
  CHECK(Ev("!-0.0") == "true");
  CHECK(Ev("!f", "{f: .nan}") == "true");
  CHECK(Ev("!f", "{f: .inf}") == "false");
  CHECK(Ev("!''") == "true");
  CHECK(Ev("!' '") == "false");
  CHECK(Ev("!null") == "true");
  CHECK(Ev("!!7") == "true");
  CHECK(Ev("!0.5") == "false");
  // Every container is true, empty ones too.
  CHECK(Ev("a && true", "{a: []}") == "true");
  CHECK(Ev("a && true", "{a: {}}") == "true");
  CHECK(Ev("!a", "{a: [0]}") == "false");
  // Precedence: && binds tighter than ||, comparisons tighter than both.
  CHECK(Ev("true || false && false") == "true");
  CHECK(Ev("(true || false) && false") == "false");
  CHECK(Ev("1 < 2 && 3 < 2 || 5 == 5") == "true");
  CHECK(Ev("!1 == 0") == "false");  // (!1) == 0: a boolean is not a number
  CHECK(Ev("!(1 == 0)") == "true");
}

TEST_CASE("arithmetic: integers stay integers until they overflow", "[transforms][expr]") {
  CHECK(Ev("2 + 3") == "int 5");
  CHECK(Ev("2 - 3") == "int -1");
  CHECK(Ev("6 * 7") == "int 42");
  CHECK(Ev("2 + 0.5") == "float 2.5");
  CHECK(Ev("2.5 * 2") == "float 5");
  CHECK(Ev("0.5 - 0.5") == "float 0");
  CHECK(Ev("1 + 2 * 3") == "int 7");
  CHECK(Ev("(1 + 2) * 3") == "int 9");
  CHECK(Ev("10 - 3 - 2") == "int 5");  // left to right
  CHECK(Ev("2 * 3 % 4") == "int 2");
  // Overflow gives a float.
  CHECK(Ev("9223372036854775807 + 1") == "float 9223372036854775808");
  CHECK(Ev("a - 2", "{a: -9223372036854775807}") == "float -9223372036854775808");
  CHECK(Ev("a - 1", "{a: -9223372036854775807}") == "int -9223372036854775808");
  CHECK(Ev("4611686018427387904 * 2") == "float 9223372036854775808");
  CHECK(Ev("4611686018427387904 * -2") == "int -9223372036854775808");
  CHECK(Ev("-a", "{a: -9223372036854775808}") == "float 9223372036854775808");
  CHECK(Ev("-a", "{a: 5}") == "int -5");
  CHECK(Ev("-a", "{a: 2.5}") == "float -2.5");
  CHECK(Ev("-a", "{a: '5'}") == "null");
  CHECK(Ev("-a", "{}") == "null");
  // / always gives a float; division by zero gives null.
  CHECK(Ev("7 / 2") == "float 3.5");
  CHECK(Ev("6 / 3") == "float 2");
  CHECK(Ev("1 / 0") == "null");
  CHECK(Ev("1 / 0.0") == "null");
  CHECK(Ev("1.5 / -0.0") == "null");
  CHECK(Ev("0 / 5") == "float 0");
  // % is the C remainder on integers, fmod on floats.
  CHECK(Ev("7 % 3") == "int 1");
  CHECK(Ev("-7 % 3") == "int -1");
  CHECK(Ev("7 % -3") == "int 1");
  CHECK(Ev("a % -1", "{a: -9223372036854775808}") == "int 0");
  CHECK(Ev("7 % 0") == "null");
  CHECK(Ev("7.5 % 2") == "float 1.5");
  CHECK(Ev("-7.5 % 2") == "float -1.5");
  CHECK(Ev("7 % 2.5") == "float 2");
  CHECK(Ev("7.5 % 0") == "null");
  CHECK(Ev("7 % 0.0") == "null");
  // + joins two strings; every other mix gives null.
  CHECK(Ev("'ab' + 'cd'") == "str abcd");
  CHECK(Ev("s + '@' + d", "{s: ann, d: x.com}") == "str ann@x.com");
  CHECK(Ev("'' + ''") == "str ");
  CHECK(Ev("'a' + 1") == "null");
  CHECK(Ev("1 + 'a'") == "null");
  CHECK(Ev("'a' - 'a'") == "null");
  CHECK(Ev("'a' * 2") == "null");
  CHECK(Ev("true + 1") == "null");
  CHECK(Ev("null + 1") == "null");
  CHECK(Ev("a + 1", "{a: [1]}") == "null");
  CHECK(Ev("a / 2", "{a: '4'}") == "null");
  CHECK(Ev("a % 2", "{a: true}") == "null");
  // Floats overflow to infinity, as floats do.
  CHECK(Ev("1e308 * 10") == "float inf");
}

TEST_CASE("in: a literal list or a field holding an array", "[transforms][expr]") {
  CHECK(Ev("c in ['EUR', 'USD']", "{c: USD}") == "true");
  CHECK(Ev("c in ['EUR', 'USD']", "{c: GBP}") == "false");
  CHECK(Ev("n in [1, 2]", "{n: 2.0}") == "true");
  CHECK(Ev("n in []", "{n: 1}") == "false");
  CHECK(Ev("n in [1 + 1, 5]", "{n: 2}") == "true");
  CHECK(Ev("n in [m, 5]", "{n: 2, m: 2}") == "true");
  CHECK(Ev("a in [null]", "{}") == "true");  // missing == null
  CHECK(Ev("a in [0, false, '']", "{}") == "false");
  CHECK(Ev("1 + 1 in [2]") == "true");  // in takes a sum on its left
  CHECK(Ev("!(c in ['x'])", "{c: y}") == "true");
  CHECK(Ev("c in ['x'] && true", "{c: x}") == "true");
  // A field holding an array.
  CHECK(Ev("t in tags", "{t: b, tags: [a, b, c]}") == "true");
  CHECK(Ev("t in tags", "{t: d, tags: [a, b, c]}") == "false");
  CHECK(Ev("n in nums", "{n: 3, nums: [1.0, 3.0]}") == "true");
  CHECK(Ev("x in tags", "{tags: [1, null]}") == "true");
  CHECK(Ev("x in items[0].skus", "{x: A, items: [{skus: [B, A]}]}") == "true");
  CHECK(Ev("a in b", "{a: [1], b: [[1], [2]]}") == "true");
  CHECK(Ev("t in tags", "{t: a, tags: []}") == "false");
  // Anything but an array holds nothing.
  CHECK(Ev("t in s", "{t: a, s: abc}") == "false");
  CHECK(Ev("t in m", "{t: a, m: {a: a}}") == "false");
  CHECK(Ev("t in nope", "{t: a}") == "false");
  CHECK(Ev("n in n", "{n: 1}") == "false");
}

TEST_CASE("string functions", "[transforms][expr]") {
  const std::string rec = "{s: Hello World, e: ann@x.com, n: 42, u: \"\\u00c0b\", empty: ''}";
  CHECK(Ev("startsWith(s, 'Hello')", rec) == "true");
  CHECK(Ev("startsWith(s, 'hello')", rec) == "false");
  CHECK(Ev("startsWith(s, '')", rec) == "true");
  CHECK(Ev("startsWith('ab', 'abc')", rec) == "false");
  CHECK(Ev("endsWith(s, 'World')", rec) == "true");
  CHECK(Ev("endsWith('d', 'World')", rec) == "false");
  CHECK(Ev("contains(s, 'o W')", rec) == "true");
  CHECK(Ev("contains(s, 'xyz')", rec) == "false");
  CHECK(Ev("contains(empty, '')", rec) == "true");
  // false unless given two strings
  CHECK(Ev("startsWith(n, '4')", rec) == "false");
  CHECK(Ev("contains(s, 1)", rec) == "false");
  CHECK(Ev("endsWith(missing, '')", rec) == "false");
  CHECK(Ev("contains(a, 1)", "{a: [1]}") == "false");
  // lower/upper map ASCII only and give null for non-strings
  CHECK(Ev("lower(s)", rec) == "str hello world");
  CHECK(Ev("upper(s)", rec) == "str HELLO WORLD");
  CHECK(Ev("lower(u)", rec) == "str \xc3\x80" "b");
  CHECK(Ev("upper(u)", rec) == "str \xc3\x80" "B");
  CHECK(Ev("lower(n)", rec) == "null");
  CHECK(Ev("upper(missing)", rec) == "null");
  CHECK(Ev("lower(s) == 'hello world'", rec) == "true");
  // len: bytes of a string, entries of an array or map, else null
  CHECK(Ev("len(s)", rec) == "int 11");
  CHECK(Ev("len(u)", rec) == "int 3");
  CHECK(Ev("len(empty)", rec) == "int 0");
  CHECK(Ev("len(a)", "{a: [1, 2, [3, 4]]}") == "int 3");
  CHECK(Ev("len(m)", "{m: {x: 1, y: 2}}") == "int 2");
  CHECK(Ev("len(n)", rec) == "null");
  CHECK(Ev("len(missing)", rec) == "null");
  CHECK(Ev("len(true)", rec) == "null");
  // matches: RE2, unanchored unless the pattern says ^ or $
  CHECK(Ev("matches(s, 'lo W')", rec) == "true");
  CHECK(Ev("matches(s, '^World')", rec) == "false");
  CHECK(Ev("matches(s, 'World$')", rec) == "true");
  CHECK(Ev("matches(e, '^[a-z]+@[a-z]+\\\\.com$')", rec) == "true");
  CHECK(Ev("matches(s, '(?i)hello')", rec) == "true");
  CHECK(Ev("matches(n, '4')", rec) == "false");
  CHECK(Ev("matches(missing, '')", rec) == "false");
  CHECK(Ev("matches(empty, '^$')", rec) == "true");
}

TEST_CASE("method form is the same call", "[transforms][expr]") {
  const std::string rec = "{email: ann@x.com, user: {email: BOB@Y.COM, tags: [a]}}";
  CHECK(Ev("email.endsWith('@x.com')", rec) == "true");
  CHECK(Ev("email.endsWith(\"@y.com\")", rec) == "false");
  CHECK(Ev("email.startsWith('ann')", rec) == "true");
  CHECK(Ev("email.contains('@')", rec) == "true");
  CHECK(Ev("email.matches('^a.n@')", rec) == "true");
  CHECK(Ev("user.email.lower()", rec) == "str bob@y.com");
  CHECK(Ev("user.email.upper() == 'BOB@Y.COM'", rec) == "true");
  CHECK(Ev("user.email.len()", rec) == "int 9");
  CHECK(Ev("user.tags.len() + 1", rec) == "int 2");
  CHECK(Ev("user.email.exists()", rec) == "true");
  CHECK(Ev("user.phone.exists()", rec) == "false");
  CHECK(Ev("!email.endsWith('@x.com') || user.email.contains('Y')", rec) == "true");
  // A field named like a function, not followed by '(', is a field.
  CHECK(Ev("m.len", "{m: {len: 3}}") == "int 3");
  CHECK(Ev("m.lower.upper()", "{m: {lower: abc}}") == "str ABC");
}

TEST_CASE("paths with indexes and quoted keys", "[transforms][expr]") {
  const std::string rec =
      "{items: [{sku: A1, qty: 2}, {sku: B2, qty: 3}], m: {'odd key': 7, 'a.b': 8}, "
      "'x-y': 1, arr: [[1, 2], [3]]}";
  CHECK(Ev("items[1].sku", rec) == "str B2");
  CHECK(Ev("items[1].sku == 'B2'", rec) == "true");
  CHECK(Ev("items[0].qty * items[1].qty", rec) == "int 6");
  CHECK(Ev("items[2].sku", rec) == "missing");
  CHECK(Ev("items[0]", rec) == "raw {\"sku\":\"A1\",\"qty\":2}");
  CHECK(Ev("m[\"odd key\"]", rec) == "int 7");
  CHECK(Ev("m['odd key'] + 1", rec) == "int 8");
  CHECK(Ev("m[ 'a.b' ]", rec) == "int 8");
  CHECK(Ev("m.a.b", rec) == "missing");
  CHECK(Ev("arr[0][1]", rec) == "int 2");
  CHECK(Ev("arr[1][0] + arr[0][0]", rec) == "int 4");
  CHECK(Ev("m['odd key'].exists()", rec) == "true");

  // The paths a program reads, as written.
  Program p;
  std::string error;
  size_t col = 0;
  REQUIRE(Program::Compile("items[1].sku == m['odd key'] && exists(user.email)", &p, &error, &col));
  REQUIRE(p.paths().size() == 3);
  CHECK(p.paths()[0].text == "items[1].sku");
  CHECK(p.paths()[1].text == "m['odd key']");
  CHECK(p.paths()[2].text == "user.email");
  REQUIRE(p.paths()[0].segs.size() == 3);
  CHECK(p.paths()[0].segs[1].index == 1);
  CHECK(p.paths()[1].segs[1].key == "odd key");
  CHECK(p.source() == "items[1].sku == m['odd key'] && exists(user.email)");
}

TEST_CASE("literals: numbers, escapes, keywords", "[transforms][expr]") {
  CHECK(Ev("42") == "int 42");
  CHECK(Ev("4.0") == "float 4");
  CHECK(Ev(".5") == "float 0.5");
  CHECK(Ev("1e3") == "float 1000");
  CHECK(Ev("2.5E-1") == "float 0.25");
  CHECK(Ev("9223372036854775807") == "int 9223372036854775807");
  CHECK(Ev("9223372036854775808") == "float 9223372036854775808");
  CHECK(Ev("true") == "true");
  CHECK(Ev("null") == "null");
  CHECK(Ev("'it\\'s'") == "str it's");
  CHECK(Ev("\"say \\\"hi\\\"\"") == "str say \"hi\"");
  CHECK(Ev("'a\\\\b'") == "str a\\b");
  CHECK(Ev("len('\\n\\t\\r\\0')") == "int 4");
  CHECK(Ev("\"it's\"") == "str it's");
  CHECK(Ev(" \t\n a \n== \r 1 ", "{a: 1}") == "true");
  // Fields whose names start like keywords are fields.
  CHECK(Ev("trueish", "{trueish: 5}") == "int 5");
  CHECK(Ev("x in index", "{x: 1, index: [1]}") == "true");
  // Duplicate keys: the last one wins, as in a JSON object.
  const std::string dup = test::Pack([](wire::Writer& w) {
    w.MapHeader(3);
    w.Str("a");
    w.Int(1);
    w.Str("m");
    w.MapHeader(2);
    w.Str("k");
    w.Int(1);
    w.Str("k");
    w.Int(2);
    w.Str("a");
    w.Int(3);
  });
  Doc d;
  d.Load(U8(dup), dup.size());
  Program p;
  std::string error;
  size_t col;
  REQUIRE(Program::Compile("a * 10 + m.k", &p, &error, &col));
  Arena scratch;
  CHECK(Describe(p.Eval(d, &scratch)) == "int 32");
}

// ---- the reference evaluator ----

namespace {

// A JSON-like value, with the msgpack kinds a payload may hold.
struct J {
  enum K { kNull, kBool, kInt, kBigUint, kFloat, kStr, kBin, kArr, kMap };
  K k = kNull;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;                                  // kStr, kBin
  std::vector<J> items;                           // kArr
  std::vector<std::pair<std::string, J>> fields;  // kMap; of duplicate keys the last counts
};

void Encode(const J& j, wire::Writer* w) {
  switch (j.k) {
    case J::kNull: w->Nil(); break;
    case J::kBool: w->Bool(j.b); break;
    case J::kInt: w->Int(j.i); break;
    case J::kBigUint: w->Uint(j.u); break;
    case J::kFloat: w->Double(j.f); break;
    case J::kStr: w->Str(j.s); break;
    case J::kBin: w->Bin(j.s.data(), j.s.size()); break;
    case J::kArr:
      w->ArrayHeader(static_cast<uint32_t>(j.items.size()));
      for (const J& x : j.items) Encode(x, w);
      break;
    case J::kMap:
      w->MapHeader(static_cast<uint32_t>(j.fields.size()));
      for (const auto& [k, v] : j.fields) {
        w->Str(k);
        Encode(v, w);
      }
      break;
  }
}

std::string Encoded(const J& j) {
  wire::Buffer b;
  wire::Writer w(&b);
  Encode(j, &w);
  return std::string(b.view());
}

struct Seg {
  std::string key;
  int64_t index = -1;
};
struct RefPath {
  std::string text;
  std::vector<Seg> segs;
};

const std::vector<RefPath>& Paths() {
  static const std::vector<RefPath> paths = {
      {"a", {{"a"}}},
      {"b", {{"b"}}},
      {"n", {{"n"}}},
      {"f", {{"f"}}},
      {"s", {{"s"}}},
      {"t", {{"t"}}},
      {"arr", {{"arr"}}},
      {"m", {{"m"}}},
      {"m.x", {{"m"}, {"x"}}},
      {"m.y", {{"m"}, {"y"}}},
      {"m.x.y", {{"m"}, {"x"}, {"y"}}},
      {"m[\"odd key\"]", {{"m"}, {"odd key"}}},
      {"arr[0]", {{"arr"}, {"", 0}}},
      {"arr[1]", {{"arr"}, {"", 1}}},
      {"items[0].sku", {{"items"}, {"", 0}, {"sku"}}},
      {"items[1].sku", {{"items"}, {"", 1}, {"sku"}}},
      {"items[1]", {{"items"}, {"", 1}}},
      {"zz", {{"zz"}}},
  };
  return paths;
}

// The value at `p` in the record (a map), or nullptr.
const J* Find(const J& rec, const RefPath& p) {
  const J* cur = &rec;
  for (const Seg& s : p.segs) {
    if (s.index >= 0) {
      if (cur->k != J::kArr || static_cast<size_t>(s.index) >= cur->items.size()) return nullptr;
      cur = &cur->items[static_cast<size_t>(s.index)];
      continue;
    }
    if (cur->k != J::kMap) return nullptr;
    const J* found = nullptr;
    for (const auto& [k, v] : cur->fields) {
      if (k == s.key) found = &v;
    }
    if (found == nullptr) return nullptr;
    cur = found;
  }
  return cur;
}

// A reference value.
struct R {
  enum K { kMissing, kNull, kBool, kInt, kFloat, kStr, kRaw };
  K k = kMissing;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  const J* raw = nullptr;  // kRaw: an array, a map or binary
};

R Null() {
  R r;
  r.k = R::kNull;
  return r;
}
R Bool(bool v) {
  R r;
  r.k = R::kBool;
  r.b = v;
  return r;
}
R Int(int64_t v) {
  R r;
  r.k = R::kInt;
  r.i = v;
  return r;
}
R Float(double v) {
  R r;
  r.k = R::kFloat;
  r.f = v;
  return r;
}
R Str(std::string v) {
  R r;
  r.k = R::kStr;
  r.s = std::move(v);
  return r;
}

R FromJ(const J* j) {
  if (j == nullptr) return R{};
  switch (j->k) {
    case J::kNull: return Null();
    case J::kBool: return Bool(j->b);
    case J::kInt: return Int(j->i);
    case J::kBigUint: return Float(static_cast<double>(j->u));  // beyond int64: a float
    case J::kFloat: return Float(j->f);
    case J::kStr: return Str(j->s);
    default: {
      R r;
      r.k = R::kRaw;
      r.raw = j;
      return r;
    }
  }
}

bool IsNum(const R& r) { return r.k == R::kInt || r.k == R::kFloat; }
double Num(const R& r) { return r.k == R::kInt ? static_cast<double>(r.i) : r.f; }
bool Nullish(const R& r) { return r.k == R::kMissing || r.k == R::kNull; }

// null, false, 0, NaN and "" are false; everything else is true.
bool Truthy(const R& r) {
  switch (r.k) {
    case R::kMissing:
    case R::kNull: return false;
    case R::kBool: return r.b;
    case R::kInt: return r.i != 0;
    case R::kFloat: return !(r.f == 0) && !std::isnan(r.f);
    case R::kStr: return !r.s.empty();
    case R::kRaw: return true;
  }
  return false;
}

bool Eq(const R& a, const R& b) {
  if (Nullish(a) || Nullish(b)) return Nullish(a) && Nullish(b);
  if (IsNum(a) && IsNum(b)) {
    if (a.k == R::kInt && b.k == R::kInt) return a.i == b.i;
    return Num(a) == Num(b);
  }
  if (a.k != b.k) return false;
  switch (a.k) {
    case R::kBool: return a.b == b.b;
    case R::kStr: return a.s == b.s;
    case R::kRaw: return Encoded(*a.raw) == Encoded(*b.raw);
    default: return false;
  }
}

// -1, 0, 1; 2 when unordered.
int Order(const R& a, const R& b) {
  if (IsNum(a) && IsNum(b)) {
    if (a.k == R::kInt && b.k == R::kInt) return a.i < b.i ? -1 : (a.i > b.i ? 1 : 0);
    const double x = Num(a), y = Num(b);
    if (std::isnan(x) || std::isnan(y)) return 2;
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.k == R::kStr && b.k == R::kStr) {
    const size_t n = std::min(a.s.size(), b.s.size());
    for (size_t i = 0; i < n; ++i) {
      const auto x = static_cast<unsigned char>(a.s[i]), y = static_cast<unsigned char>(b.s[i]);
      if (x != y) return x < y ? -1 : 1;
    }
    return a.s.size() < b.s.size() ? -1 : (a.s.size() > b.s.size() ? 1 : 0);
  }
  return 2;
}

// The patterns `matches` is tried with, each with what it means.
struct Pattern {
  const char* re;
  bool (*test)(const std::string&);
};
const std::vector<Pattern>& Patterns() {
  static const std::vector<Pattern> p = {
      {"^a", [](const std::string& s) { return !s.empty() && s[0] == 'a'; }},
      {"c$", [](const std::string& s) { return !s.empty() && s.back() == 'c'; }},
      {"a.c",
       [](const std::string& s) {
         for (size_t i = 0; i + 2 < s.size(); ++i) {
           if (s[i] == 'a' && s[i + 1] != '\n' && s[i + 2] == 'c') return true;
         }
         return false;
       }},
      {"[0-9]",
       [](const std::string& s) {
         for (char c : s) {
           if (c >= '0' && c <= '9') return true;
         }
         return false;
       }},
      {"^$", [](const std::string& s) { return s.empty(); }},
      {"(?i)ab",
       [](const std::string& s) {
         for (size_t i = 0; i + 1 < s.size(); ++i) {
           if ((s[i] == 'a' || s[i] == 'A') && (s[i + 1] == 'b' || s[i + 1] == 'B')) return true;
         }
         return false;
       }},
      {"x|yz",
       [](const std::string& s) {
         return s.find('x') != std::string::npos || s.find("yz") != std::string::npos;
       }},
      {"\\.", [](const std::string& s) { return s.find('.') != std::string::npos; }},
      {"", [](const std::string&) { return true; }},
  };
  return p;
}

struct Ex {
  enum Op {
    kConst, kPath, kNot, kNeg, kOr, kAnd, kEq, kNe, kLt, kLe, kGt, kGe, kInList, kInPath,
    kAdd, kSub, kMul, kDiv, kMod, kExists, kStartsWith, kEndsWith, kContains, kLower, kUpper,
    kMatches, kLen,
  };
  Op op = kConst;
  R value;           // kConst: null, bool, int, float or string
  int path = -1;     // kPath, kExists, and the array of kInPath
  int pattern = -1;  // kMatches
  bool method = false;
  std::vector<Ex> kids;
};

R Eval(const Ex& e, const J& rec) {
  auto kid = [&](size_t i) { return Eval(e.kids[i], rec); };
  switch (e.op) {
    case Ex::kConst: return e.value;
    case Ex::kPath: return FromJ(Find(rec, Paths()[static_cast<size_t>(e.path)]));
    case Ex::kNot: return Bool(!Truthy(kid(0)));
    case Ex::kNeg: {
      const R a = kid(0);
      if (a.k == R::kInt) {
        if (a.i == std::numeric_limits<int64_t>::min()) return Float(-static_cast<double>(a.i));
        return Int(-a.i);
      }
      if (a.k == R::kFloat) return Float(-a.f);
      return Null();
    }
    case Ex::kOr: return Bool(Truthy(kid(0)) || Truthy(kid(1)));
    case Ex::kAnd: return Bool(Truthy(kid(0)) && Truthy(kid(1)));
    case Ex::kEq: return Bool(Eq(kid(0), kid(1)));
    case Ex::kNe: return Bool(!Eq(kid(0), kid(1)));
    case Ex::kLt: return Bool(Order(kid(0), kid(1)) == -1);
    case Ex::kLe: {
      const int o = Order(kid(0), kid(1));
      return Bool(o == -1 || o == 0);
    }
    case Ex::kGt: return Bool(Order(kid(0), kid(1)) == 1);
    case Ex::kGe: {
      const int o = Order(kid(0), kid(1));
      return Bool(o == 1 || o == 0);
    }
    case Ex::kInList: {
      const R x = kid(0);
      for (size_t i = 1; i < e.kids.size(); ++i) {
        if (Eq(x, kid(i))) return Bool(true);
      }
      return Bool(false);
    }
    case Ex::kInPath: {
      const R x = kid(0);
      const J* arr = Find(rec, Paths()[static_cast<size_t>(e.path)]);
      if (arr == nullptr || arr->k != J::kArr) return Bool(false);
      for (const J& item : arr->items) {
        if (Eq(x, FromJ(&item))) return Bool(true);
      }
      return Bool(false);
    }
    case Ex::kAdd:
    case Ex::kSub:
    case Ex::kMul: {
      const R a = kid(0), b = kid(1);
      if (e.op == Ex::kAdd && a.k == R::kStr && b.k == R::kStr) return Str(a.s + b.s);
      if (!IsNum(a) || !IsNum(b)) return Null();
      if (a.k == R::kInt && b.k == R::kInt) {
        // Exact in 128 bits; an integer if it fits.
        const __int128 x = a.i, y = b.i;
        const __int128 r = e.op == Ex::kAdd ? x + y : e.op == Ex::kSub ? x - y : x * y;
        if (r >= std::numeric_limits<int64_t>::min() && r <= std::numeric_limits<int64_t>::max()) {
          return Int(static_cast<int64_t>(r));
        }
      }
      const double x = Num(a), y = Num(b);
      return Float(e.op == Ex::kAdd ? x + y : e.op == Ex::kSub ? x - y : x * y);
    }
    case Ex::kDiv: {
      const R a = kid(0), b = kid(1);
      if (!IsNum(a) || !IsNum(b) || Num(b) == 0) return Null();
      return Float(Num(a) / Num(b));
    }
    case Ex::kMod: {
      const R a = kid(0), b = kid(1);
      if (!IsNum(a) || !IsNum(b)) return Null();
      if (a.k == R::kInt && b.k == R::kInt) {
        if (b.i == 0) return Null();
        // The C remainder: the sign of the dividend, |r| < |divisor|.
        const __int128 x = a.i, y = b.i;
        return Int(static_cast<int64_t>(x % y));
      }
      if (Num(b) == 0) return Null();
      return Float(std::fmod(Num(a), Num(b)));
    }
    case Ex::kExists: return Bool(Find(rec, Paths()[static_cast<size_t>(e.path)]) != nullptr);
    case Ex::kStartsWith:
    case Ex::kEndsWith:
    case Ex::kContains: {
      const R s = kid(0), t = kid(1);
      if (s.k != R::kStr || t.k != R::kStr) return Bool(false);
      if (t.s.size() > s.s.size()) return Bool(false);
      if (e.op == Ex::kStartsWith) return Bool(s.s.compare(0, t.s.size(), t.s) == 0);
      if (e.op == Ex::kEndsWith) return Bool(s.s.compare(s.s.size() - t.s.size(), t.s.size(), t.s) == 0);
      return Bool(s.s.find(t.s) != std::string::npos);
    }
    case Ex::kLower:
    case Ex::kUpper: {
      R s = kid(0);
      if (s.k != R::kStr) return Null();
      for (char& c : s.s) {
        if (e.op == Ex::kLower && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (e.op == Ex::kUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      return s;
    }
    case Ex::kMatches: {
      const R s = kid(0);
      if (s.k != R::kStr) return Bool(false);
      return Bool(Patterns()[static_cast<size_t>(e.pattern)].test(s.s));
    }
    case Ex::kLen: {
      const R s = kid(0);
      if (s.k == R::kStr) return Int(static_cast<int64_t>(s.s.size()));
      if (s.k == R::kRaw && s.raw->k == J::kArr) return Int(static_cast<int64_t>(s.raw->items.size()));
      if (s.k == R::kRaw && s.raw->k == J::kMap) return Int(static_cast<int64_t>(s.raw->fields.size()));
      return Null();
    }
  }
  return Null();
}

// ---- random records ----

const std::vector<int64_t>& IntPool() {
  static const std::vector<int64_t> v = {
      0, 1, 2, 3, -1, -2, 7, -7, 42, 100, 1000, 3037000500, 4611686018427387904,
      9007199254740993, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max() - 1,
      std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1};
  return v;
}
const std::vector<double>& FloatPool() {
  static const std::vector<double> v = {
      0.0, -0.0, 1.0, 2.5, -1.5, 0.1, 7.0, 42.0, 0.5, 3.25, 1e300, -1e300, 9007199254740992.0,
      9223372036854775808.0, std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
  return v;
}
const std::vector<std::string>& StrPool() {
  static const std::vector<std::string> v = {
      "", "a", "ab", "abc", "ABC", "aXc", "b", "c", "x@y.com", "a\nc", "123", "it's",
      "say \"hi\"", "back\\slash", "xyz", "Ab", "abcabc", "\tz", "B", "a.c"};
  return v;
}

std::string RandString(test::Rng& r) {
  if (r.Uniform(3) != 0) return StrPool()[r.Uniform(StrPool().size())];
  static const char kAlphabet[] = "abcxyzABC019 .@\n'\"\\";
  std::string s(r.Uniform(6), ' ');
  for (char& c : s) c = kAlphabet[r.Uniform(sizeof(kAlphabet) - 1)];
  return s;
}

J RandScalar(test::Rng& r) {
  J j;
  switch (r.Uniform(14)) {
    case 0: j.k = J::kNull; break;
    case 1: j.k = J::kBool; j.b = r.Uniform(2) == 1; break;
    case 2:
    case 3:
    case 4: j.k = J::kInt; j.i = IntPool()[r.Uniform(IntPool().size())]; break;
    case 5: j.k = J::kInt; j.i = static_cast<int64_t>(r.Uniform(11)) - 5; break;
    case 6:
    case 7: j.k = J::kFloat; j.f = FloatPool()[r.Uniform(FloatPool().size())]; break;
    case 8:
      j.k = J::kBigUint;
      j.u = r.Uniform(2) ? std::numeric_limits<uint64_t>::max() : (uint64_t{1} << 63);
      break;
    case 9:
      j.k = J::kBin;
      j.s = r.Uniform(2) ? "ab" : "";
      break;
    default: j.k = J::kStr; j.s = RandString(r); break;
  }
  return j;
}

J RandValue(test::Rng& r, int depth) {
  const uint64_t c = r.Uniform(10);
  if (depth > 0 && c < 2) {
    J j;
    j.k = J::kArr;
    const uint64_t n = r.Uniform(4);
    for (uint64_t i = 0; i < n; ++i) j.items.push_back(RandValue(r, depth - 1));
    return j;
  }
  if (depth > 0 && c < 4) {
    static const char* kKeys[] = {"x", "y", "sku", "odd key"};
    J j;
    j.k = J::kMap;
    const uint64_t n = r.Uniform(4);
    for (uint64_t i = 0; i < n; ++i) {
      j.fields.emplace_back(kKeys[r.Uniform(4)], RandValue(r, depth - 1));  // duplicates too
    }
    return j;
  }
  return RandScalar(r);
}

J RandRecord(test::Rng& r) {
  J rec;
  rec.k = J::kMap;
  for (const char* key : {"a", "b", "n", "f", "s", "t", "arr", "m", "items"}) {
    if (r.Uniform(5) == 0) continue;  // missing
    const std::string k = key;
    J v;
    if (k == "arr" && r.Uniform(4) != 0) {
      v.k = J::kArr;
      const uint64_t n = r.Uniform(4);
      for (uint64_t i = 0; i < n; ++i) v.items.push_back(RandValue(r, 1));
    } else if (k == "m" && r.Uniform(4) != 0) {
      J m;
      m.k = J::kMap;
      m.fields.emplace_back("x", r.Uniform(3) ? RandValue(r, 1) : RandScalar(r));
      if (r.Uniform(2)) m.fields.emplace_back("y", RandValue(r, 1));
      if (r.Uniform(2)) m.fields.emplace_back("odd key", RandScalar(r));
      v = m;
    } else if (k == "items" && r.Uniform(4) != 0) {
      v.k = J::kArr;
      const uint64_t n = r.Uniform(3);
      for (uint64_t i = 0; i < n; ++i) {
        J item;
        item.k = J::kMap;
        if (r.Uniform(4)) item.fields.emplace_back("sku", RandScalar(r));
        v.items.push_back(item);
      }
    } else if (k == "n") {
      v = RandScalar(r);
      if (r.Uniform(2)) {
        v.k = J::kInt;
        v.i = IntPool()[r.Uniform(IntPool().size())];
      }
    } else {
      v = RandValue(r, 2);
    }
    rec.fields.emplace_back(k, std::move(v));
    if (r.Uniform(40) == 0) rec.fields.emplace_back(k, RandScalar(r));  // a duplicate key
  }
  return rec;
}

// ---- random expressions ----

Ex Leaf(test::Rng& r) {
  Ex e;
  if (r.Uniform(100) < 55) {
    e.op = Ex::kPath;
    e.path = static_cast<int>(r.Uniform(Paths().size()));
    return e;
  }
  e.op = Ex::kConst;
  switch (r.Uniform(10)) {
    case 0: e.value = Null(); break;
    case 1: e.value = Bool(r.Uniform(2) == 1); break;
    case 2:
    case 3:
    case 4: {
      int64_t v = IntPool()[r.Uniform(IntPool().size())];
      if (v == std::numeric_limits<int64_t>::min()) v = -5;  // cannot be written
      e.value = Int(v);
      break;
    }
    case 5:
    case 6: {
      double d = FloatPool()[r.Uniform(FloatPool().size())];
      if (!std::isfinite(d)) d = 0.25;  // cannot be written
      e.value = Float(d);
      break;
    }
    default: e.value = Str(RandString(r)); break;
  }
  return e;
}

Ex Gen(test::Rng& r, int depth) {
  if (depth == 0 || r.Uniform(10) < 2) return Leaf(r);
  Ex e;
  auto kids = [&](int n) {
    for (int i = 0; i < n; ++i) e.kids.push_back(Gen(r, depth - 1));
  };
  auto path_kid = [&] {
    Ex p;
    p.op = Ex::kPath;
    p.path = static_cast<int>(r.Uniform(Paths().size()));
    e.kids.push_back(p);
  };
  const uint64_t c = r.Uniform(27);
  switch (c) {
    case 0: e.op = Ex::kNot; kids(1); break;
    case 1: e.op = Ex::kNeg; kids(1); break;
    case 2: e.op = Ex::kOr; kids(2); break;
    case 3: e.op = Ex::kAnd; kids(2); break;
    case 4: e.op = Ex::kEq; kids(2); break;
    case 5: e.op = Ex::kNe; kids(2); break;
    case 6: e.op = Ex::kLt; kids(2); break;
    case 7: e.op = Ex::kLe; kids(2); break;
    case 8: e.op = Ex::kGt; kids(2); break;
    case 9: e.op = Ex::kGe; kids(2); break;
    case 10: e.op = Ex::kInList; kids(1 + static_cast<int>(r.Uniform(4))); break;
    case 11:
      e.op = Ex::kInPath;
      kids(1);
      e.path = static_cast<int>(r.Uniform(Paths().size()));
      break;
    case 12: e.op = Ex::kAdd; kids(2); break;
    case 13: e.op = Ex::kSub; kids(2); break;
    case 14: e.op = Ex::kMul; kids(2); break;
    case 15: e.op = Ex::kDiv; kids(2); break;
    case 16: e.op = Ex::kMod; kids(2); break;
    case 17:
      e.op = Ex::kExists;
      e.path = static_cast<int>(r.Uniform(Paths().size()));
      e.method = r.Uniform(2) == 1;
      break;
    case 18:
    case 19:
    case 20: {
      e.op = c == 18 ? Ex::kStartsWith : c == 19 ? Ex::kEndsWith : Ex::kContains;
      if (r.Uniform(2)) {
        path_kid();
        e.method = r.Uniform(2) == 1;
      } else {
        kids(1);
      }
      kids(1);
      break;
    }
    case 21:
    case 22:
    case 23: {
      e.op = c == 21 ? Ex::kLower : c == 22 ? Ex::kUpper : Ex::kLen;
      if (r.Uniform(2)) {
        path_kid();
        e.method = r.Uniform(2) == 1;
      } else {
        kids(1);
      }
      break;
    }
    default: {
      e.op = Ex::kMatches;
      e.pattern = static_cast<int>(r.Uniform(Patterns().size()));
      if (r.Uniform(3)) {
        path_kid();
        e.method = r.Uniform(2) == 1;
      } else {
        kids(1);
      }
      break;
    }
  }
  return e;
}

void Quote(const std::string& s, test::Rng& r, std::string* out) {
  const char q = r.Uniform(2) ? '"' : '\'';
  out->push_back(q);
  for (char c : s) {
    if (c == q || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else {
      out->push_back(c);
    }
  }
  out->push_back(q);
}

void Number(double d, std::string* out) {
  char buf[40];
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  std::string t(buf, res.ptr);
  if (t.find_first_of(".e") == std::string::npos) t += ".0";
  out->append(t);
}

// 0 ||, 1 &&, 2 comparisons and in, 3 + -, 4 * / %, 5 unary, 6 primary.
int Level(const Ex& e) {
  switch (e.op) {
    case Ex::kOr: return 0;
    case Ex::kAnd: return 1;
    case Ex::kEq: case Ex::kNe: case Ex::kLt: case Ex::kLe: case Ex::kGt: case Ex::kGe:
    case Ex::kInList: case Ex::kInPath: return 2;
    case Ex::kAdd: case Ex::kSub: return 3;
    case Ex::kMul: case Ex::kDiv: case Ex::kMod: return 4;
    case Ex::kNot: case Ex::kNeg: return 5;
    case Ex::kConst:
      // A negative number is written as unary minus.
      if (e.value.k == R::kInt && e.value.i < 0) return 5;
      if (e.value.k == R::kFloat && std::signbit(e.value.f)) return 5;
      return 6;
    default: return 6;
  }
}

// Writes `e` as source text, with the parentheses precedence needs and a
// few more at random.
void Print(const Ex& e, int min_level, test::Rng& r, std::string* out) {
  const bool paren = Level(e) < min_level || r.Uniform(10) == 0;
  if (paren) out->push_back('(');
  const bool tight = r.Uniform(3) == 0;  // no spaces around symbols
  auto binary = [&](const char* op, int left, int right) {
    Print(e.kids[0], left, r, out);
    out->append(tight ? "" : " ").append(op).append(tight ? "" : " ");
    Print(e.kids[1], right, r, out);
  };
  auto call = [&](const char* name, size_t first_arg) {
    out->append(name).push_back('(');
    for (size_t i = first_arg; i < e.kids.size(); ++i) {
      if (i > first_arg) out->append(", ");
      Print(e.kids[i], 0, r, out);
    }
  };
  auto func = [&](const char* name) {
    if (e.method) {
      out->append(Paths()[static_cast<size_t>(e.kids[0].path)].text).push_back('.');
      call(name, 1);
    } else {
      call(name, 0);
    }
  };
  switch (e.op) {
    case Ex::kConst:
      switch (e.value.k) {
        case R::kNull: out->append("null"); break;
        case R::kBool: out->append(e.value.b ? "true" : "false"); break;
        case R::kInt:
          if (e.value.i < 0) {
            out->append("-").append(std::to_string(-e.value.i));
          } else {
            out->append(std::to_string(e.value.i));
          }
          break;
        case R::kFloat:
          if (std::signbit(e.value.f)) out->push_back('-');
          Number(std::fabs(e.value.f), out);
          break;
        case R::kStr: Quote(e.value.s, r, out); break;
        default: break;
      }
      break;
    case Ex::kPath: out->append(Paths()[static_cast<size_t>(e.path)].text); break;
    case Ex::kNot: out->push_back('!'); Print(e.kids[0], 5, r, out); break;
    case Ex::kNeg: out->push_back('-'); Print(e.kids[0], 5, r, out); break;
    case Ex::kOr: binary("||", 0, 1); break;
    case Ex::kAnd: binary("&&", 1, 2); break;
    case Ex::kEq: binary("==", 3, 3); break;
    case Ex::kNe: binary("!=", 3, 3); break;
    case Ex::kLt: binary("<", 3, 3); break;
    case Ex::kLe: binary("<=", 3, 3); break;
    case Ex::kGt: binary(">", 3, 3); break;
    case Ex::kGe: binary(">=", 3, 3); break;
    case Ex::kInList:
      Print(e.kids[0], 3, r, out);
      out->append(" in [");
      for (size_t i = 1; i < e.kids.size(); ++i) {
        if (i > 1) out->append(tight ? "," : ", ");
        Print(e.kids[i], 0, r, out);
      }
      out->push_back(']');
      break;
    case Ex::kInPath:
      Print(e.kids[0], 3, r, out);
      out->append(" in ").append(Paths()[static_cast<size_t>(e.path)].text);
      break;
    case Ex::kAdd: binary("+", 3, 4); break;
    case Ex::kSub: binary("-", 3, 4); break;
    case Ex::kMul: binary("*", 4, 5); break;
    case Ex::kDiv: binary("/", 4, 5); break;
    case Ex::kMod: binary("%", 4, 5); break;
    case Ex::kExists: {
      const std::string& p = Paths()[static_cast<size_t>(e.path)].text;
      out->append(e.method ? p + ".exists()" : "exists(" + p + ")");
      break;
    }
    case Ex::kStartsWith: func("startsWith"); out->push_back(')'); break;
    case Ex::kEndsWith: func("endsWith"); out->push_back(')'); break;
    case Ex::kContains: func("contains"); out->push_back(')'); break;
    case Ex::kLower: func("lower"); out->push_back(')'); break;
    case Ex::kUpper: func("upper"); out->push_back(')'); break;
    case Ex::kLen: func("len"); out->push_back(')'); break;
    case Ex::kMatches:
      func("matches");
      if (!e.method) out->append(", ");
      Quote(Patterns()[static_cast<size_t>(e.pattern)].re, r, out);
      out->push_back(')');
      break;
  }
  if (paren) out->push_back(')');
}

// The record as JSON, but exact: floats always look like floats, and NaN,
// infinities, uint64 and binary are spelled out (plain JSON would blur them).
void Show(const J& j, std::string* out) {
  switch (j.k) {
    case J::kNull: out->append("null"); break;
    case J::kBool: out->append(j.b ? "true" : "false"); break;
    case J::kInt: out->append(std::to_string(j.i)); break;
    case J::kBigUint: out->append(std::to_string(j.u)).append("u"); break;
    case J::kFloat: {
      std::string t = FloatText(j.f);
      if (std::isfinite(j.f) && t.find_first_of(".e") == std::string::npos) t += ".0";
      out->append(t);
      break;
    }
    case J::kStr: sinks::AppendJsonString(j.s, out); break;
    case J::kBin:
      out->append("bin(");
      sinks::AppendJsonString(j.s, out);
      out->append(")");
      break;
    case J::kArr:
      out->push_back('[');
      for (size_t i = 0; i < j.items.size(); ++i) {
        if (i) out->push_back(',');
        Show(j.items[i], out);
      }
      out->push_back(']');
      break;
    case J::kMap:
      out->push_back('{');
      for (size_t i = 0; i < j.fields.size(); ++i) {
        if (i) out->push_back(',');
        sinks::AppendJsonString(j.fields[i].first, out);
        out->push_back(':');
        Show(j.fields[i].second, out);
      }
      out->push_back('}');
      break;
  }
}

std::string Show(const J& j) {
  std::string s;
  Show(j, &s);
  return s;
}

std::string DescribeRef(const R& v) {
  switch (v.k) {
    case R::kMissing: return "missing";
    case R::kNull: return "null";
    case R::kBool: return v.b ? "true" : "false";
    case R::kInt: return "int " + std::to_string(v.i);
    case R::kFloat: return "float " + FloatText(v.f);
    case R::kStr: return "str " + v.s;
    case R::kRaw: {
      const std::string bytes = Encoded(*v.raw);
      return "raw " + JsonOf(U8(bytes));
    }
  }
  return "?";
}

bool Same(const Val& got, const R& want) {
  switch (want.k) {
    case R::kMissing: return got.t == Val::T::kMissing;
    case R::kNull: return got.t == Val::T::kNull;
    case R::kBool: return got.t == Val::T::kBool && got.b == want.b;
    case R::kInt: return got.t == Val::T::kInt && got.i == want.i;
    case R::kFloat:
      return got.t == Val::T::kFloat &&
             (got.f == want.f || (std::isnan(got.f) && std::isnan(want.f)));
    case R::kStr: return got.t == Val::T::kStr && got.s == want.s;
    case R::kRaw:
      return got.t == Val::T::kRaw && std::string_view(reinterpret_cast<const char*>(got.raw.data),
                                                       got.raw.size) == Encoded(*want.raw);
  }
  return false;
}

}  // namespace

TEST_CASE("the evaluator agrees with a reference on random records and expressions",
          "[transforms][expr]") {
  test::Rng rng(20261121);
  constexpr int kRecords = 2000;
  constexpr int kExprsPerRecord = 5;
  int cases = 0, true_results = 0, by_kind[7] = {};
  Doc doc;
  Arena scratch;
  for (int ri = 0; ri < kRecords; ++ri) {
    const J rec = RandRecord(rng);
    const std::string bytes = Encoded(rec);
    doc.Load(U8(bytes), bytes.size());
    for (int ei = 0; ei < kExprsPerRecord; ++ei) {
      const Ex e = Gen(rng, 1 + static_cast<int>(rng.Uniform(4)));
      std::string src;
      Print(e, 0, rng, &src);
      Program p;
      std::string error;
      size_t col = 0;
      if (!Program::Compile(src, &p, &error, &col)) {
        FAIL("does not compile: " << src << "\n" << error << " at column " << col);
      }
      scratch.Reset();
      const Val got = p.Eval(doc, &scratch);
      const R want = Eval(e, rec);
      if (!Same(got, want)) {
        FAIL("expression: " << src << "\nrecord: " << Show(rec)
                            << "\nevaluator: " << Describe(got) << "\nreference: "
                            << DescribeRef(want));
      }
      ++cases;
      ++by_kind[static_cast<int>(want.k)];
      if (want.k == R::kBool && want.b) ++true_results;
    }
  }
  CHECK(cases == kRecords * kExprsPerRecord);
  // The cases must be varied enough to mean something.
  CHECK(true_results > cases / 20);
  for (int k = 0; k < 7; ++k) {
    INFO("results of kind " << k << ": " << by_kind[k]);
    CHECK(by_kind[k] > cases / 200);
  }
}

}  // namespace forkd::transforms::expr
