// Flow control for one destination's pipeline, as pure logic with the clock
// passed in, so that it is tested without sleeping:
//   Backoff      exponential backoff with full jitter, Retry-After, limits
//   Breaker      the circuit breaker: closed, open for a cooldown, half-open
//   TokenBucket  the rate limit
//   PriorityGate low-priority destinations yield while a high one lags
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

namespace forkd::pipeline {

// The retries of one batch.
class Backoff {
 public:
  struct Policy {
    int64_t initial_ms = 100;
    int64_t max_ms = 30000;
    int64_t max_attempts = 0;  // 0: unlimited
    int64_t max_age_ms = 0;    // 0: unlimited
  };
  explicit Backoff(const Policy& p) : p_(p) {}

  // Records a failed attempt at `now_ms` with its error.
  void Failed(int64_t now_ms, const std::string& error) {
    if (attempts_ == 0) {
      first_ms_ = now_ms;
      first_error_ = error;
    }
    ++attempts_;
    last_error_ = error;
  }
  // True once the batch has failed max_attempts times or for max_age.
  bool Exhausted(int64_t now_ms) const {
    if (p_.max_attempts > 0 && attempts_ >= p_.max_attempts) return true;
    return p_.max_age_ms > 0 && attempts_ > 0 && now_ms - first_ms_ >= p_.max_age_ms;
  }
  // The wait before the next attempt: full jitter, a uniform draw in
  // [0, min(max, initial * 2^(attempts-1))] from `unit` in [0, 1); at least
  // `retry_after_ms` when the store asked for it (-1: it did not).
  int64_t NextWaitMs(double unit, int64_t retry_after_ms) const {
    const int shift = static_cast<int>(std::min<int64_t>(std::max<int64_t>(attempts_ - 1, 0), 40));
    const int64_t ceiling =
        p_.initial_ms > (p_.max_ms >> shift) ? p_.max_ms : std::min(p_.max_ms, p_.initial_ms << shift);
    int64_t wait = static_cast<int64_t>(unit * static_cast<double>(ceiling + 1));
    wait = std::clamp<int64_t>(wait, 0, ceiling);
    return std::max(wait, retry_after_ms);
  }
  int64_t attempts() const { return attempts_; }
  int64_t first_ms() const { return first_ms_; }
  const std::string& first_error() const { return first_error_; }
  const std::string& last_error() const { return last_error_; }

 private:
  Policy p_;
  int64_t attempts_ = 0;
  int64_t first_ms_ = 0;
  std::string first_error_;
  std::string last_error_;
};

// Opens after `failures` consecutive failed flushes (of any batch); while
// open nothing is sent; after `cooldown_ms` one attempt goes through as a
// probe (half-open): success closes it, failure opens it again.
class Breaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
  Breaker(int64_t failures, int64_t cooldown_ms) : failures_(failures), cooldown_ms_(cooldown_ms) {}

  void Succeeded() {
    consecutive_ = 0;
    state_.store(State::kClosed, std::memory_order_relaxed);
  }
  // Returns true when this failure opened (or re-opened) the breaker.
  bool Failed(int64_t now_ms) {
    ++consecutive_;
    const State s = state();
    if (failures_ > 0 && (s == State::kHalfOpen || (s == State::kClosed && consecutive_ >= failures_))) {
      opened_ms_ = now_ms;
      state_.store(State::kOpen, std::memory_order_relaxed);
      opens_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    return false;
  }
  // How long to wait before an attempt is allowed (0: now). Moves an open
  // breaker whose cooldown has passed to half-open.
  int64_t WaitMs(int64_t now_ms) {
    if (state() != State::kOpen) return 0;
    const int64_t left = opened_ms_ + cooldown_ms_ - now_ms;
    if (left > 0) return left;
    state_.store(State::kHalfOpen, std::memory_order_relaxed);
    return 0;
  }
  State state() const { return state_.load(std::memory_order_relaxed); }
  uint64_t opens() const { return opens_.load(std::memory_order_relaxed); }

 private:
  const int64_t failures_;
  const int64_t cooldown_ms_;
  int64_t consecutive_ = 0;
  int64_t opened_ms_ = 0;
  std::atomic<State> state_{State::kClosed};
  std::atomic<uint64_t> opens_{0};
};

// Events per second, with a burst. Take() may run the bucket one event into
// debt, so a caller checks Ready() before reading the next event.
class TokenBucket {
 public:
  TokenBucket(int64_t rate, int64_t burst, int64_t now_us)
      : rate_(static_cast<double>(rate)), burst_(static_cast<double>(burst)), tokens_(burst_),
        last_us_(now_us) {}
  bool enabled() const { return rate_ > 0; }
  bool Ready(int64_t now_us) {
    Refill(now_us);
    return tokens_ >= 1.0;
  }
  void Take(int64_t now_us, int64_t n = 1) {
    Refill(now_us);
    tokens_ -= static_cast<double>(n);
  }
  // Microseconds until one token is available.
  int64_t WaitUs(int64_t now_us) {
    Refill(now_us);
    if (tokens_ >= 1.0) return 0;
    return static_cast<int64_t>((1.0 - tokens_) * 1e6 / rate_) + 1;
  }

 private:
  void Refill(int64_t now_us) {
    if (now_us <= last_us_) return;
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_us - last_us_) * rate_ / 1e6);
    last_us_ = now_us;
  }
  double rate_;
  double burst_;
  double tokens_;
  int64_t last_us_;
};

// Shared by every pipeline: high-priority destinations say when they fall
// behind (a full batch read while not failing), and low-priority ones pause
// between batches while any does, leaving the CPU to them.
class PriorityGate {
 public:
  void SetBehind(bool behind, int64_t now_us) {
    if (behind) behind_until_us_.store(now_us + kHoldUs, std::memory_order_relaxed);
  }
  bool HighBehind(int64_t now_us) const {
    return now_us < behind_until_us_.load(std::memory_order_relaxed);
  }
  static constexpr int64_t kHoldUs = 200000;  // a report holds for 200 ms
  static constexpr int64_t kPauseMs = 20;     // a low destination's pause per batch

 private:
  std::atomic<int64_t> behind_until_us_{0};
};

}  // namespace forkd::pipeline
