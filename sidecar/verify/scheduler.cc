#include "verify/scheduler.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace forkd::verify {

namespace {
constexpr int64_t kFirstRunMs = 10000;
}  // namespace

Scheduler::Scheduler(ConfigFn config, std::string instance)
    : config_(std::move(config)), instance_(std::move(instance)) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fork/verify");
    Run();
  });
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const VerifyReport> Scheduler::last() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

void Scheduler::Run() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point next{};
  bool first = true;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const std::shared_ptr<const Config> config = config_();
    if (!config->verify.enabled()) {
      // Not scheduled (a reload may add it): look again in a second.
      first = true;
      cv_.wait_for(lock, std::chrono::seconds(1));
      continue;
    }
    if (first) {
      next = Clock::now() + std::chrono::milliseconds(std::min(kFirstRunMs, config->verify.every_ms));
      first = false;
    }
    if (Clock::now() < next) {
      // Wake at least every second so a reload that shortens `every` counts.
      cv_.wait_until(lock, std::min(next, Clock::now() + std::chrono::seconds(1)));
      continue;
    }
    lock.unlock();
    VerifyOptions o;
    o.destinations = config->verify.destinations;
    o.since_ms = config->verify.since_ms;
    o.instance = instance_;
    auto report = std::make_shared<VerifyReport>();
    const Status s = Verify(*config, o, report.get());
    if (!s.ok()) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("verify: {}", s.message());
    } else {
      for (const auto& d : report->destinations) {
        if (!d.error.empty()) {
          spdlog::warn("verify: {}: {}", d.name, d.error);
        } else if (!d.agrees()) {
          spdlog::warn("verify: {}: {} expected, {} missing, {} unexpected, {} differing", d.name,
                       d.expected, d.missing, d.unexpected, d.differing);
        }
      }
      spdlog::info("verify: {} destination(s) checked in {} ms: {}", report->destinations.size(),
                   report->took_us / 1000, report->agrees() ? "all agree" : "differences found");
    }
    runs_.fetch_add(1, std::memory_order_relaxed);
    next = Clock::now() + std::chrono::milliseconds(config->verify.every_ms);
    lock.lock();
    if (s.ok()) last_ = std::move(report);
  }
}

}  // namespace forkd::verify
