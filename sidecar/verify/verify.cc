#include "verify/verify.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/clock.h"
#include "core/fs.h"
#include "core/instance.h"
#include "log/cursors.h"
#include "log/replay.h"
#include "log/scan.h"
#include "pipeline/dead_letters.h"
#include "pipeline/shaper.h"
#include "pipeline/stored_event.h"
#include "sinks/common/json.h"
#include "sinks/common/merge.h"
#include "sinks/common/table.h"
#include "sinks/file/file_sink.h"
#include "sinks/registry.h"
#include "verify/compare.h"
#include "verify/store.h"

namespace forkd::verify {
namespace {

struct Hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct Eq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

struct Want {
  std::string record;  // msgpack map, as the sink receives it
  uint64_t lsn = 0;
  bool seen = false;
};

// One destination being verified.
struct Dest {
  const DestinationConfig* d = nullptr;
  DestinationReport* rep = nullptr;
  std::unique_ptr<pipeline::Shaper> shaper;
  bool merge = false;
  bool upsert = false;
  std::string prefix;  // "<instance>/" for a shared aggregate's rows
  uint64_t bound = 1;  // entries below the committed cursor are delivered
  std::unordered_map<std::string, Want, Hash, Eq> want;
  std::unordered_set<std::string, Hash, Eq> skip;  // in the log, not judged
  std::unordered_set<std::string, Hash, Eq> dead;  // dead-lettered ids
  std::vector<std::pair<uint64_t, uint64_t>> shed;  // [from, to) lsns
  std::vector<std::string> to_repair;
  std::vector<std::string> to_delete;
};

void Sample(std::vector<std::string>* v, size_t max, std::string s) {
  if (v->size() < max) v->push_back(std::move(s));
}

std::string Quote(std::string_view s) {
  std::string out;
  sinks::AppendJsonString(s.substr(0, 120), &out);
  return out;
}

// Compares a table row with the record forkd wrote; "" when they agree,
// else what differs.
class TableMatcher {
 public:
  explicit TableMatcher(const std::vector<std::string>& columns) : columns_(columns) {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == "extra") {
        extra_ = i;
      } else {
        index_.emplace(columns[i], i);
      }
    }
    expected_.resize(columns.size());
    values_.resize(columns.size());
  }

  std::string Diff(const std::string& record, const std::vector<std::optional<std::string_view>>& cells) {
    for (auto& e : expected_) e.reset();
    std::fill(values_.begin(), values_.end(), nullptr);
    std::string extra;
    wire::Reader rd(reinterpret_cast<const uint8_t*>(record.data()), record.size());
    const wire::Value m = rd.Next();
    std::string text;
    for (uint32_t i = 0; i < m.len; ++i) {
      const uint8_t* kp = rd.pos();
      const wire::Value k = rd.Next();
      const uint8_t* v = rd.pos();
      rd.Skip();
      if (k.kind == wire::Kind::kStr && k.str() == "_fork_id") continue;
      auto it = k.kind == wire::Kind::kStr ? index_.find(std::string(k.str())) : index_.end();
      if (it == index_.end()) {
        extra.push_back(extra.empty() ? '{' : ',');
        sinks::AppendJsonKey(kp, &extra);
        extra.push_back(':');
        sinks::AppendJson(v, &extra);
        continue;
      }
      values_[it->second] = v;
      if (sinks::CellText(v, sinks::ColType::kText, &text)) expected_[it->second] = text;
    }
    if (!extra.empty()) extra.push_back('}');
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (i == extra_) {
        const bool stored_empty = !cells[i] || cells[i]->empty() || *cells[i] == "{}" || *cells[i] == "null";
        if (extra.empty() && stored_empty) continue;
        if (!extra.empty() && !stored_empty && SameCell(extra, cells[i])) continue;
        return Describe(i, extra.empty() ? std::nullopt : std::optional<std::string>(extra), cells[i]);
      }
      if (SameCell(expected_[i], cells[i])) continue;
      // A string in a json column is stored as its JSON text.
      if (values_[i] != nullptr && cells[i]) {
        std::string json;
        sinks::AppendJson(values_[i], &json);
        if (SameCell(json, cells[i])) continue;
      }
      return Describe(i, expected_[i], cells[i]);
    }
    return {};
  }

 private:
  std::string Describe(size_t i, const std::optional<std::string>& e,
                       const std::optional<std::string_view>& s) const {
    return "column " + columns_[i] + " is " + (s ? Quote(*s) : "NULL") + ", expected " +
           (e ? Quote(*e) : "NULL");
  }
  const std::vector<std::string>& columns_;
  std::unordered_map<std::string, size_t> index_;
  size_t extra_ = SIZE_MAX;
  std::vector<std::optional<std::string>> expected_;
  std::vector<const uint8_t*> values_;
};

