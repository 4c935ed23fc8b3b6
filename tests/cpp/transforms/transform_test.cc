// Transform chains: every built-in step parsed from YAML and run on a record
// loaded from msgpack, the record compared as JSON afterwards; every kind of
// config mistake reported as "key.path: message" at the right line and
// column; and templates referenced by name.
#include "transforms/transform.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "sinks/common/json.h"
#include "test_util.h"
#include "transforms/chain_util.h"
#include "transforms/aggregate.h"
#include "transforms/expr.h"
#include "transforms/yaml_value.h"

namespace forkd::transforms {
namespace {

using test_chain::PackYaml;
using test_chain::Parse;
using test_chain::Parsed;
using test_chain::Templates;

using test::U8;

constexpr int64_t kRecvUs = 1795256100123000;  // 2026-11-21T10:15:00.123Z

Chain MustParse(const std::string& yaml, const Templates* templates = nullptr) {
  Parsed p = Parse(yaml, templates);
  INFO(yaml << "\n" << p.All());
  REQUIRE(p.ok);
  REQUIRE(p.errors.empty());
  return std::move(p.chain);
}

struct Result {
  Outcome outcome = Outcome::kKeep;
  std::string json;    // the record after the steps
  std::string reason;  // ctx.reason
  std::string bytes;   // the record as msgpack

  // The kind of the value at `path` in the result: int, float, str, ...
  std::string KindAt(const std::string& path) const {
    Path p;
    std::string error;
    REQUIRE(ParsePath(path, &p, &error));
    Doc d;
    d.Load(U8(bytes), bytes.size());
    switch (expr::FromRaw(d.Lookup(p)).t) {
      case expr::Val::T::kMissing: return "missing";
      case expr::Val::T::kNull: return "null";
      case expr::Val::T::kBool: return "bool";
      case expr::Val::T::kInt: return "int";
      case expr::Val::T::kFloat: return "float";
      case expr::Val::T::kStr: return "str";
      case expr::Val::T::kRaw: return "raw";
    }
    return "?";
  }
};

// Runs the chain's steps on a msgpack payload.
Result RunBytes(const Chain& chain, const std::string& payload, int64_t recv_us = kRecvUs) {
  Doc doc;
  doc.Load(U8(payload), payload.size());
  Arena scratch;
  StepContext ctx;
  ctx.doc = &doc;
  ctx.scratch = &scratch;
  ctx.recv_us = recv_us;
  ctx.event_id = "e1";
  Result r;
  r.outcome = RunSteps(chain.pre, &ctx);
  r.reason = ctx.reason;
  wire::Buffer out;
  doc.Serialize(&out);
  size_t used = 0;
  REQUIRE(wire::CheckValue(out.data(), out.size(), wire::Limits{}, &used).ok);
  REQUIRE(used == out.size());
  r.bytes.assign(out.view());
  sinks::AppendJson(out.data(), &r.json);
  return r;
}

// Parses `steps` and runs them on `record` (YAML or JSON).
Result Run(const std::string& steps, const std::string& record, int64_t recv_us = kRecvUs) {
  const Chain chain = MustParse(steps);
  return RunBytes(chain, PackYaml(record), recv_us);
}

// Expects exactly one error, `message`, at line:col of the YAML text.
void ExpectError(const std::string& yaml, int line, int col, const std::string& message,
                 const Templates* templates = nullptr) {
  const Parsed p = Parse(yaml, templates);
  INFO("yaml:\n" << yaml << "errors:\n" << p.All());
  CHECK_FALSE(p.ok);
  REQUIRE(p.errors.size() == 1);
  CHECK(p.errors[0].message == message);
  CHECK(p.errors[0].file == "fork.yaml");
  CHECK(p.errors[0].mark.line == line);
  CHECK(p.errors[0].mark.column == col);
  CHECK(p.errors[0].ToString() ==
        "fork.yaml:" + std::to_string(line) + ":" + std::to_string(col) + ": " + message);
}

}  // namespace

// ---- each step ----

TEST_CASE("timestamp: the receipt time, or a time copied from a field", "[transforms]") {
  Result r = Run("- timestamp: true", "{a: 1}");
  CHECK(r.outcome == Outcome::kKeep);
  CHECK(r.json == R"({"a":1,"timestamp":"2026-11-21T10:15:00.123Z"})");
  CHECK(Run("- timestamp:", "{a: 1}").json == R"({"a":1,"timestamp":"2026-11-21T10:15:00.123Z"})");

  r = Run("- timestamp: {field: meta.ts, format: epoch_ms}", "{a: 1, meta: {v: 2}}");
  CHECK(r.json == R"({"a":1,"meta":{"v":2,"ts":1795256100123}})");
  CHECK(r.KindAt("meta.ts") == "int");

  // Replaces a field that is there, in place.
  r = Run("- timestamp: {field: ts}", "{ts: old, b: 1}");
  CHECK(r.json == R"({"ts":"2026-11-21T10:15:00.123Z","b":1})");

  // Copied and normalized from ISO text with an offset, epoch ms, a date.
  r = Run("- timestamp: {from: when}", "{when: '2026-11-21T12:15:00+02:00'}");
  CHECK(r.json == R"({"when":"2026-11-21T12:15:00+02:00","timestamp":"2026-11-21T10:15:00.000Z"})");
  r = Run("- timestamp: {from: when, field: when}", "{when: '2026-11-21T10:15:00.5-01:30'}");
  CHECK(r.json == R"({"when":"2026-11-21T11:45:00.500Z"})");
  r = Run("- timestamp: {from: ts, field: ts}", "{ts: 1795219200000}");
  CHECK(r.json == R"({"ts":"2026-11-21T00:00:00.000Z"})");
  r = Run("- timestamp: {from: d, field: d, format: epoch_ms}", "{d: '2026-11-21'}");
  CHECK(r.json == R"({"d":1795219200000})");
  r = Run("- timestamp: {from: e.t, field: t}", "{e: {t: '2026-11-21 10:15:00'}}");
  CHECK(r.json == R"({"e":{"t":"2026-11-21 10:15:00"},"t":"2026-11-21T10:15:00.000Z"})");

  // The msgpack timestamp extension.
  const Chain ts = MustParse("- timestamp: {from: at, field: at}");
  const std::string payload = test::Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("at");
    w.Timestamp(1795256100, 500000000);
  });
  CHECK(RunBytes(ts, payload).json == R"({"at":"2026-11-21T10:15:00.500Z"})");

  // A missing `from` falls back to the receipt time.
  r = Run("- timestamp: {from: when}", "{a: 1}");
  CHECK(r.outcome == Outcome::kKeep);
  CHECK(r.json == R"({"a":1,"timestamp":"2026-11-21T10:15:00.123Z"})");

  // One that is not a time dead-letters the record, with the reason.
  for (const char* bad : {"{when: yesterday}", "{when: [1]}", "{when: '2026-13-01'}",
                          "{when: true}"}) {
    INFO(bad);
    r = Run("- timestamp: {from: when}", bad);
    CHECK(r.outcome == Outcome::kDeadLetter);
    CHECK(r.reason == "timestamp: when is not a time (expected epoch milliseconds or ISO-8601 text)");
  }
}

