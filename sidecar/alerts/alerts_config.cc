#include "alerts/alerts_config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace forkd::alerts {

const std::vector<SignalSpec>& Signals() {
  static const std::vector<SignalSpec> specs = {
      {Signal::kDestinationFailing, "destination_failing", true, true,
       "1 while the destination's last delivery attempt failed (it is retrying), its breaker "
       "is open or half-open, or its sink failed to start; else 0"},
      {Signal::kDestinationBreakerOpen, "destination_breaker_open", true, true,
       "1 while the destination's circuit breaker is open or half-open; else 0"},
      {Signal::kDestinationLagEvents, "destination_lag_events", true, false,
       "Log entries the destination has not processed (lag_events in /api/status)"},
      {Signal::kDestinationLagSeconds, "destination_lag_seconds", true, false,
       "Age in seconds of the oldest log entry the destination has not processed"},
      {Signal::kDeadLetters, "dead_letters", true, false,
       "Lines in the destination's dead letters file (they go down with `forkd dlq replay` "
       "or `drop`)"},
      {Signal::kShed, "shed", true, false,
       "Events the destination skipped past a shed backlog quota since forkd started"},
      {Signal::kWalDiskUsedRatio, "wal_disk_used_ratio", false, false,
       "Share of the file system holding data_dir that is in use, 0 to 1 (statvfs)"},
      {Signal::kVerifyDifferences, "verify_differences", true, false,
       "Rows the last scheduled verify (`verify:`) found missing, unexpected or differing in "
       "the destination's store; -1 when it could not read the store"},
      {Signal::kRate, "rate", true, false,
       "Events per second routed to the destination (taken into the log for it, whether or "
       "not delivered yet), averaged over the last 10 s; `below` finds a destination gone "
       "quiet, `above` a flood. Not judged in forkd's first second"},
  };
  return specs;
}

const SignalSpec& SpecOf(Signal s) { return Signals()[static_cast<size_t>(s)]; }

bool AlertsConfig::IsNotify(std::string_view destination) const {
  return std::find(notify.begin(), notify.end(), destination) != notify.end();
}

const std::vector<OptionSpec>& AlertsOptions() {
  static const std::vector<OptionSpec> specs = {
      {"notify", OptType::kNode, "",
       "Destination name or list of names that receive the alert events", true},
      {"rules", OptType::kNode, "", "The rules: a list of maps (see below)", true},
  };
  return specs;
}

const std::vector<OptionSpec>& AlertRuleOptions() {
  static const std::vector<OptionSpec> specs = {
      {"name", OptType::kString, "",
       "The alert's name, unique among the rules: 1-64 letters, digits, _ or -", true},
      {"signal", OptType::kString, "", "What is measured: one of the signals below", true},
      {"destination", OptType::kString, "",
       "The destination the signal is read for; unset: each destination except the notify "
       "ones, separately (the event names which). Not for wal_disk_used_ratio"},
      {"above", OptType::kString, "",
       "The rule holds while the value is greater than this number"},
      {"below", OptType::kString, "",
       "The rule holds while the value is less than this number. One of above and below is "
       "needed, except for destination_failing and destination_breaker_open (above: 0 then)"},
      {"for", OptType::kDuration, "0",
       "How long the rule must hold before it fires", false, {}, 0, 30ll * 86400 * 1000},
  };
  return specs;
}

std::string SignalsMarkdown() {
  std::string s = "| signal | per destination | description |\n|---|---|---|\n";
  for (const auto& sig : Signals()) {
    s += "| `" + std::string(sig.name) + "` | " + (sig.per_destination ? "yes" : "no") + " | " +
         std::string(sig.description) + " |\n";
  }
  return s;
}