std::string LineDiff(StoreReader* reader, std::string_view id, const std::string& record,
                     std::string_view line) {
  std::string want;
  const auto* p = reinterpret_cast<const uint8_t*>(record.data());
  if (reader->kind() == StoreReader::Kind::kJsonl) {
    sinks::AppendJsonLine(id, p, record.size(), &want);
    want.pop_back();
    if (want == line) return {};
    const auto a = CanonicalJson(want);
    const auto b = CanonicalJson(line);
    if (a && b && *a == *b) return {};
  } else {
    sinks::AppendCsvRecord(reader->columns(), id, p, record.size(), &want);
    while (!want.empty() && (want.back() == '\n' || want.back() == '\r')) want.pop_back();
    if (want == line) return {};
  }
  return "the line is " + Quote(line) + ", expected " + Quote(want);
}

void LoadDeadLetters(const Config& config, Dest* x) {
  pipeline::DeadLetters dl(config.data_dir + "/dead_letters");
  std::vector<std::string> lines;
  if (!dl.Read(x->d->name, &lines).ok()) return;
  for (const std::string& line : lines) {
    pipeline::ParsedLetter l;
    std::string error;
    if (!pipeline::ParseLetter(line, &l, &error)) continue;
    if (l.shed) {
      x->shed.emplace_back(l.shed_from_lsn, l.shed_to_lsn);
    } else if (!l.id.empty()) {
      x->dead.insert(l.id);
    }
  }
}

bool InShed(const Dest& x, uint64_t lsn) {
  for (const auto& [from, to] : x.shed) {
    if (lsn >= from && lsn < to) return true;
  }
  return false;
}

// Writes the missing and differing records again through the sink.
Status Repair(const Config& config, StoreReader* reader, Dest* x) {
  if (x->to_repair.empty()) return Status::Ok();
  if (x->d->type == "file") {
    x->rep->note = "not repaired: files are append-only; `forkd replay` delivers the events again";
    return Status::Ok();
  }
  if (!x->upsert && !x->to_delete.empty()) {
    Status s = reader->Delete(x->to_delete);
    if (!s.ok()) return s;
  }
  const sinks::SinkType* type = sinks::FindSinkType(x->d->type);
  sinks::SinkContext ctx{&config, x->d};
  std::unique_ptr<sinks::Sink> sink = type->create(ctx);
  Status s = sink->Open("");
  if (!s.ok()) return s;
  auto flush = [&]() -> Status {
    for (int attempt = 0;; ++attempt) {
      Status f = sink->Flush();
      if (f.ok() || f.IsFatal() || attempt >= 4) return f;
      std::this_thread::sleep_for(std::chrono::milliseconds(500 << attempt));
    }
  };
  log::EntryHeader h;
  size_t n = 0;
  for (const std::string& id : x->to_repair) {
    const Want& w = x->want.find(id)->second;
    h.lsn = w.lsn;
    h.recv_us = WallMicros();
    sinks::Record r;
    r.header = &h;
    r.event_id = id;
    r.payload = reinterpret_cast<const uint8_t*>(w.record.data());
    r.payload_size = w.record.size();
    sink->Write(r);
    if (++n % 1000 == 0) {
      s = flush();
      if (!s.ok()) return s;
    }
  }
  s = flush();
  if (!s.ok()) return s;
  x->rep->repaired = n;
  return Status::Ok();
}

}  // namespace

std::string StoredInstance(const Config& config) {
  std::string stored;
  if (fs::ReadFile(config.data_dir + "/instance", &stored).ok()) {
    while (!stored.empty() && (stored.back() == '\n' || stored.back() == '\r')) stored.pop_back();
    if (ValidInstanceId(stored)) return stored;
  }
  return config.instance;
}

bool VerifyReport::agrees() const {
  for (const auto& d : destinations) {
    if (!d.agrees()) return false;
  }
  return true;
}

bool VerifyReport::errors() const {
  for (const auto& d : destinations) {
    if (!d.error.empty()) return true;
  }
  return false;
}