TEST_CASE("select keeps only the listed fields, in order", "[transforms]") {
  CHECK(Run("- select: [b, a, nope]", "{a: 1, b: 2, c: 3}").json == R"({"b":2,"a":1})");
  CHECK(Run("- select: a", "{a: 1, b: 2}").json == R"({"a":1})");
  CHECK(Run("- select: [id, user.email]", "{id: 1, user: {email: a@x, name: Ann}, extra: 2}").json ==
        R"({"id":1,"user":{"email":"a@x"}})");
  CHECK(Run("- select: [user.email, user.name]", "{user: {name: Ann, age: 3, email: e}}").json ==
        R"({"user":{"email":"e","name":"Ann"}})");
  CHECK(Run("- select: [user.phone, id]", "{id: 1, user: {email: e}}").json == R"({"id":1})");
  CHECK(Run("- select: [nope]", "{id: 1}").json == "{}");
}

TEST_CASE("drop removes fields, nested ones too", "[transforms]") {
  CHECK(Run("- drop: [password, user.ssn, nope, user.nope.deeper, 'items[0]']",
            "{id: 1, password: x, user: {ssn: 1, name: A}, items: [1, 2]}")
            .json == R"({"id":1,"user":{"name":"A"},"items":[2]})");
  CHECK(Run("- drop: id", "{id: 1, b: 2}").json == R"({"b":2})");
  CHECK(Run("- drop: ['items[0].sku']", "{items: [{sku: 1, q: 2}]}").json == R"({"items":[{"q":2}]})");
}

TEST_CASE("rename: in place within a map, or a move", "[transforms]") {
  // Same map: the field keeps its place.
  CHECK(Run("- rename: {uid: user_id}", "{a: 1, uid: 7, b: 2}").json == R"({"a":1,"user_id":7,"b":2})");
  CHECK(Run("- rename: {m.old: m.new}", "{m: {old: 1, k: 2}}").json == R"({"m":{"new":1,"k":2}})");
  // Elsewhere: the value moves; missing maps are created.
  CHECK(Run("- rename: {user.email: contact.email}", "{user: {email: e, name: n}}").json ==
        R"({"user":{"name":"n"},"contact":{"email":"e"}})");
  CHECK(Run("- rename: {email: user.email}", "{email: e, user: {id: 1}}").json ==
        R"({"user":{"id":1,"email":"e"}})");
  CHECK(Run("- rename: {user.id: uid}", "{user: {id: 1}}").json == R"({"user":{},"uid":1})");
  // An existing target is replaced.
  CHECK(Run("- rename: {a: b}", "{a: 1, b: 2}").json == R"({"b":1})");
  CHECK(Run("- rename: {m.a: m.b}", "{m: {a: 1, b: 2}}").json == R"({"m":{"b":1}})");
  // A missing source changes nothing, whether or not the target exists.
  CHECK(Run("- rename: {a: b}", "{b: 2}").json == R"({"b":2})");
  CHECK(Run("- rename: {m.a: m.b}", "{m: {b: 2}}").json == R"({"m":{"b":2}})");
  CHECK(Run("- rename: {x.a: y.b}", "{y: {b: 2}}").json == R"({"y":{"b":2}})");
  // Renaming a field to its own name keeps it.
  CHECK(Run("- rename: {a: a}", "{a: 1}").json == R"({"a":1})");
  CHECK(Run("- rename: {m.a: m.a}", "{m: {a: 1}}").json == R"({"m":{"a":1}})");
  // Several pairs, in order.
  CHECK(Run("- rename: {a: b, b: c}", "{a: 1}").json == R"({"c":1})");
}

