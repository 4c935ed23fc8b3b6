// aggregate: rows per (window, group) with count, sum, min, max and avg;
// dirty tracking, lateness and eviction; checkpoints that restore exactly
// and refuse what is not theirs; exact totals over many events; and the
// mistakes its config can hold.
#include "transforms/aggregate.h"

#include <yaml-cpp/yaml.h>

#include <map>

#include "sinks/common/json.h"
#include "test_util.h"
#include "transforms/chain_util.h"
#include "transforms/expr.h"
#include "transforms/yaml_value.h"

namespace forkd::transforms {
namespace {

using test_chain::PackYaml;
using test_chain::Parse;
using test_chain::Parsed;
using test_chain::Templates;

using test::U8;

constexpr int64_t kDay = 86400000;
constexpr int64_t kHour = 3600000;
constexpr int64_t kMinute = 60000;
constexpr int64_t k21 = 1795219200000;  // 2026-11-21T00:00:00Z in epoch ms

// The spec of `- aggregate: <args>`.
std::shared_ptr<const AggregateSpec> Spec(const std::string& args) {
  Parsed p = Parse("- aggregate: " + args);
  INFO(args << "\n" << p.All());
  REQUIRE(p.ok);
  REQUIRE(p.chain.aggregate);
  return p.chain.aggregate;
}

struct Row {
  std::string json;
  std::string bytes;
  // The kind of a row field: int, float, str, null...
  std::string KindOf(const std::string& key) const {
    Doc d;
    d.Load(U8(bytes), bytes.size());
    const Field* f = d.Find(key);
    if (f == nullptr) return "missing";
    switch (expr::FromRaw(f->value).t) {
      case expr::Val::T::kNull: return "null";
      case expr::Val::T::kInt: return "int";
      case expr::Val::T::kFloat: return "float";
      case expr::Val::T::kStr: return "str";
      default: return "other";
    }
  }
};
using Rows = std::map<std::string, Row>;

// Emits, returning the rows by id; no id may come twice in one Emit.
Rows EmitRows(Aggregator* a) {
  Rows rows;
  a->Emit([&](std::string_view id, const wire::Buffer& row) {
    size_t used = 0;
    REQUIRE(wire::CheckValue(row.data(), row.size(), wire::Limits{}, &used).ok);
    REQUIRE(used == row.size());
    Row r;
    r.bytes.assign(row.view());
    sinks::AppendJson(row.data(), &r.json);
    CHECK(rows.count(std::string(id)) == 0);
    rows[std::string(id)] = std::move(r);
  });
  return rows;
}

// Upserts the rows of one Emit into `into`, as a keyed store would.
void Upsert(const Rows& rows, std::map<std::string, std::string>* into) {
  for (const auto& [id, r] : rows) (*into)[id] = r.json;
}

Outcome Add(Aggregator* a, const std::string& record_yaml, std::string* reason = nullptr,
            int64_t recv_ms = k21 + 10 * kHour, int64_t window_ms = 0) {
  const std::string bytes = PackYaml(record_yaml);
  Doc d;
  d.Load(U8(bytes), bytes.size());
  std::string why;
  const Outcome o = a->Add(d, recv_ms * 1000, window_ms, &why);
  if (reason != nullptr) *reason = why;
  return o;
}

std::string Iso(int64_t ms) {
  std::string s;
  FormatIsoMillis(ms, &s);
  return s;
}

const char* kSales =
    "{window: 1d, time_field: ts, group_by: [currency], measures: {revenue: sum(amount), "
    "orders: count(), lo: min(amount), hi: max(amount), mean: avg(amount)}}";

}  // namespace

TEST_CASE("aggregate: the spec as parsed", "[transforms][aggregate]") {
  const auto s = Spec(kSales);
  CHECK(s->window_ms == kDay);
  CHECK(s->has_time_field);
  CHECK(s->time_field.text == "ts");
  REQUIRE(s->group_by.size() == 1);
  CHECK(s->group_by[0].text == "currency");
  REQUIRE(s->measures.size() == 5);
  CHECK(s->measures[0].name == "revenue");
  CHECK(s->measures[0].fn == Measure::Fn::kSum);
  CHECK(s->measures[0].field.text == "amount");
  CHECK(s->measures[1].name == "orders");
  CHECK(s->measures[1].fn == Measure::Fn::kCount);
  CHECK(s->measures[2].fn == Measure::Fn::kMin);
  CHECK(s->measures[3].fn == Measure::Fn::kMax);
  CHECK(s->measures[4].fn == Measure::Fn::kAvg);
  CHECK(s->lateness_ms == kHour);
  CHECK(s->emit_every_ms == 1000);

  const auto d = Spec("{}");
  CHECK(d->window_ms == kDay);
  CHECK_FALSE(d->has_time_field);
  CHECK(d->group_by.empty());
  REQUIRE(d->measures.size() == 1);
  CHECK(d->measures[0].name == "count");
  CHECK(d->measures[0].fn == Measure::Fn::kCount);

  const auto o = Spec("{window: hourly, lateness: 5m, emit_every: 30s, measures: {n: count( ), s: sum( a.b )}}");
  CHECK(o->window_ms == kHour);
  CHECK(o->lateness_ms == 5 * kMinute);
  CHECK(o->emit_every_ms == 30000);
  CHECK(o->measures[1].field.text == "a.b");

  // The fingerprint follows what the state means, not the timing options.
  CHECK(Spec(kSales)->fingerprint == s->fingerprint);
  CHECK(Spec("{window: 1d, time_field: ts, group_by: [currency], lateness: 3h, emit_every: 5s, "
             "measures: {revenue: sum(amount), orders: count(), lo: min(amount), hi: max(amount), "
             "mean: avg(amount)}}")
            ->fingerprint == s->fingerprint);
  CHECK(Spec("{window: 1d, time_field: ts, group_by: [country], measures: {revenue: sum(amount), "
             "orders: count(), lo: min(amount), hi: max(amount), mean: avg(amount)}}")
            ->fingerprint != s->fingerprint);
  CHECK(Spec("{window: 1h, time_field: ts, group_by: [currency], measures: {revenue: sum(amount), "
             "orders: count(), lo: min(amount), hi: max(amount), mean: avg(amount)}}")
            ->fingerprint != s->fingerprint);
  CHECK(Spec("{window: 1d, time_field: ts, group_by: [currency], measures: {revenue: max(amount), "
             "orders: count(), lo: min(amount), hi: max(amount), mean: avg(amount)}}")
            ->fingerprint != s->fingerprint);
}

TEST_CASE("aggregate: windows, durations and their names", "[transforms][aggregate]") {
  int64_t ms = 0;
  for (const auto& [text, want] : std::vector<std::pair<std::string, int64_t>>{
           {"daily", kDay}, {"day", kDay}, {"1d", kDay}, {"hourly", kHour}, {"hour", kHour},
           {"1h", kHour}, {"15m", 15 * kMinute}, {"minutely", kMinute}, {"minute", kMinute},
           {"90s", 90000}, {"2d", 2 * kDay}}) {
    INFO(text);
    ms = 0;
    CHECK(ParseWindow(text, &ms));
    CHECK(ms == want);
  }
  for (const char* bad : {"", "x", "0s", "-1h", "weekly", "1 fortnight"}) {
    INFO(bad);
    CHECK_FALSE(ParseWindow(bad, &ms));
  }
  CHECK(FormatWindow(kDay) == "1d");
  CHECK(FormatWindow(2 * kDay) == "2d");
  CHECK(FormatWindow(kHour) == "1h");
  CHECK(FormatWindow(15 * kMinute) == "15m");
  CHECK(FormatWindow(90000) == "90s");
  CHECK(FormatWindow(1500) == "1500ms");
}

TEST_CASE("aggregate: rows per window and group, emitted when they change", "[transforms][aggregate]") {
  Aggregator a(Spec(kSales));
  CHECK_FALSE(a.dirty());
  CHECK(EmitRows(&a).empty());

  std::string reason;
  CHECK(Add(&a, "{ts: 1795256100000, currency: EUR, amount: 10}") == Outcome::kKeep);  // 10:15Z
  CHECK(Add(&a, "{ts: '2026-11-21T11:00:00Z', currency: EUR, amount: 20}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: '2026-11-21T12:00:00+01:00', currency: USD, amount: 2.5}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, currency: USD, amount: x}") == Outcome::kKeep);  // counted only
  CHECK(Add(&a, "{ts: 1795256100000, currency: EUR}") == Outcome::kKeep);             // counted only
  CHECK(Add(&a, "{ts: '2026-11-22T00:00:01Z', currency: EUR, amount: 1}") == Outcome::kKeep);
  CHECK(a.dirty());
  CHECK(a.groups() == 3);
  CHECK(a.late() == 0);

  Rows rows = EmitRows(&a);
  REQUIRE(rows.size() == 3);
  const std::string eur = R"(2026-11-21T00:00:00.000Z/1d/["EUR"])";
  const std::string usd = R"(2026-11-21T00:00:00.000Z/1d/["USD"])";
  const std::string eur22 = R"(2026-11-22T00:00:00.000Z/1d/["EUR"])";
  REQUIRE(rows.count(eur) == 1);
  REQUIRE(rows.count(usd) == 1);
  REQUIRE(rows.count(eur22) == 1);
  CHECK(rows[eur].json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","currency":"EUR",)"
        R"("revenue":30,"orders":3,"lo":10,"hi":20,"mean":15})");
  CHECK(rows[eur].KindOf("revenue") == "int");
  CHECK(rows[eur].KindOf("orders") == "int");
  CHECK(rows[eur].KindOf("lo") == "int");
  CHECK(rows[eur].KindOf("mean") == "float");
  CHECK(rows[usd].json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","currency":"USD",)"
        R"("revenue":2.5,"orders":2,"lo":2.5,"hi":2.5,"mean":2.5})");
  CHECK(rows[usd].KindOf("revenue") == "float");
  CHECK(rows[usd].KindOf("lo") == "float");
  CHECK(rows[eur22].json ==
        R"({"window_start":"2026-11-22T00:00:00.000Z","window":"1d","currency":"EUR",)"
        R"("revenue":1,"orders":1,"lo":1,"hi":1,"mean":1})");

  // Nothing changed, nothing emitted.
  CHECK_FALSE(a.dirty());
  CHECK(EmitRows(&a).empty());
  CHECK(a.groups() == 3);

  // Only the row that changed is emitted again, with its new totals.
  CHECK(Add(&a, "{ts: '2026-11-21T23:59:59.999Z', currency: EUR, amount: -4}") == Outcome::kKeep);
  rows = EmitRows(&a);
  REQUIRE(rows.size() == 1);
  REQUIRE(rows.count(eur) == 1);
  CHECK(rows[eur].json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","currency":"EUR",)"
        R"("revenue":26,"orders":4,"lo":-4,"hi":20,"mean":8.666666666666666})");

  // A group with no number at all: sums are 0, min, max and avg null.
  Aggregator b(Spec(kSales));
  CHECK(Add(&b, "{ts: 1795256100000, currency: GBP, amount: null}") == Outcome::kKeep);
  rows = EmitRows(&b);
  REQUIRE(rows.size() == 1);
  CHECK(rows.begin()->second.json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","currency":"GBP",)"
        R"("revenue":0,"orders":1,"lo":null,"hi":null,"mean":null})");
}

TEST_CASE("aggregate: an instance's partial rows carry its id, the row id and an avg's parts",
          "[transforms][aggregate]") {
  Aggregator a(Spec(kSales));
  a.SetInstance("web-1");
  CHECK(Add(&a, "{ts: 1795256100000, currency: EUR, amount: 10}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, currency: EUR, amount: 2.5}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, currency: EUR}") == Outcome::kKeep);  // counted only
  Rows rows = EmitRows(&a);
  REQUIRE(rows.size() == 1);
  const std::string id = R"(web-1/2026-11-21T00:00:00.000Z/1d/["EUR"])";
  REQUIRE(rows.count(id) == 1);
  CHECK(rows[id].json ==
        R"({"_fork_instance":"web-1","_fork_row":"2026-11-21T00:00:00.000Z/1d/[\"EUR\"]",)"
        R"("window_start":"2026-11-21T00:00:00.000Z","window":"1d","currency":"EUR",)"
        R"("revenue":12.5,"orders":3,"lo":2.5,"hi":10,"mean":6.25,)"
        R"("_fork_sum_mean":12.5,"_fork_n_mean":2})");
  CHECK(rows[id].KindOf("_fork_sum_mean") == "float");
  CHECK(rows[id].KindOf("_fork_n_mean") == "int");

  // Output names starting with _fork_ are refused: forkd's partial rows use them.
  Parsed bad = Parse("- aggregate: {measures: {_fork_n: count()}}");
  CHECK_FALSE(bad.ok);
  CHECK(bad.All().find("starts with _fork_, which forkd reserves") != std::string::npos);
}

TEST_CASE("aggregate: group values of any kind, missing ones as null", "[transforms][aggregate]") {
  Aggregator a(Spec("{window: 1h, time_field: ts, group_by: [shop, user.tier]}"));
  CHECK(Add(&a, "{ts: 1795256100000, shop: 7, user: {tier: gold}}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, shop: 7, user: {tier: gold}}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, shop: '7', user: {tier: gold}}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, user: {}}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, shop: null}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, shop: [1, {a: b}], user: {tier: 2.5}}") == Outcome::kKeep);
  const Rows rows = EmitRows(&a);
  REQUIRE(rows.size() == 4);
  const std::string at = "2026-11-21T10:00:00.000Z/1h/";
  REQUIRE(rows.count(at + R"([7,"gold"])") == 1);
  CHECK(rows.at(at + R"([7,"gold"])").json ==
        R"({"window_start":"2026-11-21T10:00:00.000Z","window":"1h","shop":7,"user.tier":"gold","count":2})");
  REQUIRE(rows.count(at + R"(["7","gold"])") == 1);
  REQUIRE(rows.count(at + "[null,null]") == 1);  // missing and null group together
  CHECK(rows.at(at + "[null,null]").json ==
        R"({"window_start":"2026-11-21T10:00:00.000Z","window":"1h","shop":null,"user.tier":null,"count":2})");
  CHECK(rows.count(at + R"([[1,{"a":"b"}],2.5])") == 1);
}

TEST_CASE("aggregate: event time from epoch ms or ISO text; receipt time otherwise",
          "[transforms][aggregate]") {
  Aggregator a(Spec("{window: 1h, time_field: ts}"));
  std::string reason;
  CHECK(Add(&a, "{ts: 1795255199999.0}") == Outcome::kKeep);                  // 09:59:59.999
  CHECK(Add(&a, "{ts: 1795255200000}") == Outcome::kKeep);                    // 10:00:00.000
  CHECK(Add(&a, "{ts: '2026-11-21T10:59:59.999Z'}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: '2026-11-21T12:59:59+02:00'}") == Outcome::kKeep);      // 10:59:59Z
  // Missing or null: the receipt time (11:30 here).
  CHECK(Add(&a, "{x: 1}", &reason, k21 + 11 * kHour + 30 * kMinute) == Outcome::kKeep);
  CHECK(Add(&a, "{ts: null}", &reason, k21 + 11 * kHour + 31 * kMinute) == Outcome::kKeep);
  for (const char* bad : {"{ts: soon}", "{ts: [1]}", "{ts: true}", "{ts: '2026-11-21T25:00:00Z'}"}) {
    INFO(bad);
    CHECK(Add(&a, bad, &reason) == Outcome::kDeadLetter);
    CHECK(reason == "aggregate: ts is not a time (expected epoch milliseconds or ISO-8601 text)");
  }
  const Rows rows = EmitRows(&a);
  REQUIRE(rows.size() == 3);
  CHECK(rows.at("2026-11-21T11:00:00.000Z/1h/[]").json ==
        R"({"window_start":"2026-11-21T11:00:00.000Z","window":"1h","count":2})");
  CHECK(rows.at("2026-11-21T10:00:00.000Z/1h/[]").json ==
        R"({"window_start":"2026-11-21T10:00:00.000Z","window":"1h","count":3})");
  CHECK(rows.at("2026-11-21T09:00:00.000Z/1h/[]").json ==
        R"({"window_start":"2026-11-21T09:00:00.000Z","window":"1h","count":1})");

  // Without a time field, always the receipt time.
  Aggregator r(Spec("{window: 15m}"));
  CHECK(Add(&r, "{ts: 1}", &reason, k21 + 20 * kMinute) == Outcome::kKeep);
  const Rows rr = EmitRows(&r);
  CHECK(rr.count("2026-11-21T00:15:00.000Z/15m/[]") == 1);
}

TEST_CASE("aggregate: a call's window overrides the spec's", "[transforms][aggregate]") {
  Aggregator a(Spec(kSales));
  std::string reason;
  const int64_t recv = k21 + 12 * kHour;
  CHECK(Add(&a, "{ts: '2026-11-21T10:15:00Z', currency: EUR, amount: 1}", &reason, recv, kHour) == Outcome::kKeep);
  CHECK(Add(&a, "{ts: '2026-11-21T10:45:00Z', currency: EUR, amount: 2}", &reason, recv, kHour) == Outcome::kKeep);
  CHECK(Add(&a, "{ts: '2026-11-21T11:05:00Z', currency: EUR, amount: 4}", &reason, recv, kHour) == Outcome::kKeep);
  CHECK(Add(&a, "{ts: '2026-11-21T11:05:00Z', currency: EUR, amount: 8}", &reason, recv) == Outcome::kKeep);
  const Rows rows = EmitRows(&a);
  REQUIRE(rows.size() == 3);
  CHECK(rows.at(R"(2026-11-21T10:00:00.000Z/1h/["EUR"])").json ==
        R"({"window_start":"2026-11-21T10:00:00.000Z","window":"1h","currency":"EUR",)"
        R"("revenue":3,"orders":2,"lo":1,"hi":2,"mean":1.5})");
  CHECK(rows.at(R"(2026-11-21T11:00:00.000Z/1h/["EUR"])").json ==
        R"({"window_start":"2026-11-21T11:00:00.000Z","window":"1h","currency":"EUR",)"
        R"("revenue":4,"orders":1,"lo":4,"hi":4,"mean":4})");
  CHECK(rows.at(R"(2026-11-21T00:00:00.000Z/1d/["EUR"])").json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","currency":"EUR",)"
        R"("revenue":8,"orders":1,"lo":8,"hi":8,"mean":8})");
}

TEST_CASE("aggregate: late events are dead-lettered; closed windows leave after their last row",
          "[transforms][aggregate]") {
  Aggregator a(Spec("{window: 1h, time_field: ts, lateness: 10m, measures: {n: count(), s: sum(v)}}"));
  std::string reason;
  auto at = [](int64_t h, int64_t m) {
    return "{ts: " + std::to_string(k21 + h * kHour + m * kMinute) + ", v: 1}";
  };
  CHECK(Add(&a, at(10, 15)) == Outcome::kKeep);
  CHECK(Add(&a, at(11, 5)) == Outcome::kKeep);   // watermark 11:05
  CHECK(Add(&a, at(10, 59)) == Outcome::kKeep);  // 10:00 closes at 11:10: still open
  CHECK(Add(&a, at(11, 10)) == Outcome::kKeep);  // watermark 11:10: 10:00 is closed
  CHECK(Add(&a, at(10, 30), &reason) == Outcome::kDeadLetter);
  CHECK(reason ==
        "aggregate: event time is past the allowed lateness of its window (1h from "
        "2026-11-21T10:00:00.000Z)");
  CHECK(a.late() == 1);
  CHECK(Add(&a, at(9, 0), &reason) == Outcome::kDeadLetter);
  CHECK(reason ==
        "aggregate: event time is past the allowed lateness of its window (1h from "
        "2026-11-21T09:00:00.000Z)");
  CHECK(a.late() == 2);
  CHECK(Add(&a, at(11, 0)) == Outcome::kKeep);
  CHECK(a.groups() == 2);

  // The closed window's final row goes out, then the window is forgotten.
  Rows rows = EmitRows(&a);
  REQUIRE(rows.size() == 2);
  CHECK(rows.at("2026-11-21T10:00:00.000Z/1h/[]").json ==
        R"({"window_start":"2026-11-21T10:00:00.000Z","window":"1h","n":2,"s":2})");
  CHECK(rows.at("2026-11-21T11:00:00.000Z/1h/[]").json ==
        R"({"window_start":"2026-11-21T11:00:00.000Z","window":"1h","n":3,"s":3})");
  CHECK(a.groups() == 1);
  CHECK(Add(&a, at(10, 45), &reason) == Outcome::kDeadLetter);
  CHECK(a.late() == 3);

  // A window that closes while clean is evicted at the next Emit too.
  CHECK(EmitRows(&a).empty());
  CHECK(Add(&a, at(12, 20)) == Outcome::kKeep);  // closes 11:00 (at 12:10)
  rows = EmitRows(&a);
  REQUIRE(rows.size() == 1);
  CHECK(rows.count("2026-11-21T12:00:00.000Z/1h/[]") == 1);
  CHECK(a.groups() == 1);
  CHECK_FALSE(a.dirty());
}

TEST_CASE("aggregate: sums overflow into floats, mixed kinds stay exact where they can",
          "[transforms][aggregate]") {
  Aggregator a(Spec("{window: 1d, time_field: ts, group_by: [g], measures: {s: sum(v), lo: min(v), "
                    "hi: max(v), m: avg(v)}}"));
  CHECK(Add(&a, "{ts: 1795256100000, g: big, v: 9223372036854775807}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, g: big, v: 1}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, g: mix, v: 1}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, g: mix, v: 0.5}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, g: mix, v: 3}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, g: neg, v: -9223372036854775808}") == Outcome::kKeep);
  CHECK(Add(&a, "{ts: 1795256100000, g: neg, v: -1}") == Outcome::kKeep);
  const Rows rows = EmitRows(&a);
  const Row& big = rows.at(R"(2026-11-21T00:00:00.000Z/1d/["big"])");
  CHECK(big.json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","g":"big","s":9223372036854775808,)"
        R"("lo":1,"hi":9223372036854775808,"m":4611686018427387904})");
  CHECK(big.KindOf("s") == "float");
  CHECK(big.KindOf("lo") == "int");
  CHECK(big.KindOf("hi") == "float");  // beyond what a double holds exactly
  const Row& mix = rows.at(R"(2026-11-21T00:00:00.000Z/1d/["mix"])");
  CHECK(mix.json ==
        R"({"window_start":"2026-11-21T00:00:00.000Z","window":"1d","g":"mix","s":4.5,"lo":0.5,"hi":3,"m":1.5})");
  CHECK(mix.KindOf("s") == "float");
  CHECK(mix.KindOf("hi") == "float");
  const Row& neg = rows.at(R"(2026-11-21T00:00:00.000Z/1d/["neg"])");
  CHECK(neg.KindOf("s") == "float");
  CHECK(neg.json.find(R"("s":-9223372036854775808)") != std::string::npos);
}

TEST_CASE("aggregate: a restored checkpoint goes on exactly where it stopped", "[transforms][aggregate]") {
  const auto spec = Spec(kSales);
  // Events over three days, a few of them late, in a fixed order.
  test::Rng rng(77);
  std::vector<std::string> events;
  for (int i = 0; i < 3000; ++i) {
    int64_t t = k21 + i * 80000 - static_cast<int64_t>(rng.Uniform(30 * kMinute));
    if (i % 500 == 499) t = k21;  // late once the watermark has passed 2026-11-22T01:00
    static const char* kCur[] = {"EUR", "USD", "GBP", "JPY"};
    const std::string cur = kCur[rng.Uniform(4)];
    const std::string amount = rng.Uniform(3) == 0 ? std::to_string(rng.Uniform(1000)) + ".25"
                                                   : std::to_string(rng.Uniform(1000));
    std::string ts = std::to_string(t);
    if (rng.Uniform(2)) ts = Iso(t).insert(0, 1, '\'').append(1, '\'');
    events.push_back("{ts: " + ts + ", currency: " + cur + ", amount: " + amount + "}");
  }

  for (const size_t cut : {size_t{1000}, size_t{1777}, size_t{2999}}) {
    INFO("checkpoint after event " << cut);
    // One aggregator fed everything, emitting every 100 events.
    Aggregator whole(spec);
    std::map<std::string, std::string> want;
    int want_late = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      if (Add(&whole, events[i]) == Outcome::kDeadLetter) ++want_late;
      if (i % 100 == 99) Upsert(EmitRows(&whole), &want);
    }
    Upsert(EmitRows(&whole), &want);

    // The same events split between two aggregators by a checkpoint taken
    // mid-way, with rows still unemitted.
    Aggregator first(spec);
    std::map<std::string, std::string> got;
    int got_late = 0;
    for (size_t i = 0; i < cut; ++i) {
      if (Add(&first, events[i]) == Outcome::kDeadLetter) ++got_late;
      if (i % 100 == 99) Upsert(EmitRows(&first), &got);
    }
    const std::string state = first.Checkpoint();
    Aggregator second(spec);
    std::string error;
    REQUIRE(second.Restore(state, &error));
    CHECK(error.empty());
    CHECK(second.groups() == first.groups());
    CHECK(second.dirty() == first.dirty());
    CHECK(second.Checkpoint().size() == state.size());
    for (size_t i = cut; i < events.size(); ++i) {
      if (Add(&second, events[i]) == Outcome::kDeadLetter) ++got_late;
      if (i % 100 == 99) Upsert(EmitRows(&second), &got);
    }
    Upsert(EmitRows(&second), &got);

    CHECK(want_late == 4);
    CHECK(got_late == want_late);
    CHECK(got.size() == want.size());
    CHECK(got == want);
    CHECK(second.groups() == whole.groups());
  }