Status Verify(const Config& config, const VerifyOptions& options, VerifyReport* out) {
  const int64_t started = MonoMicros();
  *out = VerifyReport{};
  out->at_us = WallMicros();
  // The destinations, in config order.
  std::vector<const DestinationConfig*> chosen;
  for (const std::string& n : options.destinations) {
    const DestinationConfig* d = config.Find(n);
    if (d == nullptr) {
      std::string known;
      for (const auto& c : config.destinations) known += (known.empty() ? "" : ", ") + c.name;
      return Status::InvalidArgument("unknown destination '" + n + "' (configured: " + known + ")");
    }
    if (!CanReadBack(d->type)) {
      return Status::InvalidArgument("destination '" + n + "' is " + d->type +
                                     ": its store cannot be read back (verify reads sqlite, "
                                     "postgres, clickhouse and file destinations)");
    }
  }
  for (const auto& d : config.destinations) {
    const bool named = options.destinations.empty()
                           ? CanReadBack(d.type)
                           : std::find(options.destinations.begin(), options.destinations.end(),
                                       d.name) != options.destinations.end();
    if (named) chosen.push_back(&d);
  }
  out->destinations.resize(chosen.size());
  std::vector<std::unique_ptr<Dest>> dests;
  log::CursorStore cursors(config.data_dir + "/cursors");
  for (size_t i = 0; i < chosen.size(); ++i) {
    auto x = std::make_unique<Dest>();
    x->d = chosen[i];
    x->rep = &out->destinations[i];
    x->rep->name = x->d->name;
    x->rep->type = x->d->type;
    x->shaper = std::make_unique<pipeline::Shaper>(x->d->chain, config.templates);
    if (x->d->type != "file") {
      sinks::SinkContext ctx{&config, x->d};
      sinks::TableSpec spec;
      std::string error;
      if (sinks::DestinationTableSpec(ctx, &spec, &error)) {
        sinks::MergeSpec merge;
        x->merge = sinks::MergeSpecFor(ctx, &spec, &merge);
        x->upsert = spec.upsert;
      }
    }
    if (x->merge && x->shaper->aggregator()) {
      x->shaper->aggregator()->SetInstance(options.instance);
      x->prefix = options.instance + "/";
    }
    log::Cursor c;
    if (cursors.Load(x->d->name, &c).ok()) x->bound = c.position.next_lsn;
    LoadDeadLetters(config, x.get());
    dests.push_back(std::move(x));
  }

  // One pass over the retained log for every destination.
  const int64_t since_us = options.since_ms > 0 ? out->at_us - options.since_ms * 1000 : INT64_MIN;
  log::ScanInfo info;
  char id_buf[64];
  std::string reason;
  Status s = log::ScanLog(
      config.data_dir + "/wal", 0, 0,
      [&](const log::Entry& e) {
        for (auto& xp : dests) {
          Dest& x = *xp;
          pipeline::StoredEvent ev;
          pipeline::ReadStoredEvent(e, x.d->name, &ev);
          if (!ev.mine) continue;
          const std::string_view id = pipeline::StoredEventId(e, ev, id_buf);
          const bool aggregates = x.shaper->aggregator() != nullptr;
          if (e.header.lsn >= x.bound || x.dead.count(id) || InShed(x, e.header.lsn) ||
              (!aggregates && e.header.recv_us < since_us)) {
            x.skip.emplace(id);
            continue;
          }
          pipeline::Shaper::EventParts parts;
          parts.options = ev.options;
          parts.route_t = ev.route_t;
          parts.route_t_count = ev.route_t_count;
          parts.bound = e.event_size;
          parts.payload = ev.payload;
          parts.payload_size = ev.payload_size;
          parts.recv_us = e.header.recv_us;
          parts.event_id = id;
          const uint8_t* rec;
          size_t rec_size;
          switch (x.shaper->Shape(parts, &reason, &rec, &rec_size)) {
            case pipeline::Shaper::Result::kWrite: {
              Want& w = x.want[std::string(id)];
              w.record.assign(reinterpret_cast<const char*>(rec), rec_size);
              w.lsn = e.header.lsn;
              break;
            }
            case pipeline::Shaper::Result::kDeadLetter: x.skip.emplace(id); break;
            default: break;  // filtered (the store must not have it), or aggregated
          }
        }
        return true;
      },
      &info);
  if (!s.ok() && !s.IsNotFound()) return s;
  out->log_first_lsn = info.first_lsn;
  out->log_next_lsn = info.next_lsn;
  out->log_first_recv_us = info.first_recv_us;
  // The log no longer starts at its beginning: ids it does not know may be
  // from before.
  const bool trimmed = info.first_lsn > 1;
  const int64_t judged_from_ms =
      std::max(trimmed ? info.first_recv_us / 1000 : INT64_MIN, since_us == INT64_MIN ? INT64_MIN : since_us / 1000);

  for (auto& xp : dests) {
    Dest& x = *xp;
    DestinationReport& rep = *x.rep;
    if (transforms::Aggregator* agg = x.shaper->aggregator()) {
      const int64_t now = WallMicros();
      agg->Emit([&](std::string_view id, const wire::Buffer& row) {
        const uint8_t* rec;
        size_t rec_size;
        if (x.shaper->ShapeRow(id, row, now, &reason, &rec, &rec_size) != pipeline::Shaper::Result::kWrite) {
          x.skip.emplace(id);
          return;
        }
        // "<instance>/<window start>/<window>/[groups]": a window that began
        // before the retained log (or --since) is not judged.
        const std::string_view row_id = id.substr(x.prefix.size());
        const auto start = ParseInstantMs(row_id.substr(0, row_id.find('/')));
        if (start && *start < judged_from_ms) {
          x.skip.emplace(id);
          return;
        }
        Want& w = x.want[std::string(id)];
        w.record.assign(reinterpret_cast<const char*>(rec), rec_size);
        w.lsn = x.bound;
      });
    }
    std::string why;
    std::unique_ptr<StoreReader> reader = NewStoreReader(config, *x.d, &why);
    if (!reader) {
      rep.error = why;
      continue;
    }
    Status rs = reader->Open();
    std::unique_ptr<TableMatcher> matcher;
    if (rs.ok()) {
      rs = reader->ForEach([&](std::string_view id, const std::vector<std::optional<std::string_view>>& cells) {
        if (!x.prefix.empty() && id.substr(0, x.prefix.size()) != x.prefix) {
          ++rep.not_judged;  // another instance's share
          return;
        }
        auto it = x.want.find(id);
        if (it == x.want.end()) {
          if (x.skip.count(id)) {
            ++rep.not_judged;
          } else if (trimmed) {
            ++rep.outside;
          } else {
            ++rep.unexpected;
            Sample(&rep.unexpected_samples, options.samples, std::string(id));
          }
          return;
        }
        if (it->second.seen) {
          ++rep.unexpected;
          Sample(&rep.unexpected_samples, options.samples, std::string(id) + " (a second copy)");
          return;
        }
        it->second.seen = true;
        std::string diff;
        if (reader->kind() == StoreReader::Kind::kTable) {
          if (!matcher) matcher = std::make_unique<TableMatcher>(reader->columns());
          diff = matcher->Diff(it->second.record, cells);
        } else {
          diff = LineDiff(reader.get(), id, it->second.record, *cells[0]);
        }
        if (diff.empty()) {
          ++rep.matching;
          return;
        }
        ++rep.differing;
        Sample(&rep.differing_samples, options.samples, std::string(id) + ": " + diff);
        x.to_repair.emplace_back(id);
        x.to_delete.emplace_back(id);
      });
    }
    if (!rs.ok()) {
      rep.error = rs.message();
      for (char& c : rep.error) {
        if (c == '\n' || c == '\t') c = ' ';
      }
      continue;
    }
    rep.expected = x.want.size();
    for (const auto& [id, w] : x.want) {
      if (w.seen) continue;
      ++rep.missing;
      Sample(&rep.missing_samples, options.samples, id);
      x.to_repair.push_back(id);
    }
    std::sort(rep.missing_samples.begin(), rep.missing_samples.end());
    if (options.repair && !x.to_repair.empty()) {
      Status r = Repair(config, reader.get(), &x);
      if (!r.ok()) rep.error = "repair: " + r.message();
    }
  }
  out->took_us = MonoMicros() - started;
  if (!options.repair) return Status::Ok();
  // Verified again after the repair, keeping what was repaired.
  VerifyOptions again = options;
  again.repair = false;
  VerifyReport after;
  s = Verify(config, again, &after);
  if (!s.ok()) return s;
  for (size_t i = 0; i < after.destinations.size() && i < out->destinations.size(); ++i) {
    after.destinations[i].repaired = out->destinations[i].repaired;
    after.destinations[i].note = out->destinations[i].note;
    if (!out->destinations[i].error.empty() && after.destinations[i].error.empty()) {
      after.destinations[i].error = out->destinations[i].error;
    }
  }
  after.took_us = MonoMicros() - started;
  *out = std::move(after);
  return Status::Ok();
}