TEST_CASE("set: constants and computed values", "[transforms]") {
  Result r = Run(
      "- set: {source: web, meta.version: 2, flags: [1, two], quoted: '123', nothing: null, "
      "ratio: 0.5, obj: {expr: 1, other: 2}}",
      "{a: 1, meta: {x: 1}}");
  CHECK(r.json ==
        R"({"a":1,"meta":{"x":1,"version":2},"source":"web","flags":[1,"two"],"quoted":"123",)"
        R"("nothing":null,"ratio":0.5,"obj":{"expr":1,"other":2}})");
  CHECK(r.KindAt("quoted") == "str");
  CHECK(Run("- set: {a: 2}", "{a: 1, b: 1}").json == R"({"a":2,"b":1})");
  CHECK(Run("- set: {x.y.z: 1}", "{}").json == R"({"x":{"y":{"z":1}}})");

  r = Run(
      "- set:\n"
      "    cents: {expr: 'amount * 100'}\n"
      "    label: {expr: \"lower(user.name) + '!'\"}\n"
      "    big: {expr: 'amount > 2'}\n"
      "    nope: {expr: missing}\n"
      "    user.initial: {expr: 'user.name'}\n"
      "    qty: {expr: 'qty + 1'}\n",
      "{amount: 2.5, qty: 1, user: {name: ANN}}");
  CHECK(r.json ==
        R"({"amount":2.5,"qty":2,"user":{"name":"ANN","initial":"ANN"},"cents":250,"label":"ann!",)"
        R"("big":true,"nope":null})");
  CHECK(r.KindAt("cents") == "float");
  CHECK(r.KindAt("qty") == "int");

  // A computed value sees the values set before it in the same step.
  CHECK(Run("- set: {a: 5, b: {expr: 'a * 2'}}", "{}").json == R"({"a":5,"b":10})");

  ::setenv("FORK_TRANSFORM_TEST_REGION", "eu-west", 1);
  CHECK(Run("- set: {region: '${FORK_TRANSFORM_TEST_REGION}'}", "{}").json == R"({"region":"eu-west"})");
  ::unsetenv("FORK_TRANSFORM_TEST_REGION");
}

TEST_CASE("cast converts values, or dead-letters the record", "[transforms]") {
  Result r = Run(
      "- cast: {a: int, b: float, c: string, d: bool, e: int, f: integer, g: number, h: str, "
      "i: boolean, nested.v: float, j: int, k: string, l: int, missing: int}",
      "{a: '42', b: '2.5', c: 7, d: 'yes', e: 3.9, f: true, g: 3, h: 2.5, i: 0, nested: {v: ' 8 '}, "
      "j: '-1e3', k: {x: [1]}, l: -2.7}");
  CHECK(r.outcome == Outcome::kKeep);
  CHECK(r.json ==
        R"({"a":42,"b":2.5,"c":"7","d":true,"e":3,"f":1,"g":3,"h":"2.5","i":false,)"
        R"("nested":{"v":8},"j":-1000,"k":"{\"x\":[1]}","l":-2})");
  CHECK(r.KindAt("a") == "int");
  CHECK(r.KindAt("g") == "float");
  CHECK(r.KindAt("nested.v") == "float");
  CHECK(r.KindAt("j") == "int");
  CHECK(r.KindAt("missing") == "missing");

  r = Run("- cast: {s: string, b: bool, n: bool, z: bool}", "{s: x, b: false, n: 0.5, z: 'no'}");
  CHECK(r.json == R"({"s":"x","b":false,"n":true,"z":false})");

  struct Bad {
    const char* steps;
    const char* record;
    const char* reason;
  };
  for (const Bad& b : std::vector<Bad>{
           {"- cast: {total: int}", "{total: abc}", "cast: total: cannot convert 'abc' to int"},
           {"- cast: {o.total: float}", "{o: {total: '1,5'}}", "cast: o.total: cannot convert '1,5' to float"},
           {"- cast: {t: int}", "{t: 1e30}", "cast: t: cannot convert '1e+30' to int"},
           {"- cast: {t: int}", "{t: {k: 1}}", "cast: t: cannot convert '{\"k\":1}' to int"},
           {"- cast: {t: int}", "{t: ''}", "cast: t: cannot convert '' to int"},
           {"- cast: {t: float}", "{t: [1]}", "cast: t: cannot convert '[1]' to float"},
           {"- cast: {flag: bool}", "{flag: maybe}", "cast: flag: cannot convert 'maybe' to bool"},
       }) {
    INFO(b.steps << " on " << b.record);
    r = Run(b.steps, b.record);
    CHECK(r.outcome == Outcome::kDeadLetter);
    CHECK(r.reason == b.reason);
  }
  // A long value is cut short in the reason.
  r = Run("- cast: {t: int}", "{t: '" + std::string(100, 'x') + "'}");
  CHECK(r.outcome == Outcome::kDeadLetter);
  CHECK(r.reason == "cast: t: cannot convert '" + std::string(61, 'x') + "...' to int");
  // The first failure stops the step: later fields are not converted.
  r = Run("- cast: {a: int, b: int}", "{a: x, b: '2'}");
  CHECK(r.outcome == Outcome::kDeadLetter);
  CHECK(r.json == R"({"a":"x","b":"2"})");
}