  // The watermark comes back too: what was late stays late.
  Aggregator a(spec);
  CHECK(Add(&a, "{ts: '2026-11-22T02:00:00Z', currency: EUR, amount: 1}") == Outcome::kKeep);
  Aggregator b(spec);
  std::string error;
  REQUIRE(b.Restore(a.Checkpoint(), &error));
  std::string reason;
  CHECK(Add(&b, "{ts: '2026-11-21T10:00:00Z', currency: EUR, amount: 1}", &reason) == Outcome::kDeadLetter);
  CHECK(reason.find("past the allowed lateness") != std::string::npos);

  // An empty aggregator's checkpoint restores to an empty one.
  Aggregator empty(spec), again(spec);
  REQUIRE(again.Restore(empty.Checkpoint(), &error));
  CHECK(again.groups() == 0);
  CHECK_FALSE(again.dirty());
}

TEST_CASE("aggregate: Restore refuses damaged or foreign state and leaves it empty",
          "[transforms][aggregate]") {
  const auto spec = Spec(kSales);
  Aggregator src(spec);
  CHECK(Add(&src, "{ts: 1795256100000, currency: EUR, amount: 10}") == Outcome::kKeep);
  CHECK(Add(&src, "{ts: 1795256100000, currency: USD, amount: 10}") == Outcome::kKeep);
  const std::string good = src.Checkpoint();

  // A fresh aggregator with some state of its own, which a failed Restore clears.
  auto loaded = [&] {
    auto a = std::make_unique<Aggregator>(spec);
    CHECK(Add(a.get(), "{ts: 1795256100000, currency: CHF, amount: 1}") == Outcome::kKeep);
    REQUIRE(a->groups() == 1);
    return a;
  };
  auto expect_refused = [&](const std::string& state, const std::string& message) {
    auto a = loaded();
    std::string error;
    CHECK_FALSE(a->Restore(state, &error));
    CHECK(error == message);
    CHECK(a->groups() == 0);
    CHECK_FALSE(a->dirty());
    CHECK(EmitRows(a.get()).empty());
    // It still works, from nothing; no old watermark holds events back.
    CHECK(Add(a.get(), "{ts: 0, currency: EUR, amount: 2}") == Outcome::kKeep);
    const Rows rows = EmitRows(a.get());
    REQUIRE(rows.size() == 1);
    CHECK(rows.begin()->first == R"(1970-01-01T00:00:00.000Z/1d/["EUR"])");
  };

  expect_refused("", "aggregate state is damaged");
  expect_refused("not a checkpoint at all \xff\xff", "aggregate state is damaged");
  expect_refused(good.substr(0, good.size() - 3), "aggregate state is damaged");
  expect_refused(good + "x", "aggregate state is damaged");
  expect_refused(test::Pack([](wire::Writer& w) { w.Str("hello"); }), "aggregate state has an unknown format");
  expect_refused(test::Pack([](wire::Writer& w) {
                   w.ArrayHeader(4);
                   w.Int(99);  // a version from the future
                   w.Uint(0);
                   w.Int(0);
                   w.ArrayHeader(0);
                 }),
                 "aggregate state has an unknown format");
  // A group whose values are not msgpack.
  expect_refused(test::Pack([&](wire::Writer& w) {
                   w.ArrayHeader(4);
                   w.Int(1);
                   w.Uint(spec->fingerprint);
                   w.Int(0);
                   w.ArrayHeader(1);
                   w.ArrayHeader(6);
                   w.Int(kDay);
                   w.Int(0);
                   w.Bin("\xc1", 1);
                   w.Int(1);
                   w.Bool(true);
                   w.ArrayHeader(0);
                 }),
                 "aggregate state is damaged");

  // A checkpoint of another spec: other group_by, other window.
  const std::string changed = "the aggregate's window, time field, groups or measures changed";
  for (const char* other :
       {"{window: 1d, time_field: ts, group_by: [country], measures: {revenue: sum(amount), "
        "orders: count(), lo: min(amount), hi: max(amount), mean: avg(amount)}}",
        "{window: 1h, time_field: ts, group_by: [currency], measures: {revenue: sum(amount), "
        "orders: count(), lo: min(amount), hi: max(amount), mean: avg(amount)}}",
        "{window: 1d, time_field: ts, group_by: [currency], measures: {revenue: sum(amount)}}"}) {
    INFO(other);
    Aggregator foreign(Spec(other));
    CHECK(Add(&foreign, "{ts: 1795256100000, currency: EUR, country: DE, amount: 10}") == Outcome::kKeep);
    expect_refused(foreign.Checkpoint(), changed);
    // And the other way round.
    std::string error;
    CHECK_FALSE(foreign.Restore(good, &error));
    CHECK(error == changed);
    CHECK(foreign.groups() == 0);
  }

  // The good one restores, of course.
  auto a = loaded();
  std::string error;
  REQUIRE(a->Restore(good, &error));
  CHECK(a->groups() == 2);
  const Rows rows = EmitRows(a.get());
  CHECK(rows.size() == 2);
  CHECK(rows.count(R"(2026-11-21T00:00:00.000Z/1d/["CHF"])") == 0);
}

