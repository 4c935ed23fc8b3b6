// The alert rules' state machines: fed one reading of every signal at a
// time, it says which rules start firing and which resolve. Pure: no clock
// (the caller passes the time), no I/O. One thread at a time.
//
// Per rule and destination (a rule without destination watches each
// destination but the notify ones on its own): inactive -> pending (the
// condition holds; since = then) -> firing once it has held for `for` -> back
// to inactive when it stops holding, with a `resolved` transition if it was
// firing. A destination missing from a reading does not hold.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "alerts/alerts_config.h"

namespace forkd::alerts {

// One reading: per signal, destination -> value ("" for a global signal).
struct Reading {
  std::array<std::map<std::string, double>, kSignalCount> values;

  void Set(Signal s, const std::string& destination, double v) {
    values[static_cast<size_t>(s)][destination] = v;
  }
};

struct Transition {
  std::string alert;  // the rule's name
  bool firing = false;  // else resolved
  Signal signal = Signal::kDestinationFailing;
  std::string destination;  // empty for a global signal
  double value = 0;         // at the transition (resolved: the last value read, if it vanished)
  bool above = true;
  double threshold = 0;
  int64_t since_ms = 0;  // when the condition started to hold
  int64_t at_ms = 0;     // when the transition happened
};

class RuleEvaluator {
 public:
  explicit RuleEvaluator(AlertsConfig config) : config_(std::move(config)) {}

  // New rules (a reload). A rule kept unchanged keeps its state; the others
  // start over, and those that were firing are returned as resolved.
  std::vector<Transition> SetConfig(AlertsConfig config, int64_t now_ms);
  // The transitions `reading`, taken at `now_ms`, causes, in rule order.
  std::vector<Transition> Evaluate(const Reading& reading, int64_t now_ms);
  // Signals some rule reads (the caller may skip measuring the others).
  bool Uses(Signal s) const;

  const AlertsConfig& config() const { return config_; }

  // The rules firing now, in rule order then by destination (each as its
  // firing transition, with the last value read).
  std::vector<Transition> Firing() const;

 private:
  struct State {
    int64_t since_ms = 0;  // the condition holds since
    bool firing = false;
    double last = 0;
  };
  using Key = std::pair<std::string, std::string>;  // rule, destination
  static Transition Make(const Rule& r, const std::string& destination, const State& st,
                         bool firing, double value, int64_t now_ms);
  AlertsConfig config_;
  std::map<Key, State> states_;  // pending or firing
};

}  // namespace forkd::alerts

namespace forkd::alerts {

// The event appended to the log for `t`, in the stored form
// [notify, key, nil, payload]: payload {alert, state, signal, destination,
// value, threshold, since, at, instance} (destination nil for a global
// signal; since and at ISO-8601 UTC). The key, and so the event id, is
// "alert-<instance>-<alert>-<destination>-<state>-<since ms>": the same
// transition never gets two ids.
std::string EncodeEvent(const Transition& t, const std::vector<std::string>& notify,
                        const std::string& instance);

}  // namespace forkd::alerts