TEST_CASE("redact removes or masks fields", "[transforms]") {
  CHECK(Run("- redact: [password, user.ssn, nope]", "{id: 1, password: p, user: {ssn: 1, name: A}}").json ==
        R"({"id":1,"user":{"name":"A"}})");
  CHECK(Run("- redact: {fields: card}", "{card: 4111, b: 1}").json == R"({"b":1})");
  CHECK(Run("- redact: {fields: [password, user.ssn, nope, user.nope], mask: '***'}",
            "{password: p, user: {ssn: 123, name: A}}")
            .json == R"({"password":"***","user":{"ssn":"***","name":"A"}})");
  CHECK(Run("- redact: {fields: [m], mask: '[redacted]'}", "{m: {a: [1, 2]}}").json ==
        R"({"m":"[redacted]"})");
}

TEST_CASE("hash replaces values with the hex SHA-256 of salt + text", "[transforms]") {
  // Computed independently: printf 'salt42' | sha256sum, and so on.
  Result r = Run("- hash: {fields: [user_id, email, nope, nothing, flag, ratio, list], salt: salt}",
                 "{user_id: 42, email: 'a@x', nothing: null, flag: true, ratio: 2.5, list: [1, 2]}");
  CHECK(r.json ==
        R"({"user_id":"ba5bf48c9d94fef61432ae21b346d1307be9476c9c8e98d111366abbb69d45cd",)"
        R"("email":"7386546b560098e01fda7bce5e99c05f0155fb6107af145541dc15966849002a",)"
        R"("nothing":null,)"
        R"("flag":"910bee3e76f3b98a4296add95da6a6ea236b3313a02506cdc9e1ef0e7ce048c8",)"
        R"("ratio":"f739f2733b8ff013760d4c1ec22d7cd9a4b32c5e3c75ef732d894ee0601f31c4",)"
        R"("list":"0db63d7a102c86ef8f303c08220edfe5ec1c84addacdeb3dd987c8292148f8b6"})");
  CHECK(Run("- hash: [name]", "{name: bob}").json ==
        R"({"name":"81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9"})");
  CHECK(Run("- hash: {fields: user.email, salt: pepper}", "{user: {email: alice@example.com, id: 1}}").json ==
        R"({"user":{"email":"8b8d9adc4875c0dca816e3e17b7ac87b45e40945b731fa02e3b42bf101589e21","id":1}})");
  CHECK(Run("- hash: {fields: [m], salt: salt}", "{m: {a: 1}}").json ==
        R"({"m":"38df60ba354b2e5e7df624bb10feb2b4b8b465ef6523fd28e321b537cba57566"})");
  // The same value hashes the same in the same step and the next record.
  const Chain c = MustParse("- hash: {fields: [a, b], salt: salt}");
  const Result x = RunBytes(c, PackYaml("{a: 42, b: '42'}"));
  CHECK(x.json ==
        R"({"a":"ba5bf48c9d94fef61432ae21b346d1307be9476c9c8e98d111366abbb69d45cd",)"
        R"("b":"ba5bf48c9d94fef61432ae21b346d1307be9476c9c8e98d111366abbb69d45cd"})");
}

TEST_CASE("filter keeps the records for which the expression is true", "[transforms]") {
  const Chain c = MustParse("- filter: 'amount > 10 && user.country in [\"DE\", \"FR\"]'");
  CHECK(RunBytes(c, PackYaml("{amount: 20, user: {country: DE}}")).outcome == Outcome::kKeep);
  CHECK(RunBytes(c, PackYaml("{amount: 10.5, user: {country: FR}}")).outcome == Outcome::kKeep);
  CHECK(RunBytes(c, PackYaml("{amount: 5, user: {country: DE}}")).outcome == Outcome::kDrop);
  CHECK(RunBytes(c, PackYaml("{amount: 20, user: {country: US}}")).outcome == Outcome::kDrop);
  CHECK(RunBytes(c, PackYaml("{amount: 20}")).outcome == Outcome::kDrop);
  CHECK(RunBytes(c, PackYaml("{amount: '20', user: {country: DE}}")).outcome == Outcome::kDrop);
  const Result r = RunBytes(c, PackYaml("{amount: 5}"));
  CHECK(r.reason.empty());

  // A dropped record stops the chain; steps before it did their work.
  const Chain chain = MustParse(
      "- set: {cents: {expr: 'amount * 100'}}\n"
      "- filter: cents >= 1000\n"
      "- set: {passed: true}\n");
  CHECK(RunBytes(chain, PackYaml("{amount: 12}")).json == R"({"amount":12,"cents":1200,"passed":true})");
  const Result dropped = RunBytes(chain, PackYaml("{amount: 2}"));
  CHECK(dropped.outcome == Outcome::kDrop);
  CHECK(dropped.json == R"({"amount":2,"cents":200})");
}

