#include "admin/history.h"

#include <algorithm>
#include <cstdio>

#include "sinks/common/json.h"

namespace forkd::admin {

template <typename F>
void History::Ring::ForEach(F&& f) const {
  const size_t first = (next + kCapacity - count) % kCapacity;
  for (size_t i = 0; i < count; ++i) f(samples[(first + i) % kCapacity]);
}

void History::Record(int64_t at, const std::vector<std::pair<std::string, Counters>>& readings) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, Ring> kept;
  order_.clear();
  for (const auto& [name, c] : readings) {
    order_.push_back(name);
    auto it = rings_.find(name);
    if (it == rings_.end()) {
      Ring r;
      r.samples.resize(kCapacity);
      r.last = c;
      r.last_at = at;
      kept.emplace(name, std::move(r));
      continue;
    }
    Ring r = std::move(it->second);
    rings_.erase(it);
    if (at > r.last_at) {
      const double span = static_cast<double>(at - r.last_at);
      // A counter that went down restarted from zero.
      auto rate = [&](uint64_t now, uint64_t before) {
        return static_cast<float>(static_cast<double>(now >= before ? now - before : now) / span);
      };
      Sample& s = r.samples[r.next];
      s.at = at;
      s.span = static_cast<uint32_t>(std::min<int64_t>(at - r.last_at, UINT32_MAX));
      s.routed = rate(c.routed, r.last.routed);
      s.delivered = rate(c.delivered, r.last.delivered);
      s.errors = rate(c.errors, r.last.errors);
      s.lag_events = static_cast<float>(c.lag_events);
      s.lag_seconds = static_cast<float>(c.lag_seconds);
      s.dead_letters = static_cast<float>(c.dead_letters);
      r.next = (r.next + 1) % kCapacity;
      r.count = std::min(r.count + 1, kCapacity);
      r.last = c;
      r.last_at = at;
    }
    kept.emplace(name, std::move(r));
  }
  rings_ = std::move(kept);  // the destinations no longer configured go
  now_ = std::max(now_, at);
}

bool History::RoutedRate(const std::string& destination, int64_t window, double* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rings_.find(destination);
  if (it == rings_.end() || it->second.count == 0) return false;
  const Ring& r = it->second;
  double events = 0, seconds = 0;
  for (size_t i = 0; i < r.count; ++i) {
    const Sample& s = r.samples[(r.next + kCapacity - 1 - i) % kCapacity];
    if (seconds >= static_cast<double>(window)) break;
    // The last sample may reach past the window: only its share counts.
    const double take = std::min<double>(s.span, static_cast<double>(window) - seconds);
    events += s.routed * take;
    seconds += take;
  }
  *out = seconds > 0 ? events / seconds : 0;
  return true;
}

namespace {
void AppendNumber(double v, std::string* out) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  out->append(buf);
}
}  // namespace

std::string History::Json(int64_t since) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string j = "{\"now\":" + std::to_string(now_) +
                  ",\"capacity\":" + std::to_string(kCapacity) + ",\"destinations\":[";
  bool first = true;
  for (const auto& name : order_) {
    auto it = rings_.find(name);
    if (it == rings_.end()) continue;
    const Ring& r = it->second;
    if (!first) j.push_back(',');
    first = false;
    j.append("{\"name\":");
    sinks::AppendJsonString(name, &j);
    struct Column {
      const char* key;
      double (*get)(const Sample&);
    };
    static const Column kColumns[] = {
        {"at", [](const Sample& s) { return static_cast<double>(s.at); }},
        {"span", [](const Sample& s) { return static_cast<double>(s.span); }},
        {"throughput", [](const Sample& s) { return static_cast<double>(s.delivered); }},
        {"routed", [](const Sample& s) { return static_cast<double>(s.routed); }},
        {"errors", [](const Sample& s) { return static_cast<double>(s.errors); }},
        {"lag_events", [](const Sample& s) { return static_cast<double>(s.lag_events); }},
        {"lag_seconds", [](const Sample& s) { return static_cast<double>(s.lag_seconds); }},
        {"dead_letters", [](const Sample& s) { return static_cast<double>(s.dead_letters); }},
    };
    // The samples newer than `since`: counted from the newest end, so the
    // page's poll (one or two new samples) does not walk the whole hour.
    size_t newer = 0;
    while (newer < r.count &&
           r.samples[(r.next + kCapacity - 1 - newer) % kCapacity].at > since) {
      ++newer;
    }
    const size_t first = (r.next + kCapacity - newer) % kCapacity;
    for (const Column& c : kColumns) {
      const bool whole = &c == &kColumns[0];  // seconds, printed in full
      j.append(",\"").append(c.key).append("\":[");
      for (size_t i = 0; i < newer; ++i) {
        const Sample& s = r.samples[(first + i) % kCapacity];
        if (i > 0) j.push_back(',');
        if (whole) {
          j.append(std::to_string(s.at));
        } else {
          AppendNumber(c.get(s), &j);
        }
      }
      j.push_back(']');
    }
    j.push_back('}');
  }
  j.append("]}\n");
  return j;
}

std::vector<Sample> History::SamplesOf(const std::string& destination) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Sample> out;
  auto it = rings_.find(destination);
  if (it != rings_.end()) it->second.ForEach([&](const Sample& s) { out.push_back(s); });
  return out;
}

bool ParseSince(const std::string& text, int64_t* out, std::string* error) {
  if (text.empty()) {
    *out = 0;
    return true;
  }
  if (text.size() > 12 || !std::all_of(text.begin(), text.end(),
                                       [](char c) { return c >= '0' && c <= '9'; })) {
    std::string shown = text.size() > 40 ? text.substr(0, 40) + "..." : text;
    *error = "since: expected unix seconds (a whole number of at most 12 digits), got '" +
             shown + "'";
    return false;
  }
  *out = std::stoll(text);
  return true;
}

}  // namespace forkd::admin
static_assert(sizeof(forkd::admin::Sample) == 40, "history.h and the docs say 40 bytes a sample");