std::string VerifyReport::Text() const {
  std::string t;
  if (log_first_lsn == 0) {
    t += "log: empty\n";
  } else {
    t += "log: entries " + std::to_string(log_first_lsn) + " to " + std::to_string(log_next_lsn - 1) +
         " retained, the oldest received " + log::FormatUtc(log_first_recv_us) +
         (log_first_lsn > 1 ? " (older ones deleted by retention: rows from before are not judged)" : "") +
         "\n";
  }
  for (const auto& d : destinations) {
    t += d.name + ": ";
    if (!d.error.empty() && d.expected == 0 && d.matching == 0) {
      t += "error: " + d.error + "\n";
      continue;
    }
    t += std::to_string(d.expected) + " expected, " + std::to_string(d.missing) + " missing, " +
         std::to_string(d.unexpected) + " unexpected, " + std::to_string(d.differing) +
         " differing (" + std::to_string(d.matching) + " matching";
    if (d.not_judged) t += "; " + std::to_string(d.not_judged) + " not judged: not yet delivered, dead-lettered, before --since or another instance's";
    if (d.outside) t += "; " + std::to_string(d.outside) + " outside the retained range, not judged";
    t += ")\n";
    if (d.repaired) t += "  repaired: " + std::to_string(d.repaired) + " written again\n";
    auto list = [&](const char* what, const std::vector<std::string>& v, uint64_t n) {
      if (v.empty()) return;
      t += std::string("  ") + what + ":";
      for (const auto& s : v) t += "\n    " + s;
      if (n > v.size()) t += "\n    ... and " + std::to_string(n - v.size()) + " more";
      t += "\n";
    };
    list("missing", d.missing_samples, d.missing);
    list("unexpected", d.unexpected_samples, d.unexpected);
    list("differing", d.differing_samples, d.differing);
    if (!d.note.empty()) t += "  " + d.note + "\n";
    if (!d.error.empty()) t += "  error: " + d.error + "\n";
  }
  return t;
}