namespace {

bool ValidRuleName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

bool ParseNumber(const std::string& text, double* out) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != 0 || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace

void ParseAlertsConfig(const YAML::Node& node, const std::string& file,
                       const std::vector<std::string>& destinations, AlertsConfig* out,
                       std::vector<ConfigError>* errors) {
  if (!node.IsDefined() || node.IsNull()) return;
  auto err = [&](const Mark& m, const std::string& message) {
    errors->push_back({file, m, message});
  };
  Options top;
  if (!ParseOptions(node, AlertsOptions(), {}, "alerts", file, &top, errors)) return;
  const std::vector<std::string_view> known(destinations.begin(), destinations.end());
  auto unknown = [&](const std::string& name) {
    std::string m = "unknown destination '" + name + "'";
    const std::string dym = DidYouMean(name, known);
    if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
    return m;
  };
  auto configured = [&](const std::string& name) {
    return std::find(destinations.begin(), destinations.end(), name) != destinations.end();
  };

  const YAML::Node& notify = top.Node("notify");
  std::vector<YAML::Node> names;
  if (notify.IsScalar()) {
    names.push_back(notify);
  } else if (notify.IsSequence() && notify.size() > 0) {
    for (const auto& n : notify) names.push_back(n);
  } else {
    err(MarkOf(notify), "alerts.notify: expected a destination name or a non-empty list of names");
  }
  for (const auto& n : names) {
    if (!n.IsScalar()) {
      err(MarkOf(n), "alerts.notify: expected a destination name");
    } else if (!configured(n.Scalar())) {
      err(MarkOf(n), "alerts.notify: " + unknown(n.Scalar()));
    } else if (!out->IsNotify(n.Scalar())) {
      out->notify.push_back(n.Scalar());
    }
  }

  const YAML::Node& rules = top.Node("rules");
  if (!rules.IsSequence()) {
    err(MarkOf(rules), "alerts.rules: expected a list of {name, signal, ...}");
    return;
  }
  std::vector<std::string_view> signal_names;
  for (const auto& s : Signals()) signal_names.push_back(s.name);
  for (size_t i = 0; i < rules.size(); ++i) {
    const YAML::Node r = rules[i];
    const std::string where = "alerts.rules[" + std::to_string(i) + "]";
    Options o;
    if (!ParseOptions(r, AlertRuleOptions(), {}, where, file, &o, errors)) continue;
    Rule rule;
    rule.mark = MarkOf(r);
    bool ok = true;
    rule.name = o.Str("name");
    if (!ValidRuleName(rule.name)) {
      err(o.Get("name").mark, where + ".name: names are 1-64 letters, digits, _ or -");
      ok = false;
    } else if (std::any_of(out->rules.begin(), out->rules.end(),
                           [&](const Rule& x) { return x.name == rule.name; })) {
      err(o.Get("name").mark, where + ".name: another rule is named '" + rule.name + "'");
      ok = false;
    }
    const std::string& sname = o.Str("signal");
    const SignalSpec* spec = nullptr;
    for (const auto& s : Signals()) {
      if (s.name == sname) spec = &s;
    }
    if (spec == nullptr) {
      std::string m = where + ".signal: unknown signal '" + sname + "'";
      const std::string dym = DidYouMean(sname, signal_names);
      if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
      err(o.Get("signal").mark, m);
      continue;
    }
    rule.signal = spec->signal;
    if (o.Has("destination")) {
      rule.destination = o.Str("destination");
      const Mark m = o.Get("destination").mark;
      if (!spec->per_destination) {
        err(m, where + ".destination: " + std::string(spec->name) +
                   " is measured for forkd as a whole, not per destination");
        ok = false;
      } else if (!configured(rule.destination)) {
        err(m, where + ".destination: " + unknown(rule.destination));
        ok = false;
      } else if (out->IsNotify(rule.destination)) {
        err(m, where + ".destination: '" + rule.destination +
                   "' is a notify destination: its alerts would be sent to the destination "
                   "they are about; watch it another way (logs, /metrics)");
        ok = false;
      }
    }
    if (o.Has("above") && o.Has("below")) {
      err(o.Get("below").mark, where + ": set above or below, not both");
      ok = false;
    } else if (o.Has("above") || o.Has("below")) {
      rule.above = o.Has("above");
      const char* key = rule.above ? "above" : "below";
      if (!ParseNumber(o.Str(key), &rule.threshold)) {
        err(o.Get(key).mark, where + "." + key + ": expected a number, got '" + o.Str(key) + "'");
        ok = false;
      }
    } else if (!spec->flag) {
      err(rule.mark, where + ": a threshold is missing: set above or below (a number)");
      ok = false;
    }
    rule.for_ms = o.Millis("for");
    if (ok) out->rules.push_back(std::move(rule));
  }
}

}  // namespace forkd::alerts
