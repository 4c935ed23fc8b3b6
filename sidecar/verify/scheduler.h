// forkd's own `forkd verify`, on the schedule of the `verify:` section
// (verify/verify_config.h): one thread that runs Verify every `every`, the
// first run 10 s after start (or `every`, when shorter), and keeps the last
// report for /api/status, /metrics and the alerts. It follows config
// reloads: the next run uses the config current then.
//
// Threads: its own; last() and runs() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "config/config.h"
#include "verify/verify.h"

namespace forkd::verify {

class Scheduler {
 public:
  using ConfigFn = std::function<std::shared_ptr<const Config>()>;
  Scheduler(ConfigFn config, std::string instance);
  ~Scheduler();
  void Start();
  void Stop();
  // The last finished run, or null before the first.
  std::shared_ptr<const VerifyReport> last() const;
  uint64_t runs() const { return runs_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  void Run();
  ConfigFn config_;
  const std::string instance_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                            // guarded by mu_
  std::shared_ptr<const VerifyReport> last_;     // guarded by mu_
  std::atomic<uint64_t> runs_{0};
  std::atomic<uint64_t> failures_{0};            // runs that could not start (an unreadable log)
  std::thread thread_;
};

}  // namespace forkd::verify
