// Alerts: forkd watches its own signals and reports a rule's transitions as
// ordinary events, appended to its log and routed to the notify destinations,
// so they are durable and delivered with those destinations' retries.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/clock.h"
#include "server.h"

namespace forkd {

namespace {
// How long Tick waits for the log to commit alert events. Past it they are
// still queued in ingest and committed with the next group.
constexpr int64_t kInjectTimeoutMs = 1000;
}  // namespace

// Counting a file's lines is paid only when it changed: a dead letters file
// is appended to, or rewritten by a replay or a drop.
uint64_t Server::DeadLetterLines(const std::string& destination) {
  const std::string path = dead_letters_->PathFor(destination);
  struct stat st {};
  DeadLetterFile& f = dead_letter_files_[destination];
  if (::stat(path.c_str(), &st) != 0) {
    f = DeadLetterFile{};
    return 0;
  }
  const int64_t mtime_ns =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (f.size == static_cast<int64_t>(st.st_size) && f.mtime_ns == mtime_ns) return f.lines;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return f.lines;
  uint64_t lines = 0;
  char buf[64 * 1024];
  char last = '\n';
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      // Non-empty lines, as DeadLetters::Read counts them.
      if (buf[i] == '\n' && last != '\n') ++lines;
      last = buf[i];
    }
  }
  ::close(fd);
  if (last != '\n') ++lines;  // a last line without its newline yet
  f = DeadLetterFile{static_cast<int64_t>(st.st_size), mtime_ns, lines};
  return lines;
}

alerts::Reading Server::ReadSignals(const Destinations& snapshot) const {
  using alerts::Signal;
  alerts::Reading r;
  const auto& [config, pipelines, failed, removed, start_failures] = snapshot;
  const uint64_t end = log_->durable_next_lsn();
  const int64_t now = WallMicros();
  const bool lag_seconds = alerts_->Uses(Signal::kDestinationLagSeconds);
  for (const auto& d : config->destinations) {
    std::shared_ptr<pipeline::Pipeline> p;
    for (const auto& q : pipelines) {
      if (q->name() == d.name) p = q;
    }
    const FailedStart* f = nullptr;
    for (const auto& x : failed) {
      if (x.name == d.name) f = &x;
    }
    if (!p && !f) continue;  // between a reload's stop and start
    if (p) {
      const bool breaker = p->breaker_state() != pipeline::Breaker::State::kClosed;
      r.Set(Signal::kDestinationFailing, d.name, !p->healthy() || breaker ? 1 : 0);
      r.Set(Signal::kDestinationBreakerOpen, d.name, breaker ? 1 : 0);
      r.Set(Signal::kDestinationLagEvents, d.name,
            static_cast<double>(end - std::min(end, p->delivered_next_lsn())));
      if (lag_seconds) {
        r.Set(Signal::kDestinationLagSeconds, d.name,
              LagSeconds(d.name, p->delivered_position(), end, now));
      }
      r.Set(Signal::kShed, d.name, static_cast<double>(p->stats().shed.load()));
    } else {
      r.Set(Signal::kDestinationFailing, d.name, 1);
      r.Set(Signal::kDestinationBreakerOpen, d.name, 0);
      r.Set(Signal::kDestinationLagEvents, d.name,
            static_cast<double>(end - std::min(end, f->hold.next_lsn)));
      if (lag_seconds) {
        r.Set(Signal::kDestinationLagSeconds, d.name, LagSeconds(d.name, f->hold, end, now));
      }
      r.Set(Signal::kShed, d.name, 0);
    }
  }
  if (alerts_->Uses(Signal::kVerifyDifferences) && verify_) {
    // Each destination's count from the last run, held until the next.
    if (const auto last = verify_->last()) {
      for (const auto& d : last->destinations) {
        r.Set(Signal::kVerifyDifferences, d.name,
              d.error.empty() ? static_cast<double>(d.missing + d.unexpected + d.differing) : -1);
      }
    }
  }
  if (alerts_->Uses(Signal::kWalDiskUsedRatio)) {
    struct statvfs vfs {};
    if (::statvfs(config->data_dir.c_str(), &vfs) == 0 && vfs.f_blocks > 0) {
      r.Set(Signal::kWalDiskUsedRatio, "",
            1.0 - static_cast<double>(vfs.f_bavail) / static_cast<double>(vfs.f_blocks));
    }
  }
  return r;
}

void Server::QueueAlerts(const std::vector<alerts::Transition>& transitions,
                         const Config& config) {
  for (const auto& t : transitions) {
    const std::string about = t.destination.empty() ? "" : " of " + t.destination;
    const char* op = t.above ? ">" : "<";
    if (t.firing) {
      spdlog::warn("alert {} firing: {}{} is {} ({} {}) since {} ms ago", t.alert,
                   alerts::SpecOf(t.signal).name, about, t.value, op, t.threshold,
                   t.at_ms - t.since_ms);
    } else {
      spdlog::info("alert {} resolved: {}{} is {}", t.alert, alerts::SpecOf(t.signal).name,
                   about, t.value);
    }
    // A reload that removed the alerts section: the resolved ones are only logged.
    if (config.alerts.notify.empty()) continue;
    alert_events_.push_back(alerts::EncodeEvent(t, config.alerts.notify, config.instance));
  }
}

void Server::EvaluateAlerts() {
  const Destinations snapshot = SnapshotDestinations();
  const Config& config = *snapshot.config;
  const int64_t now_ms = WallMicros() / 1000;
  if (!alerts_) alerts_ = std::make_unique<alerts::RuleEvaluator>(config.alerts);
  if (config.alerts.enabled()) {
    alerts::Reading r = ReadSignals(snapshot);
    if (alerts_->Uses(alerts::Signal::kDeadLetters)) {
      for (const auto& d : config.destinations) {
        r.Set(alerts::Signal::kDeadLetters, d.name, static_cast<double>(DeadLetterLines(d.name)));
      }
    }
    if (alerts_->Uses(alerts::Signal::kRate)) {
      for (const auto& d : config.destinations) {
        double v = 0;
        if (history_.RoutedRate(d.name, alerts::kRateWindowSeconds, &v)) {
          r.Set(alerts::Signal::kRate, d.name, v);
        }
      }
    }
    QueueAlerts(alerts_->Evaluate(r, now_ms), config);
  }
  if (alert_events_.empty()) return;
  std::vector<std::string> events;
  events.swap(alert_events_);
  const size_t n = events.size();
  Status s = ingest_->Inject(std::move(events), kInjectTimeoutMs);
  if (!s.ok()) {
    // A timeout leaves them queued in ingest: they reach the log with its
    // next commit. Only a stopping forkd drops them.
    spdlog::warn("alerts: {} event(s) not yet in the log: {}", n, s.message());
  }
}

}  // namespace forkd