std::string VerifyReport::Json() const {
  std::string j = "{\"at\":";
  sinks::AppendJsonString(log::FormatUtc(at_us), &j);
  j += ",\"ok\":" + std::string(agrees() ? "true" : "false");
  j += ",\"took_ms\":" + std::to_string(took_us / 1000);
  j += ",\"log\":{\"first_lsn\":" + std::to_string(log_first_lsn) +
       ",\"next_lsn\":" + std::to_string(log_next_lsn) + "}";
  j += ",\"destinations\":{";
  for (size_t i = 0; i < destinations.size(); ++i) {
    const auto& d = destinations[i];
    if (i) j.push_back(',');
    sinks::AppendJsonString(d.name, &j);
    j += ":{\"ok\":" + std::string(d.agrees() ? "true" : "false");
    j += ",\"expected\":" + std::to_string(d.expected) + ",\"matching\":" + std::to_string(d.matching) +
         ",\"missing\":" + std::to_string(d.missing) + ",\"unexpected\":" + std::to_string(d.unexpected) +
         ",\"differing\":" + std::to_string(d.differing) + ",\"not_judged\":" + std::to_string(d.not_judged) +
         ",\"outside\":" + std::to_string(d.outside) + ",\"repaired\":" + std::to_string(d.repaired);
    if (!d.error.empty()) {
      j += ",\"error\":";
      sinks::AppendJsonString(d.error, &j);
    }
    if (!d.note.empty()) {
      j += ",\"note\":";
      sinks::AppendJsonString(d.note, &j);
    }
    auto list = [&](const char* k, const std::vector<std::string>& v) {
      j += std::string(",\"") + k + "\":[";
      for (size_t n = 0; n < v.size(); ++n) {
        if (n) j.push_back(',');
        sinks::AppendJsonString(v[n], &j);
      }
      j += "]";
    };
    list("missing_samples", d.missing_samples);
    list("unexpected_samples", d.unexpected_samples);
    list("differing_samples", d.differing_samples);
    j += "}";
  }
  j += "}}";
  return j;
}

}  // namespace forkd::verify
