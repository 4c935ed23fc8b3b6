// The dashboard's history: one sample a second per destination in a fixed
// ring, rates from cumulative counters, since= filtering, reloads, and the
// routed rate the `rate` alert signal reads.
#include "admin/history.h"

#include <catch2/catch.hpp>

namespace forkd::admin {
namespace {

Counters Routed(uint64_t routed, uint64_t delivered = 0) {
  Counters c;
  c.routed = routed;
  c.delivered = delivered;
  return c;
}

TEST_CASE("history: the first reading is a baseline, the next ones are per-second rates",
          "[admin][history]") {
  History h;
  h.Record(100, {{"a", Routed(10, 5)}});
  CHECK(h.SamplesOf("a").empty());
  double rate = -1;
  CHECK_FALSE(h.RoutedRate("a", 10, &rate));
  h.Record(101, {{"a", Routed(40, 25)}});
  h.Record(103, {{"a", Routed(80, 25)}});  // a missed second: one sample spans two
  const auto s = h.SamplesOf("a");
  REQUIRE(s.size() == 2);
  CHECK(s[0].at == 101);
  CHECK(s[0].span == 1);
  CHECK(s[0].routed == 30);
  CHECK(s[0].delivered == 20);
  CHECK(s[1].at == 103);
  CHECK(s[1].span == 2);
  CHECK(s[1].routed == 20);
  CHECK(s[1].delivered == 0);
}

TEST_CASE("history: the ring keeps the newest 3600 samples after wrapping around",
          "[admin][history]") {
  History h;
  const int64_t t0 = 1000;
  for (int64_t i = 0; i <= 5000; ++i) h.Record(t0 + i, {{"a", Routed(uint64_t(i) * 2)}});
  const auto s = h.SamplesOf("a");
  REQUIRE(s.size() == History::kCapacity);
  CHECK(s.front().at == t0 + 5000 - 3599);
  CHECK(s.back().at == t0 + 5000);
  for (size_t i = 1; i < s.size(); ++i) REQUIRE(s[i].at == s[i - 1].at + 1);
  CHECK(s.back().routed == 2);
}

TEST_CASE("history: since= returns only newer samples, across the wrap point",
          "[admin][history]") {
  History h;
  for (int64_t i = 0; i <= 3700; ++i) h.Record(i, {{"a", Routed(uint64_t(i))}});
  const std::string all = h.Json(0);
  CHECK(all.find("\"now\":3700") != std::string::npos);
  CHECK(all.find("\"at\":[101,102,") != std::string::npos);  // the oldest kept
  const std::string newer = h.Json(3698);
  CHECK(newer ==
        "{\"now\":3700,\"capacity\":3600,\"destinations\":[{\"name\":\"a\",\"at\":[3699,3700],"
        "\"span\":[1,1],\"throughput\":[0,0],\"routed\":[1,1],\"errors\":[0,0],"
        "\"lag_events\":[0,0],\"lag_seconds\":[0,0],\"dead_letters\":[0,0]}]}\n");
  const std::string none = h.Json(3700);
  CHECK(none.find("\"at\":[]") != std::string::npos);
  CHECK(none.find("\"routed\":[]") != std::string::npos);
}

TEST_CASE("history: a reading at or before the last second is ignored", "[admin][history]") {
  History h;
  h.Record(10, {{"a", Routed(0)}});
  h.Record(11, {{"a", Routed(5)}});
  h.Record(11, {{"a", Routed(50)}});
  h.Record(9, {{"a", Routed(70)}});
  const auto s = h.SamplesOf("a");
  REQUIRE(s.size() == 1);
  CHECK(s[0].routed == 5);
}

TEST_CASE("history: a counter that went down (a restarted pipeline) counts from zero",
          "[admin][history]") {
  History h;
  h.Record(1, {{"a", Routed(0, 100)}});
  h.Record(2, {{"a", Routed(0, 7)}});
  const auto s = h.SamplesOf("a");
  REQUIRE(s.size() == 1);
  CHECK(s[0].delivered == 7);
}

TEST_CASE("history: a reload's removed destination loses its history, an added one starts "
          "anew, in config order",
          "[admin][history]") {
  History h;
  h.Record(1, {{"a", Routed(0)}, {"b", Routed(0)}});
  h.Record(2, {{"a", Routed(3)}, {"b", Routed(4)}});
  h.Record(3, {{"c", Routed(9)}, {"a", Routed(6)}});
  CHECK(h.SamplesOf("b").empty());
  CHECK(h.SamplesOf("c").empty());  // a baseline only
  CHECK(h.SamplesOf("a").size() == 2);
  const std::string j = h.Json(0);
  CHECK(j.find("\"name\":\"b\"") == std::string::npos);
  CHECK(j.find("\"name\":\"c\"") < j.find("\"name\":\"a\""));
  // Added back: a new history, not the old one.
  h.Record(4, {{"a", Routed(6)}, {"b", Routed(100)}});
  h.Record(5, {{"a", Routed(6)}, {"b", Routed(101)}});
  const auto b = h.SamplesOf("b");
  REQUIRE(b.size() == 1);
  CHECK(b[0].routed == 1);
}

TEST_CASE("history: the routed rate averages the samples of the window", "[admin][history]") {
  History h;
  h.Record(0, {{"a", Routed(0)}});
  uint64_t total = 0;
  for (int64_t t = 1; t <= 20; ++t) {
    total += t <= 10 ? 100 : 0;  // 100/s for ten seconds, then quiet
    h.Record(t, {{"a", Routed(total)}});
  }
  double rate = -1;
  REQUIRE(h.RoutedRate("a", 10, &rate));
  CHECK(rate == 0);
  REQUIRE(h.RoutedRate("a", 20, &rate));
  CHECK(rate == Approx(50));
  REQUIRE(h.RoutedRate("a", 15, &rate));
  CHECK(rate == Approx(500.0 / 15));
  // Less history than the window: the average of what there is.
  REQUIRE(h.RoutedRate("a", 3600, &rate));
  CHECK(rate == Approx(50));
  CHECK_FALSE(h.RoutedRate("missing", 10, &rate));
}

TEST_CASE("history: a sample spanning a gap counts only its share of the window",
          "[admin][history]") {
  History h;
  h.Record(0, {{"a", Routed(0)}});
  h.Record(20, {{"a", Routed(200)}});  // 10/s over 20 s
  double rate = -1;
  REQUIRE(h.RoutedRate("a", 10, &rate));
  CHECK(rate == Approx(10));
}

TEST_CASE("history: since= must be unix seconds, at most 12 digits", "[admin][history]") {
  int64_t since = -1;
  std::string error;
  REQUIRE(ParseSince("", &since, &error));
  CHECK(since == 0);
  REQUIRE(ParseSince("1796433066", &since, &error));
  CHECK(since == 1796433066);
  for (const char* bad : {"-1", "abc", "1.5", " 1", "1e9", "0x10", "1234567890123"}) {
    INFO(bad);
    CHECK_FALSE(ParseSince(bad, &since, &error));
    CHECK(error.rfind("since: expected unix seconds", 0) == 0);
  }
  CHECK_FALSE(ParseSince(std::string(10000, '9'), &since, &error));
  CHECK(error.size() < 200);  // the value is cut, not echoed whole
}

}  // namespace
}  // namespace forkd::admin
