// Flow control as pure logic: backoff with full jitter, Retry-After and
// limits; the circuit breaker's states; the token bucket; the priority gate.
#include "pipeline/flow.h"

#include <catch2/catch.hpp>

namespace forkd::pipeline {
namespace {

TEST_CASE("backoff: full jitter stays within [0, min(max, initial * 2^n)]", "[flow]") {
  Backoff b(Backoff::Policy{100, 5000, 0, 0});
  const int64_t ceilings[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
  for (int64_t ceiling : ceilings) {
    b.Failed(0, "e");
    CHECK(b.NextWaitMs(0.0, -1) == 0);
    CHECK(b.NextWaitMs(0.999999, -1) == ceiling);
    const int64_t mid = b.NextWaitMs(0.5, -1);
    CHECK(mid >= ceiling / 2 - 1);
    CHECK(mid <= ceiling / 2 + 1);
  }
  // Far past the shift range the ceiling is still max, not an overflow.
  for (int i = 0; i < 100; ++i) b.Failed(0, "e");
  CHECK(b.NextWaitMs(0.999999, -1) == 5000);
  CHECK(b.NextWaitMs(0.0, -1) == 0);
}

TEST_CASE("backoff: Retry-After is a floor on the wait, even past max", "[flow]") {
  Backoff b(Backoff::Policy{100, 1000, 0, 0});
  b.Failed(0, "429");
  CHECK(b.NextWaitMs(0.0, 3000) == 3000);
  CHECK(b.NextWaitMs(0.999, 50) >= 50);
  CHECK(b.NextWaitMs(0.0, -1) == 0);
}

TEST_CASE("backoff: limits in attempts and in age; first and last error kept", "[flow]") {
  Backoff by_attempts(Backoff::Policy{100, 1000, 3, 0});
  by_attempts.Failed(10, "first");
  by_attempts.Failed(20, "second");
  CHECK_FALSE(by_attempts.Exhausted(20));
  by_attempts.Failed(30, "third");
  CHECK(by_attempts.Exhausted(30));
  CHECK(by_attempts.attempts() == 3);
  CHECK(by_attempts.first_error() == "first");
  CHECK(by_attempts.last_error() == "third");

  Backoff by_age(Backoff::Policy{100, 1000, 0, 5000});
  CHECK_FALSE(by_age.Exhausted(1000000));  // no failure yet: nothing to age
  by_age.Failed(1000, "down");
  CHECK_FALSE(by_age.Exhausted(5999));
  CHECK(by_age.Exhausted(6000));

  Backoff unlimited(Backoff::Policy{100, 1000, 0, 0});
  for (int i = 0; i < 1000; ++i) unlimited.Failed(i * 1000000, "down");
  CHECK_FALSE(unlimited.Exhausted(2000000000));
}

TEST_CASE("breaker: opens after N consecutive failures, probes after the cooldown", "[flow]") {
  Breaker br(3, 1000);
  CHECK(br.state() == Breaker::State::kClosed);
  CHECK_FALSE(br.Failed(0));
  CHECK_FALSE(br.Failed(1));
  CHECK(br.WaitMs(2) == 0);
  CHECK(br.Failed(2));  // the third opens it
  CHECK(br.state() == Breaker::State::kOpen);
  CHECK(br.opens() == 1);
  CHECK(br.WaitMs(502) == 500);
  CHECK(br.state() == Breaker::State::kOpen);
  CHECK(br.WaitMs(1002) == 0);  // cooldown over: one probe may go
  CHECK(br.state() == Breaker::State::kHalfOpen);
  CHECK(br.Failed(1003));  // the probe failed: open again, a new cooldown
  CHECK(br.state() == Breaker::State::kOpen);
  CHECK(br.opens() == 2);
  CHECK(br.WaitMs(1503) == 500);
  CHECK(br.WaitMs(2003) == 0);
  br.Succeeded();  // the probe went through
  CHECK(br.state() == Breaker::State::kClosed);
  // Counting starts over after a success.
  CHECK_FALSE(br.Failed(3000));
  CHECK_FALSE(br.Failed(3001));
  CHECK(br.state() == Breaker::State::kClosed);
}

TEST_CASE("breaker: failures 0 never opens", "[flow]") {
  Breaker br(0, 1000);
  for (int i = 0; i < 100; ++i) CHECK_FALSE(br.Failed(i));
  CHECK(br.state() == Breaker::State::kClosed);
  CHECK(br.WaitMs(0) == 0);
}

TEST_CASE("token bucket: burst, then the rate; wait until the next token", "[flow]") {
  TokenBucket tb(100, 10, 0);  // 100/s, burst 10
  CHECK(tb.enabled());
  int taken = 0;
  while (tb.Ready(0)) {
    tb.Take(0);
    ++taken;
  }
  CHECK(taken == 10);
  CHECK(tb.WaitUs(0) > 9000);  // 1/100 s for the next
  CHECK(tb.WaitUs(0) <= 10001);
  CHECK_FALSE(tb.Ready(5000));
  CHECK(tb.Ready(10001));
  // A second of idling refills to the burst, no more.
  CHECK(tb.Ready(5000000));
  taken = 0;
  while (tb.Ready(5000000)) {
    tb.Take(5000000);
    ++taken;
  }
  CHECK(taken == 10);
  // Over 1 s at most rate + burst events pass.
  int64_t now = 5000000;
  taken = 0;
  for (; now < 6000000; now += 1000) {
    while (tb.Ready(now)) {
      tb.Take(now);
      ++taken;
    }
  }
  CHECK(taken >= 99);
  CHECK(taken <= 101);
  TokenBucket off(0, 0, 0);
  CHECK_FALSE(off.enabled());
}

TEST_CASE("priority gate: a high destination's report holds for a while", "[flow]") {
  PriorityGate g;
  CHECK_FALSE(g.HighBehind(0));
  g.SetBehind(true, 1000);
  CHECK(g.HighBehind(1000));
  CHECK(g.HighBehind(1000 + PriorityGate::kHoldUs - 1));
  CHECK_FALSE(g.HighBehind(1000 + PriorityGate::kHoldUs));
  g.SetBehind(false, 2000);  // not behind: does not extend it, nor cancel another's
  CHECK(g.HighBehind(2000));
}

}  // namespace
}  // namespace forkd::pipeline