TEST_CASE("validate: required, types, ranges, enums, patterns", "[transforms]") {
  const std::string checks =
      "- validate:\n"
      "    required: [id, user.email]\n"
      "    types: {id: integer, name: string, tags: array, meta: object, flag: boolean, "
      "score: number, nil: null}\n"
      "    ranges: {amount: {min: 0, max: 100}, score: {min: 0.5}}\n"
      "    enums: {currency: [EUR, USD], level: [1, 2]}\n"
      "    patterns: {user.email: '^[^@]+@[^@]+$'}\n";
  const Chain c = MustParse(checks);

  const std::string good =
      "{id: 1, name: Ann, tags: [], meta: {}, flag: true, score: 0.5, nil: null, amount: 100, "
      "currency: EUR, level: 2.0, user: {email: a@x}}";
  Result r = RunBytes(c, PackYaml(good));
  CHECK(r.outcome == Outcome::kKeep);
  CHECK(r.reason.empty());
  CHECK(r.bytes == PackYaml(good));
  // Optional fields may be missing; an integer may be written as 3.0, or 1e300.
  r = RunBytes(c, PackYaml("{id: 3.0, user: {email: b@y}}"));
  CHECK(r.outcome == Outcome::kKeep);
  r = RunBytes(c, PackYaml("{id: 1e300, user: {email: b@y}}"));
  CHECK(r.outcome == Outcome::kKeep);
  for (const char* id : {"-2.5", ".nan", ".inf", "'1'"}) {
    INFO(id);
    r = RunBytes(c, PackYaml(std::string("{id: ") + id + ", user: {email: b@y}}"));
    CHECK(r.outcome == Outcome::kDeadLetter);
    CHECK(r.reason.find("validate: id: expected integer, got ") == 0);
  }
  // `null` as a type, written plainly, quoted or left empty.
  for (const char* t : {"null", "'null'", "~"}) {
    INFO(t);
    const Chain n = MustParse(std::string("- validate: {types: {x: ") + t + "}}");
    CHECK(RunBytes(n, PackYaml("{x: null}")).outcome == Outcome::kKeep);
    CHECK(RunBytes(n, PackYaml("{x: 0}")).reason == "validate: x: expected null, got integer");
  }

  r = RunBytes(c, PackYaml("{id: 1.5, name: 3, amount: 150, currency: GBP, level: 3, "
                           "user: {email: nope}, tags: {}, meta: [], flag: 1, score: 0.25, nil: 0}"));
  CHECK(r.outcome == Outcome::kDeadLetter);
  CHECK(r.reason ==
        "validate: id: expected integer, got float; name: expected string, got integer; "
        "tags: expected array, got object; meta: expected object, got array; "
        "flag: expected boolean, got integer; nil: expected null, got integer; "
        "amount: 150 is outside [0, 100]; score: 0.25 is outside [0.5, ]; "
        "currency: 'GBP' is not one of the allowed values; level: '3' is not one of the allowed values; "
        "user.email: does not match /^[^@]+@[^@]+$/");

  r = RunBytes(c, PackYaml("{id: null, user: {name: x}}"));
  CHECK(r.outcome == Outcome::kDeadLetter);
  // null is missing for `required`, and not an integer for `types`.
  CHECK(r.reason ==
        "validate: id: required field is missing; user.email: required field is missing; "
        "id: expected integer, got null");
  r = RunBytes(c, PackYaml("{id: 1, user: {email: 5}, amount: x, score: '1'}"));
  CHECK(r.reason ==
        "validate: score: expected number, got string; amount: expected a number, got string; "
        "score: expected a number, got string; "
        "user.email: expected a string to match /^[^@]+@[^@]+$/, got integer");
  r = RunBytes(c, PackYaml("{id: 1, user: {email: a@b}, amount: -0.5}"));
  CHECK(r.reason == "validate: amount: -0.5 is outside [0, 100]");
  r = RunBytes(c, PackYaml("{id: 1, user: {email: a@b}, amount: .nan}"));
  CHECK(r.outcome == Outcome::kDeadLetter);
  CHECK(r.reason.find("validate: amount: ") == 0);
  CHECK(r.reason.find(" is outside [0, 100]") != std::string::npos);
}