TEST_CASE("aggregate: totals are exact over 100k events in 1000 groups", "[transforms][aggregate]") {
  const auto spec = Spec(
      "{window: 1h, time_field: ts, group_by: [g], measures: {n: count(), total: sum(v), "
      "q: sum(quarter), lo: min(v), hi: max(v)}}");
  Aggregator a(spec);
  test::Rng rng(4242);

  struct Direct {
    int64_t n = 0;
    int64_t total = 0;
    double q = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
  };
  std::map<std::string, Direct> direct;  // by row id
  std::map<std::string, std::string> rows;
  int64_t all_n = 0, all_total = 0, late = 0;
  double all_q = 0;
  wire::Buffer payload;
  Doc doc;
  std::string reason;
  constexpr int kEvents = 100000;
  for (int i = 0; i < kEvents; ++i) {
    const int64_t g = static_cast<int64_t>(rng.Uniform(1000));
    const int64_t v = static_cast<int64_t>(rng.Uniform(2000001)) - 1000000;
    const double quarter = static_cast<double>(static_cast<int64_t>(rng.Uniform(4001)) - 2000) / 4;
    // Five hours of events, up to ten minutes out of order; now and then one
    // from the very first hour, late once the watermark has passed 02:00.
    int64_t t = k21 + static_cast<int64_t>(i) * 180 - static_cast<int64_t>(rng.Uniform(10 * kMinute));
    if (i % 9973 == 9972) t = k21;
    payload.clear();
    wire::Writer w(&payload);
    w.MapHeader(4);
    w.Str("ts");
    w.Int(t);
    w.Str("g");
    w.Int(g);
    w.Str("v");
    w.Int(v);
    w.Str("quarter");
    w.Double(quarter);
    doc.Load(payload.data(), payload.size());
    const Outcome o = a.Add(doc, 0, 0, &reason);
    if (o == Outcome::kDeadLetter) {
      ++late;
      continue;
    }
    REQUIRE(o == Outcome::kKeep);
    const int64_t start = (t < 0 ? t - kHour + 1 : t) / kHour * kHour;
    Direct& d = direct[Iso(start) + "/1h/[" + std::to_string(g) + "]"];
    ++d.n;
    d.total += v;
    d.q += quarter;
    d.lo = std::min(d.lo, v);
    d.hi = std::max(d.hi, v);
    ++all_n;
    all_total += v;
    all_q += quarter;
    if (i % 1000 == 999) Upsert(EmitRows(&a), &rows);
  }
  Upsert(EmitRows(&a), &rows);
  CHECK(late > 0);
  CHECK(late == a.late());
  CHECK(all_n + late == kEvents);
  CHECK(direct.size() > 5000);  // every group in every hour

  // Every final row is the direct computation, and the rows add up.
  REQUIRE(rows.size() == direct.size());
  int64_t sum_n = 0, sum_total = 0;
  double sum_q = 0;
  size_t mismatches = 0;
  for (const auto& [id, d] : direct) {
    auto it = rows.find(id);
    REQUIRE(it != rows.end());
    const std::string start = id.substr(0, id.find('/'));
    const std::string g = id.substr(id.find('[') + 1, id.size() - id.find('[') - 2);
    std::string q;
    sinks::AppendDouble(d.q, &q);
    const std::string want = R"({"window_start":")" + start + R"(","window":"1h","g":)" + g +
                             R"(,"n":)" + std::to_string(d.n) + R"(,"total":)" +
                             std::to_string(d.total) + R"(,"q":)" + q + R"(,"lo":)" +
                             std::to_string(d.lo) + R"(,"hi":)" + std::to_string(d.hi) + "}";
    if (it->second != want && ++mismatches <= 5) {
      CHECK(it->second == want);
    }
    sum_n += d.n;
    sum_total += d.total;
    sum_q += d.q;
  }
  CHECK(mismatches == 0);
  CHECK(sum_n == all_n);
  CHECK(sum_total == all_total);
  CHECK(sum_q == all_q);
}

