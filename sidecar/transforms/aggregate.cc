#include "transforms/aggregate.h"

#include <algorithm>
#include <cmath>

#include "sinks/common/json.h"
#include "transforms/expr.h"
#include "transforms/steps.h"

namespace forkd::transforms {
namespace {

constexpr int kCheckpointVersion = 1;

uint64_t Fnv(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

bool ParseMeasure(const std::string& text, Measure* m, std::string* error) {
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open ||
      close + 1 != text.size()) {
    *error = "expected count(), sum(field), min(field), max(field) or avg(field), got '" + text + "'";
    return false;
  }
  std::string fn = text.substr(0, open);
  while (!fn.empty() && fn.back() == ' ') fn.pop_back();
  std::string arg = text.substr(open + 1, close - open - 1);
  while (!arg.empty() && arg.front() == ' ') arg.erase(0, 1);
  while (!arg.empty() && arg.back() == ' ') arg.pop_back();
  if (fn == "count") {
    m->fn = Measure::Fn::kCount;
    if (!arg.empty()) {
      *error = "count() takes no field: it counts events";
      return false;
    }
    return true;
  }
  if (fn == "sum") m->fn = Measure::Fn::kSum;
  else if (fn == "min") m->fn = Measure::Fn::kMin;
  else if (fn == "max") m->fn = Measure::Fn::kMax;
  else if (fn == "avg") m->fn = Measure::Fn::kAvg;
  else {
    std::string dym = DidYouMean(fn, {"count", "sum", "min", "max", "avg"});
    *error = "unknown measure '" + fn + "'" + (dym.empty() ? "" : " (did you mean '" + dym + "'?)") +
             "; expected count, sum, min, max or avg";
    return false;
  }
  if (arg.empty()) {
    *error = fn + "() needs a field: " + fn + "(amount)";
    return false;
  }
  return ParsePath(arg, &m->field, error);
}

}  // namespace

bool ParseWindow(std::string_view s, int64_t* ms) {
  if (s == "daily" || s == "day") return *ms = 86400000, true;
  if (s == "hourly" || s == "hour") return *ms = 3600000, true;
  if (s == "minutely" || s == "minute") return *ms = 60000, true;
  int64_t v;
  if (!ParseDurationMs(std::string(s), &v) || v <= 0) return false;
  *ms = v;
  return true;
}

std::string FormatWindow(int64_t ms) {
  if (ms % 86400000 == 0) return std::to_string(ms / 86400000) + "d";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

const std::vector<OptionSpec>& AggregateOptions() {
  static const std::vector<OptionSpec> specs = {
      {"window", OptType::kString, "1d",
       "Window length: 1m, 1h, 1d (or minute, hour, day, and any duration); windows start at "
       "multiples of it since the epoch, in UTC. A call's `aggregate: 'hourly'` overrides it"},
      {"time_field", OptType::kString, "",
       "Event-time field (epoch ms, ISO-8601 or a timestamp); the receipt time when unset or "
       "missing"},
      {"group_by", OptType::kNode, "", "Field paths to group by"},
      {"measures", OptType::kNode, "",
       "Map of output name to count(), sum(f), min(f), max(f) or avg(f); `count: count()` when "
       "unset"},
      {"lateness", OptType::kDuration, "1h",
       "How long after its end a window still takes events; later ones go to dead letters"},
      {"emit_every", OptType::kDuration, "1s", "Rows that changed are emitted at most this often",
       false, {}, 1, 86400000},
  };
  return specs;
}

std::shared_ptr<const AggregateSpec> ParseAggregate(const YAML::Node& args,
                                                    const std::string& path,
                                                    const ParseContext& pc) {
  Options o;
  if (!ParseOptions(args, AggregateOptions(), {}, path, pc.file, &o, pc.errors)) return nullptr;
  auto spec = std::make_shared<AggregateSpec>();
  bool ok = true;
  if (!ParseWindow(o.Str("window"), &spec->window_ms)) {
    pc.Error(o.Node("window"), path + ".window",
             "expected a window like 1m, 1h, 1d, hourly or daily, got '" + o.Str("window") + "'");
    ok = false;
  }
  if (o.Has("time_field")) {
    spec->has_time_field = ParseFieldPath(o.Node("time_field"), path + ".time_field", pc,
                                          &spec->time_field);
    ok &= spec->has_time_field;
  }
  if (o.Has("group_by")) ok &= ParsePathList(o.Node("group_by"), path + ".group_by", pc, &spec->group_by);
  if (o.Has("measures")) {
    const YAML::Node m = o.Node("measures");
    if (!m.IsMap() || m.size() == 0) {
      pc.Error(m, path + ".measures", "expected a map of name: count() | sum(field) | ...");
      ok = false;
    } else {
      for (auto it = m.begin(); it != m.end(); ++it) {
        Measure me;
        me.name = it->first.Scalar();
        std::string error;
        if (!it->second.IsScalar() || !ParseMeasure(it->second.Scalar(), &me, &error)) {
          if (error.empty()) error = "expected count(), sum(field), min(field), max(field) or avg(field)";
          pc.Error(it->second, path + ".measures." + me.name, error);
          ok = false;
          continue;
        }
        spec->measures.push_back(std::move(me));
      }
    }
  } else {
    spec->measures.push_back(Measure{"count", Measure::Fn::kCount, {}});
  }
  // Output names must not collide.
  std::vector<std::string> names = {"window_start", "window"};
  for (const Path& g : spec->group_by) names.push_back(g.text);
  for (const Measure& me : spec->measures) names.push_back(me.name);
  for (const std::string& n : names) {
    if (n.rfind("_fork_", 0) == 0) {
      pc.Error(args, path, "the output field '" + n + "' starts with _fork_, which forkd reserves");
      ok = false;
      break;
    }
  }
  for (size_t i = 0; i < names.size() && ok; ++i) {
    for (size_t j = i + 1; j < names.size(); ++j) {
      if (names[i] == names[j]) {
        pc.Error(args, path, "two output fields are named '" + names[i] +
                                 "' (window_start and window are taken by the row)");
        ok = false;
        break;
      }
    }
  }
  spec->lateness_ms = o.Millis("lateness");
  spec->emit_every_ms = o.Millis("emit_every");
  if (!ok) return nullptr;
  std::string fp = std::to_string(spec->window_ms) + "|" + spec->time_field.text + "|";
  for (const Path& g : spec->group_by) fp += g.text + ",";
  for (const Measure& me : spec->measures) {
    fp += me.name + "=" + std::to_string(static_cast<int>(me.fn)) + "(" + me.field.text + "),";
  }
  spec->fingerprint = Fnv(fp);
  return spec;
}

// ---- Aggregator ----

Aggregator::Aggregator(std::shared_ptr<const AggregateSpec> spec) : spec_(std::move(spec)) {
  key_.reserve(128);
}

Outcome Aggregator::Add(const Doc& doc, int64_t recv_us, int64_t window_ms, std::string* reason) {
  const AggregateSpec& s = *spec_;
  if (window_ms <= 0) window_ms = s.window_ms;
  int64_t t = recv_us / 1000;
  if (s.has_time_field) {
    const RawValue v = doc.Lookup(s.time_field);
    if (v.found() && v.data[0] != 0xc0) {
      wire::Reader rd(v.data, v.size);
      if (!ReadTime(rd.Next(), &t)) {
        *reason = "aggregate: " + s.time_field.text +
                  " is not a time (expected epoch milliseconds or ISO-8601 text)";
        return Outcome::kDeadLetter;
      }
    }
  }
  const int64_t start = FloorDiv(t, window_ms) * window_ms;
  if (watermark_ms_ != INT64_MIN && start + window_ms + s.lateness_ms <= watermark_ms_) {
    ++late_;
    std::string when;
    FormatIsoMillis(start, &when);
    *reason = "aggregate: event time is past the allowed lateness of its window (" +
              FormatWindow(window_ms) + " from " + when + ")";
    return Outcome::kDeadLetter;
  }
  if (t > watermark_ms_) watermark_ms_ = t;

  key_.clear();
  key_.append(reinterpret_cast<const char*>(&window_ms), 8);
  key_.append(reinterpret_cast<const char*>(&start), 8);
  const size_t values_at = key_.size();
  for (const Path& g : s.group_by) {
    const RawValue v = doc.Lookup(g);
    if (v.found()) {
      key_.append(reinterpret_cast<const char*>(v.data), v.size);
    } else {
      key_.push_back(static_cast<char>(0xc0));
    }
  }
  auto it = groups_.find(key_);
  if (it == groups_.end()) {
    Group g;
    g.window_ms = window_ms;
    g.start_ms = start;
    g.values.assign(key_, values_at, std::string::npos);
    g.accs.resize(s.measures.size());
    it = groups_.emplace(key_, std::move(g)).first;
  }
  Group& g = it->second;
  ++g.count;
  for (size_t i = 0; i < s.measures.size(); ++i) {
    const Measure& m = s.measures[i];
    if (m.fn == Measure::Fn::kCount) continue;
    const RawValue raw = doc.Lookup(m.field);
    if (!raw.found()) continue;
    const expr::Val v = expr::FromRaw(raw);
    if (!v.is_number()) continue;
    Acc& a = g.accs[i];
    const double d = v.number();
    if (a.n == 0) {
      a.min = a.max = d;
    } else {
      a.min = std::min(a.min, d);
      a.max = std::max(a.max, d);
    }
    ++a.n;
    if (v.t == expr::Val::T::kInt && !a.is_float) {
      int64_t sum;
      if (__builtin_add_overflow(a.isum, v.i, &sum)) {
        a.is_float = true;
        a.fsum = static_cast<double>(a.isum) + d;
        a.isum = 0;
      } else {
        a.isum = sum;
      }
    } else {
      if (!a.is_float) {
        a.is_float = true;
        a.fsum = static_cast<double>(a.isum);
        a.isum = 0;
      }
      a.fsum += d;
    }
    if (v.t != expr::Val::T::kInt) a.all_int = false;
  }
  if (!g.dirty) {
    g.dirty = true;
    ++dirty_count_;
  }
  return Outcome::kKeep;
}

void Aggregator::Row(const Group& g, wire::Buffer* out, std::string* id) const {
  const AggregateSpec& s = *spec_;
  wire::Writer w(out);
  const bool partial = !instance_.empty();
  size_t avgs = 0;
  for (const Measure& m : s.measures) avgs += m.fn == Measure::Fn::kAvg;
  w.MapHeader(static_cast<uint32_t>(2 + s.group_by.size() + s.measures.size() +
                                    (partial ? 2 + 2 * avgs : 0)));
  std::string start;
  FormatIsoMillis(g.start_ms, &start);
  const std::string window = FormatWindow(g.window_ms);
  // The row id: "<window start>/<window>/[<group values as JSON>]", prefixed
  // with "<instance>/" for a partial row.
  id->clear();
  if (partial) id->append(instance_).push_back('/');
  const size_t row_at = id->size();
  id->append(start).append("/").append(window).append("/[");
  wire::Reader rd(reinterpret_cast<const uint8_t*>(g.values.data()), g.values.size());
  for (size_t i = 0; i < s.group_by.size(); ++i) {
    const uint8_t* p = rd.pos();
    rd.Skip();
    if (i) id->push_back(',');
    sinks::AppendJson(p, id);
  }
  id->push_back(']');
  if (partial) {
    w.Str("_fork_instance");
    w.Str(instance_);
    w.Str("_fork_row");
    w.Str(std::string_view(*id).substr(row_at));
  }
  w.Str("window_start");
  w.Str(start);
  w.Str("window");
  w.Str(window);
  rd = wire::Reader(reinterpret_cast<const uint8_t*>(g.values.data()), g.values.size());
  for (size_t i = 0; i < s.group_by.size(); ++i) {
    const uint8_t* p = rd.pos();
    rd.Skip();
    w.Str(s.group_by[i].text);
    w.Raw(p, static_cast<size_t>(rd.pos() - p));
  }
  for (size_t i = 0; i < s.measures.size(); ++i) {
    const Measure& m = s.measures[i];
    const Acc& a = g.accs[i];
    w.Str(m.name);
    switch (m.fn) {
      case Measure::Fn::kCount: w.Int(g.count); break;
      case Measure::Fn::kSum:
        if (a.is_float) {
          w.Double(a.fsum);
        } else {
          w.Int(a.isum);
        }
        break;
      case Measure::Fn::kMin:
      case Measure::Fn::kMax: {
        const double v = m.fn == Measure::Fn::kMin ? a.min : a.max;
        if (a.n == 0) {
          w.Nil();
        } else if (a.all_int && std::fabs(v) < 9e15) {
          w.Int(static_cast<int64_t>(v));
        } else {
          w.Double(v);
        }
        break;
      }
      case Measure::Fn::kAvg:
        if (a.n == 0) {
          w.Nil();
        } else {
          w.Double((a.is_float ? a.fsum : static_cast<double>(a.isum)) / static_cast<double>(a.n));
        }
        break;
    }
  }
  if (!partial) return;
  // An average merges from its sum and count, never from the averages.
  for (size_t i = 0; i < s.measures.size(); ++i) {
    const Measure& m = s.measures[i];
    if (m.fn != Measure::Fn::kAvg) continue;
    const Acc& a = g.accs[i];
    w.Str(kPartialSumPrefix + m.name);
    w.Double(a.is_float ? a.fsum : static_cast<double>(a.isum));
    w.Str(kPartialCountPrefix + m.name);
    w.Int(a.n);
  }
}

void Aggregator::Emit(
    const std::function<void(std::string_view id, const wire::Buffer& row)>& emit) {
  static thread_local wire::Buffer row;
  static thread_local std::string id;
  const int64_t lateness = spec_->lateness_ms;
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& g = it->second;
    if (g.dirty) {
      row.clear();
      Row(g, &row, &id);
      emit(id, row);
      g.dirty = false;
      --dirty_count_;
    }
    if (watermark_ms_ != INT64_MIN && g.start_ms + g.window_ms + lateness <= watermark_ms_) {
      it = groups_.erase(it);  // closed: its final row is out
    } else {
      ++it;
    }
  }
}

std::string Aggregator::Checkpoint() const {
  wire::Buffer b(64 + groups_.size() * 64);
  wire::Writer w(&b);
  w.ArrayHeader(4);
  w.Int(kCheckpointVersion);
  w.Uint(spec_->fingerprint);
  w.Int(watermark_ms_);
  w.ArrayHeader(static_cast<uint32_t>(groups_.size()));
  for (const auto& [key, g] : groups_) {
    w.ArrayHeader(6);
    w.Int(g.window_ms);
    w.Int(g.start_ms);
    w.Bin(g.values.data(), g.values.size());
    w.Int(g.count);
    w.Bool(g.dirty);
    w.ArrayHeader(static_cast<uint32_t>(g.accs.size()));
    for (const Acc& a : g.accs) {
      w.ArrayHeader(7);
      w.Int(a.n);
      w.Int(a.isum);
      w.Double(a.fsum);
      w.Bool(a.is_float);
      w.Double(a.min);
      w.Double(a.max);
      w.Bool(a.all_int);
    }
  }
  return std::string(b.view());
}

bool Aggregator::Restore(std::string_view state, std::string* error) {
  groups_.clear();
  dirty_count_ = 0;
  watermark_ms_ = INT64_MIN;
  const auto* data = reinterpret_cast<const uint8_t*>(state.data());
  size_t used = 0;
  wire::Limits lim;
  lim.max_depth = 8;
  lim.max_container = UINT32_MAX;
  lim.max_string = UINT32_MAX;
  if (!wire::CheckValue(data, state.size(), lim, &used) || used != state.size()) {
    *error = "aggregate state is damaged";
    return false;
  }
  wire::Reader rd(data, state.size());
  auto fail = [&](const char* why) {
    groups_.clear();
    dirty_count_ = 0;
    watermark_ms_ = INT64_MIN;
    *error = why;
    return false;
  };
  auto next_int = [&](int64_t* v) {
    const wire::Value x = rd.Next();
    if (x.kind == wire::Kind::kInt) return *v = x.i, true;
    if (x.kind == wire::Kind::kUint && x.u <= INT64_MAX) return *v = static_cast<int64_t>(x.u), true;
    return false;
  };
  auto next_double = [&](double* v) {
    const wire::Value x = rd.Next();
    if (x.kind == wire::Kind::kFloat) return *v = x.f, true;
    return false;
  };
  auto next_bool = [&](bool* v) {
    const wire::Value x = rd.Next();
    if (x.kind == wire::Kind::kBool) return *v = x.b, true;
    return false;
  };
  const wire::Value top = rd.Next();
  int64_t version;
  if (top.kind != wire::Kind::kArray || top.len != 4 || !next_int(&version) ||
      version != kCheckpointVersion) {
    return fail("aggregate state has an unknown format");
  }
  const wire::Value fp = rd.Next();
  if (fp.kind != wire::Kind::kUint && fp.kind != wire::Kind::kInt) return fail("aggregate state has an unknown format");
  const uint64_t fingerprint = fp.kind == wire::Kind::kUint ? fp.u : static_cast<uint64_t>(fp.i);
  if (fingerprint != spec_->fingerprint) {
    return fail("the aggregate's window, time field, groups or measures changed");
  }
  int64_t wm;
  if (!next_int(&wm)) return fail("aggregate state has an unknown format");
  const wire::Value list = rd.Next();
  if (list.kind != wire::Kind::kArray) return fail("aggregate state has an unknown format");
  for (uint32_t i = 0; i < list.len; ++i) {
    Group g;
    const wire::Value h = rd.Next();
    if (h.kind != wire::Kind::kArray || h.len != 6 || !next_int(&g.window_ms) ||
        !next_int(&g.start_ms) || g.window_ms <= 0) {
      return fail("aggregate state has an unknown format");
    }
    const wire::Value vals = rd.Next();
    if (vals.kind != wire::Kind::kBin) return fail("aggregate state has an unknown format");
    g.values.assign(reinterpret_cast<const char*>(vals.ptr), vals.len);
    // The group values are read in place later: check them now.
    size_t off = 0;
    for (size_t k = 0; k < spec_->group_by.size(); ++k) {
      size_t n = 0;
      if (!wire::CheckValue(vals.ptr + off, vals.len - off, lim, &n)) {
        return fail("aggregate state is damaged");
      }
      off += n;
    }
    if (off != vals.len) return fail("aggregate state is damaged");
    if (!next_int(&g.count) || !next_bool(&g.dirty)) return fail("aggregate state has an unknown format");
    const wire::Value accs = rd.Next();
    if (accs.kind != wire::Kind::kArray || accs.len != spec_->measures.size()) {
      return fail("aggregate state has an unknown format");
    }
    g.accs.resize(accs.len);
    for (Acc& a : g.accs) {
      const wire::Value ah = rd.Next();
      if (ah.kind != wire::Kind::kArray || ah.len != 7 || !next_int(&a.n) || !next_int(&a.isum) ||
          !next_double(&a.fsum) || !next_bool(&a.is_float) || !next_double(&a.min) ||
          !next_double(&a.max) || !next_bool(&a.all_int)) {
        return fail("aggregate state has an unknown format");
      }
    }
    std::string key;
    key.append(reinterpret_cast<const char*>(&g.window_ms), 8);
    key.append(reinterpret_cast<const char*>(&g.start_ms), 8);
    key.append(g.values);
    if (g.dirty) ++dirty_count_;
    groups_.emplace(std::move(key), std::move(g));
  }
  watermark_ms_ = wm;
  return true;
}

}  // namespace forkd::transforms