TEST_CASE("validate: on_fail dead_letter, drop or flag", "[transforms]") {
  const std::string rec = "{id: x, user: {email: e}}";
  const std::string want = "validate: id: expected integer, got string";
  Result r = Run("- validate: {types: {id: integer}}", rec);
  CHECK(r.outcome == Outcome::kDeadLetter);
  CHECK(r.reason == want);
  r = Run("- validate: {types: {id: integer}, on_fail: dead_letter}", rec);
  CHECK(r.outcome == Outcome::kDeadLetter);
  CHECK(r.reason == want);

  r = Run("- validate: {types: {id: integer}, on_fail: drop}\n- set: {after: 1}", rec);
  CHECK(r.outcome == Outcome::kDrop);
  CHECK(r.json == R"({"id":"x","user":{"email":"e"}})");

  r = Run("- validate: {types: {id: integer}, on_fail: flag}\n- set: {after: 1}", rec);
  CHECK(r.outcome == Outcome::kKeep);
  CHECK(r.reason.empty());
  CHECK(r.json == R"({"id":"x","user":{"email":"e"},"_fork_invalid":")" + want + R"(","after":1})");

  r = Run("- validate: {types: {id: integer}, on_fail: flag, flag_field: meta.error}", rec);
  CHECK(r.outcome == Outcome::kKeep);
  CHECK(r.json == R"({"id":"x","user":{"email":"e"},"meta":{"error":")" + want + R"("}})");

  // A record that passes is not flagged.
  r = Run("- validate: {types: {id: integer}, on_fail: flag}", "{id: 1}");
  CHECK(r.json == R"({"id":1})");
}