TEST_CASE("aggregate: config mistakes", "[transforms][aggregate]") {
  auto expect = [](const std::string& args, int col, const std::string& message) {
    const Parsed p = Parse("- aggregate: " + args + "\n");
    INFO(args << "\n" << p.All());
    CHECK_FALSE(p.ok);
    CHECK_FALSE(p.chain.aggregate);
    REQUIRE(p.errors.size() == 1);
    CHECK(p.errors[0].message == message);
    CHECK(p.errors[0].mark.line == 1);
    CHECK(p.errors[0].mark.column == col);
  };
  // Columns: "- aggregate: {" puts the first key at 15.
  expect("{measures: {x: summ(amount)}}", 29,
         "transforms.t[0].aggregate.measures.x: unknown measure 'summ' (did you mean 'sum'?); "
         "expected count, sum, min, max or avg");
  expect("{measures: {x: median(amount)}}", 29,
         "transforms.t[0].aggregate.measures.x: unknown measure 'median'; expected count, sum, "
         "min, max or avg");
  expect("{measures: {x: sum()}}", 29, "transforms.t[0].aggregate.measures.x: sum() needs a field: sum(amount)");
  expect("{measures: {x: avg( )}}", 29, "transforms.t[0].aggregate.measures.x: avg() needs a field: avg(amount)");
  expect("{measures: {x: count(a)}}", 29,
         "transforms.t[0].aggregate.measures.x: count() takes no field: it counts events");
  expect("{measures: {x: amount}}", 29,
         "transforms.t[0].aggregate.measures.x: expected count(), sum(field), min(field), max(field) "
         "or avg(field), got 'amount'");
  expect("{measures: {x: sum(a..b)}}", 29, "transforms.t[0].aggregate.measures.x: expected a name before '.'");
  expect("{measures: {x: [sum(a)]}}", 29,
         "transforms.t[0].aggregate.measures.x: expected count(), sum(field), min(field), max(field) "
         "or avg(field)");
  expect("{measures: []}", 25, "transforms.t[0].aggregate.measures: expected a map of name: count() | sum(field) | ...");
  expect("{window: 2x}", 23,
         "transforms.t[0].aggregate.window: expected a window like 1m, 1h, 1d, hourly or daily, got '2x'");
  expect("{window: 0s}", 23,
         "transforms.t[0].aggregate.window: expected a window like 1m, 1h, 1d, hourly or daily, got '0s'");
  expect("{windw: 1d}", 15, "transforms.t[0].aggregate: unknown option 'windw' (did you mean 'window'?)");
  expect("{lateness: soon}", 25,
         "transforms.t[0].aggregate.lateness: expected a duration like 250ms, 2s, 1h, got 'soon'");
  expect("{emit_every: 0s}", 27, "transforms.t[0].aggregate.emit_every: value 0s out of range [1, 86400000]");
  expect("{group_by: [a, 'b c']}", 31,
         "transforms.t[0].aggregate.group_by[1]: bad field path 'b c': unexpected ' ' in field path at column 2");
  expect("{time_field: '.x'}", 28,
         "transforms.t[0].aggregate.time_field: bad field path '.x': expected a name before '.' at column 1");
  // Output names must not collide with each other or the row's own fields.
  expect("{group_by: [count]}", 14,
         "transforms.t[0].aggregate: two output fields are named 'count' (window_start and window "
         "are taken by the row)");
  expect("{measures: {window: count()}}", 14,
         "transforms.t[0].aggregate: two output fields are named 'window' (window_start and window "
         "are taken by the row)");
  expect("{group_by: [a], measures: {a: sum(b)}}", 14,
         "transforms.t[0].aggregate: two output fields are named 'a' (window_start and window are "
         "taken by the row)");
  expect("{group_by: [a, a]}", 14,
         "transforms.t[0].aggregate: two output fields are named 'a' (window_start and window are "
         "taken by the row)");

  // Two aggregates in one chain.
  const Parsed two = Parse("- aggregate: {group_by: [a]}\n- set: {x: 1}\n- aggregate: {}\n");
  CHECK_FALSE(two.ok);
  REQUIRE(two.errors.size() == 1);
  CHECK(two.errors[0].ToString() == "fork.yaml:3:3: transforms.t[2]: a chain has at most one aggregate step");

  // Steps before the aggregate shape events, steps after it shape rows.
  const Parsed ok = Parse("- filter: 'amount > 0'\n- aggregate: {group_by: [a]}\n- set: {x: 1}\n- drop: [y]\n");
  REQUIRE(ok.ok);
  CHECK(ok.chain.pre.size() == 1);
  CHECK(ok.chain.aggregate);
  CHECK(ok.chain.post.size() == 2);
}

}  // namespace forkd::transforms
