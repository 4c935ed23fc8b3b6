#include "alerts/rule_evaluator.h"

#include <algorithm>
#include <set>

#include "sinks/common/json.h"
#include "wire/msgpack.h"

namespace forkd::alerts {

Transition RuleEvaluator::Make(const Rule& r, const std::string& destination, const State& st,
                               bool firing, double value, int64_t now_ms) {
  Transition t;
  t.alert = r.name;
  t.firing = firing;
  t.signal = r.signal;
  t.destination = destination;
  t.value = value;
  t.above = r.above;
  t.threshold = r.threshold;
  t.since_ms = st.since_ms;
  t.at_ms = now_ms;
  return t;
}

bool RuleEvaluator::Uses(Signal s) const {
  return std::any_of(config_.rules.begin(), config_.rules.end(),
                     [&](const Rule& r) { return r.signal == s; });
}

std::vector<Transition> RuleEvaluator::SetConfig(AlertsConfig config, int64_t now_ms) {
  std::vector<Transition> out;
  for (auto it = states_.begin(); it != states_.end();) {
    const Rule* before = nullptr;
    for (const auto& r : config_.rules) {
      if (r.name == it->first.first) before = &r;
    }
    const Rule* after = nullptr;
    for (const auto& r : config.rules) {
      if (r.name == it->first.first) after = &r;
    }
    // A rule that now skips this destination (it became a notify one) ends too.
    const bool kept = before && after && *before == *after &&
                      !(after->destination.empty() && config.IsNotify(it->first.second));
    if (kept) {
      ++it;
      continue;
    }
    if (it->second.firing && before) {
      out.push_back(Make(*before, it->first.second, it->second, false, it->second.last, now_ms));
    }
    it = states_.erase(it);
  }
  config_ = std::move(config);
  return out;
}

std::vector<Transition> RuleEvaluator::Evaluate(const Reading& reading, int64_t now_ms) {
  std::vector<Transition> out;
  for (const auto& r : config_.rules) {
    const auto& values = reading.values[static_cast<size_t>(r.signal)];
    const bool global = !SpecOf(r.signal).per_destination;
    // The destinations this rule looks at now: those read, and those it
    // still has a state for (they resolve when they vanish).
    std::set<std::string> series;
    if (global) {
      series.insert("");
    } else if (!r.destination.empty()) {
      series.insert(r.destination);
    } else {
      for (const auto& [d, v] : values) {
        if (!config_.IsNotify(d)) series.insert(d);
      }
      for (auto it = states_.lower_bound({r.name, ""});
           it != states_.end() && it->first.first == r.name; ++it) {
        series.insert(it->first.second);
      }
    }
    for (const auto& d : series) {
      const auto v = values.find(d);
      const bool present = v != values.end();
      const bool holds = present && (r.above ? v->second > r.threshold : v->second < r.threshold);
      const Key key{r.name, d};
      auto st = states_.find(key);
      if (holds) {
        if (st == states_.end()) st = states_.emplace(key, State{now_ms, false, 0}).first;
        st->second.last = v->second;
        if (!st->second.firing && now_ms - st->second.since_ms >= r.for_ms) {
          st->second.firing = true;
          out.push_back(Make(r, d, st->second, true, v->second, now_ms));
        }
      } else if (st != states_.end()) {
        if (st->second.firing) {
          out.push_back(
              Make(r, d, st->second, false, present ? v->second : st->second.last, now_ms));
        }
        states_.erase(st);
      }
    }
  }
  return out;
}

std::vector<Transition> RuleEvaluator::Firing() const {
  std::vector<Transition> out;
  for (const auto& r : config_.rules) {
    for (auto it = states_.lower_bound({r.name, ""});
         it != states_.end() && it->first.first == r.name; ++it) {
      if (!it->second.firing) continue;
      Transition t = Make(r, it->first.second, it->second, true, it->second.last, 0);
      out.push_back(std::move(t));
    }
  }
  return out;
}

namespace {
std::string Iso(int64_t ms) {
  std::string s;
  int64_t sec = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    --sec;
  }
  sinks::AppendIsoTime(sec, static_cast<uint32_t>(rem * 1000000), &s);
  return s;
}
}  // namespace

std::string EncodeEvent(const Transition& t, const std::vector<std::string>& notify,
                        const std::string& instance) {
  const char* state = t.firing ? "firing" : "resolved";
  const std::string key = "alert-" + instance + "-" + t.alert + "-" + t.destination + "-" +
                          state + "-" + std::to_string(t.since_ms);
  wire::Buffer b;
  wire::Writer w(&b);
  w.ArrayHeader(4);
  w.ArrayHeader(static_cast<uint32_t>(notify.size()));
  for (const auto& n : notify) w.Str(n);
  w.Str(key);
  w.Nil();
  w.MapHeader(9);
  w.Str("alert");
  w.Str(t.alert);
  w.Str("state");
  w.Str(state);
  w.Str("signal");
  w.Str(SpecOf(t.signal).name);
  w.Str("destination");
  if (t.destination.empty()) {
    w.Nil();
  } else {
    w.Str(t.destination);
  }
  w.Str("value");
  w.Double(t.value);
  w.Str("threshold");
  w.Double(t.threshold);
  w.Str("since");
  w.Str(Iso(t.since_ms));
  w.Str("at");
  w.Str(Iso(t.at_ms));
  w.Str("instance");
  w.Str(instance);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace forkd::alerts