TEST_CASE("template writes text with {path} placeholders", "[transforms]") {
  Result r = Run(
      "- template: {field: summary, value: '{user.name} bought {items[0].sku} for {amount} {{EUR}} "
      "{nope}!'}",
      "{user: {name: Ann}, items: [{sku: A1}], amount: 9.5}");
  CHECK(r.json ==
        R"({"user":{"name":"Ann"},"items":[{"sku":"A1"}],"amount":9.5,"summary":"Ann bought A1 for 9.5 {EUR} !"})");
  r = Run("- template: {field: meta.text, value: '{ user.name } {flag}/{n}/{obj}/{arr[1]} }}{{'}",
          "{user: {name: Bo}, flag: true, n: null, obj: {k: [1]}, arr: [x, y], meta: {v: 1}}");
  CHECK(r.json ==
        R"({"user":{"name":"Bo"},"flag":true,"n":null,"obj":{"k":[1]},"arr":["x","y"],)"
        R"("meta":{"v":1,"text":"Bo true//{\"k\":[1]}/y }{"}})");
  r = Run("- template: {field: t, value: 'no placeholders'}", "{t: old}");
  CHECK(r.json == R"({"t":"no placeholders"})");
  r = Run("- template: {field: t, value: '{m[\"odd key\"]}-{a}{a}'}", "{a: 1, m: {'odd key': z}}");
  CHECK(r.json == R"({"a":1,"m":{"odd key":"z"},"t":"z-11"})");
}

TEST_CASE("steps run in order, each seeing the last one's output", "[transforms]") {
  const Chain c = MustParse(
      "- rename: {uid: user.id}\n"
      "- set: {user.tier: {expr: 'len(orders) > 2'}}\n"
      "- hash: {fields: [user.id], salt: salt}\n"
      "- drop: [orders]\n"
      "- template: {field: msg, value: 'tier {user.tier}'}\n"
      "- select: [user.id, msg]\n");
  CHECK(c.pre.size() == 6);
  CHECK(!c.aggregate);
  CHECK(c.post.empty());
  CHECK(c.pre[0]->kind() == "rename");
  CHECK(c.pre[5]->kind() == "select");
  const Result r = RunBytes(c, PackYaml("{uid: 42, orders: [1, 2, 3], junk: 1}"));
  CHECK(r.json ==
        R"({"user":{"id":"ba5bf48c9d94fef61432ae21b346d1307be9476c9c8e98d111366abbb69d45cd"},)"
        R"("msg":"tier true"})");
  // The same chain on many records: nothing of one leaks into the next.
  for (int i = 0; i < 100; ++i) {
    const Result x = RunBytes(c, PackYaml("{uid: 42, orders: [" + std::string(i % 2 ? "1" : "1, 2, 3") + "]}"));
    CHECK(x.json.find(i % 2 ? "tier false" : "tier true") != std::string::npos);
  }
}

// ---- templates by name ----

TEST_CASE("a chain may name templates between inline steps", "[transforms]") {
  Templates templates;
  templates["clean"] = MustParse("- drop: [password]\n- rename: {uid: user_id}\n");
  templates["tag"] = MustParse("- set: {source: web}\n");
  const Chain c = MustParse("- clean\n- set: {x: 1}\n- tag\n- clean\n", &templates);
  CHECK(c.pre.size() == 6);
  CHECK(!c.aggregate);
  const Result r = RunBytes(c, PackYaml("{uid: 1, password: p, a: 2}"));
  CHECK(r.json == R"({"user_id":1,"a":2,"x":1,"source":"web"})");

  // A template that aggregates: its steps before the aggregate join this
  // chain's, the steps after it (and this chain's later ones) shape the rows.
  templates["daily"] = MustParse(
      "- filter: ok\n"
      "- aggregate: {group_by: [k]}\n"
      "- set: {y: 1}\n");
  const Chain d = MustParse("- set: {a: 1}\n- daily\n- set: {z: 2}\n", &templates);
  REQUIRE(d.aggregate);
  REQUIRE(d.pre.size() == 2);
  CHECK(d.pre[0]->kind() == "set");
  CHECK(d.pre[1]->kind() == "filter");
  REQUIRE(d.post.size() == 2);
  CHECK(d.aggregate->group_by.size() == 1);
  CHECK(RunBytes(Chain{d.post, nullptr, {}}, PackYaml("{k: 1}")).json == R"({"k":1,"y":1,"z":2})");

  // An inline aggregate and one from a template: one too many.
  ExpectError("- daily\n- aggregate: {group_by: [k]}\n", 2, 3,
              "transforms.t[1]: a chain has at most one aggregate step", &templates);
  ExpectError("- aggregate: {group_by: [k]}\n- daily\n", 2, 3,
              "transforms.t[1]: template 'daily' aggregates, and this chain already has an "
              "aggregate step; a chain has at most one",
              &templates);
  ExpectError("- clean\n- clena\n", 2, 3,
              "transforms.t[1]: unknown transform template 'clena' (did you mean 'clean'?)", &templates);
}

// ---- config mistakes ----

TEST_CASE("bad transform config: each message starts with the key path, at the right place",
          "[transforms]") {
  ExpectError("- rename: {a: b}\n- renam: {a: b}\n", 2, 3,
              "transforms.t[1]: unknown step 'renam' (did you mean 'rename'?)");
  ExpectError("- flter: x\n", 1, 3, "transforms.t[0]: unknown step 'flter' (did you mean 'filter'?)");
  ExpectError("- {rename: {a: b}, drop: [c]}\n", 1, 3,
              "transforms.t[0]: a step is a map with exactly one key, the step's name (one of "
              "timestamp, select, drop, rename, set, cast, redact, hash, filter, validate, "
              "template, aggregate)");
  ExpectError("- [a]\n", 1, 3,
              "transforms.t[0]: a step is a map with exactly one key, the step's name (one of "
              "timestamp, select, drop, rename, set, cast, redact, hash, filter, validate, "
              "template, aggregate)");
  ExpectError("{rename: {a: b}}\n", 1, 1,
              "transforms.t: expected a list of steps (each a one-key map like {rename: {a: b}}) "
              "or template names");
  ExpectError("- validate:\n    required: [a]\n    on_fial: drop\n", 3, 5,
              "transforms.t[0].validate: unknown option 'on_fial' (did you mean 'on_fail'?)");
  ExpectError("- hash: {fields: [a], salt: x, pepper: y}\n", 1, 32,
              "transforms.t[0].hash: unknown option 'pepper'");
  ExpectError("- cast: {total: integr}\n", 1, 17,
              "transforms.t[0].cast.total: expected one of int, float, string, bool, got 'integr' "
              "(did you mean 'int'?)");
  ExpectError("- cast: {total: flaot}\n", 1, 17,
              "transforms.t[0].cast.total: expected one of int, float, string, bool, got 'flaot' "
              "(did you mean 'float'?)");
  ExpectError("- cast:\n    a: int\n    total: [int]\n", 3, 12,
              "transforms.t[0].cast.total: expected one of int, float, string, bool, got ''");
  ExpectError("- drop: [id, a..b]\n", 1, 16,
              "transforms.t[0].drop[1]: bad field path 'a..b': expected a name before '.' at column 3");
  ExpectError("- select: ['x', 'y.']\n", 1, 20,
              "transforms.t[0].select[1]: bad field path 'y.': field path ends with '.' at column 3");
  ExpectError("- rename: {a: 'b c'}\n", 1, 17,
              "transforms.t[0].rename.a: bad field path 'b c': unexpected ' ' in field path at column 2");
  ExpectError("- rename:\n    '[0]': b\n", 2, 6,
              "transforms.t[0].rename.[0]: bad field path '[0]': a path starts with a field name, "
              "not an index at column 1");
  ExpectError("- select: []\n", 1, 11,
              "transforms.t[0].select: expected a field path or a non-empty list of field paths");
  ExpectError("- set: {}\n", 1, 8, "transforms.t[0].set: expected a non-empty map of fields to values");
  ExpectError("- filter: 'amount > 10 && foo(x)'\n", 1, 27,
              "transforms.t[0].filter: unknown function 'foo' (known: exists, startsWith, endsWith, "
              "contains, lower, upper, matches, len) at column 16");
  ExpectError("- filter: amount > 10 && foo(x)\n", 1, 26,
              "transforms.t[0].filter: unknown function 'foo' (known: exists, startsWith, endsWith, "
              "contains, lower, upper, matches, len) at column 16");
  ExpectError("- filter:\n    a < b < c\n", 2, 11,
              "transforms.t[0].filter: comparisons do not chain; use && or parentheses at column 7");
  ExpectError("- filter: {a: 1}\n", 1, 11, "transforms.t[0].filter: expected a string, got a map");
  ExpectError("- set: {c: {expr: 'a +'}}\n", 1, 23,
              "transforms.t[0].set.c.expr: expected a value, found the end at column 4");
  ExpectError("- validate: {on_fail: drop}\n", 1, 13,
              "transforms.t[0].validate: checks nothing: give required, types, ranges, enums or patterns");
  ExpectError("- validate: {required: [a], on_fail: flagg}\n", 1, 38,
              "transforms.t[0].validate.on_fail: expected one of dead_letter, drop, flag, got 'flagg' "
              "(did you mean 'flag'?)");
  ExpectError("- validate: {types: {a: integr}}\n", 1, 25,
              "transforms.t[0].validate.types.a: expected one of string, number, integer, boolean, "
              "object, array, null");
  ExpectError("- validate: {ranges: {a: {min: x}}}\n", 1, 32,
              "transforms.t[0].validate.ranges.a.min: expected a number");
  ExpectError("- validate: {ranges: {a: {low: 1}}}\n", 1, 27,
              "transforms.t[0].validate.ranges.a: unknown key 'low' (expected min, max)");
  ExpectError("- validate: {enums: {a: []}}\n", 1, 25,
              "transforms.t[0].validate.enums.a: expected a non-empty list of allowed values");
  ExpectError("- validate: {patterns: {a: '(x'}}\n", 1, 28,
              "transforms.t[0].validate.patterns.a: bad regular expression: missing ): (x");
  ExpectError("- template: {field: f, value: 'a {b'}\n", 1, 34,
              "transforms.t[0].template.value: unclosed '{' at column 3 (write {{ for a brace)");
  ExpectError("- template: {field: f, value: 'a } b'}\n", 1, 34,
              "transforms.t[0].template.value: unmatched '}' at column 3 (write }} for a brace)");
  ExpectError("- template: {field: f, value: '{a..b}'}\n", 1, 35,
              "transforms.t[0].template.value: bad placeholder {a..b}: expected a name before '.'");
  ExpectError("- template: {field: f}\n", 1, 13,
              "transforms.t[0].template.value: required option is missing (The text, with {path} "
              "placeholders)");
  ExpectError("- redact: {mask: x}\n", 1, 11,
              "transforms.t[0].redact.fields: required option is missing (Field paths to redact)");
  ExpectError("- timestamp: {format: epoch}\n", 1, 23,
              "transforms.t[0].timestamp.format: expected one of iso8601, iso, epoch_ms, got 'epoch'");
  ExpectError("- timestamp: {field: 'a b'}\n", 1, 24,
              "transforms.t[0].timestamp.field: bad field path 'a b': unexpected ' ' in field path at "
              "column 2");
  ExpectError("- filter\n", 1, 3,
              "transforms.t[0]: unknown transform template 'filter'; to use the step 'filter' write it "
              "as a map: {filter: ...}");
  Templates templates;
  templates["cleanup"] = MustParse("- drop: [a]\n");
  ExpectError("- drop: [b]\n- clean\n", 2, 3,
              "transforms.t[1]: unknown transform template 'clean' (did you mean 'cleanup'?)", &templates);
  ExpectError("- aggregate: {group_by: [a]}\n- aggregate: {group_by: [b]}\n", 2, 3,
              "transforms.t[1]: a chain has at most one aggregate step");
}

TEST_CASE("every mistake in a chain is reported at once", "[transforms]") {
  const Parsed p = Parse(
      "- renam: {a: b}\n"
      "- set: {ok: 1}\n"
      "- cast: {x: integr}\n"
      "- filter: 'a ='\n");
  INFO(p.All());
  CHECK_FALSE(p.ok);
  REQUIRE(p.errors.size() == 3);
  CHECK(p.errors[0].ToString() == "fork.yaml:1:3: transforms.t[0]: unknown step 'renam' (did you mean 'rename'?)");
  CHECK(p.errors[1].ToString() ==
        "fork.yaml:3:13: transforms.t[2].cast.x: expected one of int, float, string, bool, got 'integr' "
        "(did you mean 'int'?)");
  CHECK(p.errors[2].ToString() ==
        "fork.yaml:4:14: transforms.t[3].filter: '=' is not a comparison; use == at column 3");
}

TEST_CASE("the step docs cover every step", "[transforms]") {
  std::vector<std::string> names;
  for (const StepDoc& d : StepDocs()) names.emplace_back(d.name);
  CHECK(names == std::vector<std::string>{"timestamp", "select", "drop", "rename", "set", "cast",
                                          "redact", "hash", "filter", "validate", "template",
                                          "aggregate"});
  // Every step named in the docs parses (the smallest valid form of each).
  for (const char* yaml : {"- timestamp: true", "- select: [a]", "- drop: [a]", "- rename: {a: b}",
                           "- set: {a: 1}", "- cast: {a: int}", "- redact: [a]", "- hash: [a]",
                           "- filter: 'true'", "- validate: {required: [a]}",
                           "- template: {field: a, value: b}", "- aggregate: {}"}) {
    INFO(yaml);
    const Parsed p = Parse(yaml);
    INFO(p.All());
    CHECK(p.ok);
  }
}

}  // namespace forkd::transforms
