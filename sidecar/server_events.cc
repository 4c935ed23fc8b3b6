// GET /api/events/<id>: where one event stands. The event index
// (log/event_indexer.h) finds its entries in the retained log; each
// destination's answer comes from what the engine knows without tracking
// anything per event: the routes the entry records, the destination's own
// transforms run again on it (the pipeline's Shaper), its delivery position,
// its dead letters, and a trail of when that position moved.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "core/clock.h"
#include "log/replay.h"
#include "pipeline/shaper.h"
#include "server.h"
#include "sinks/common/json.h"
#include "wire/msgpack.h"

namespace forkd {
namespace {

// "2026-12-04T22:30:00.123Z"
std::string UtcMillis(int64_t wall_us) {
  const time_t t = static_cast<time_t>(wall_us / 1000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(wall_us / 1000 % 1000));
  return buf;
}

// Why an id cannot be looked up ("" when it can): ids are idempotency keys
// (UTF-8, at most 256 bytes) or receipt ids.
std::string Malformed(const std::string& id) {
  if (id.empty()) return "an event id is required: /api/events/<receipt id or idempotency key>";
  if (id.size() > Server::kMaxEventIdBytes) {
    return "the event id is " + std::to_string(id.size()) + " bytes long; ids are at most " +
           std::to_string(Server::kMaxEventIdBytes);
  }
  for (size_t i = 0; i < id.size();) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      return "the event id holds a control character at byte " + std::to_string(i);
    }
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > id.size()) return "the event id is not UTF-8 (byte " + std::to_string(i) + ")";
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(id[i + k]) & 0xC0) != 0x80) {
        return "the event id is not UTF-8 (byte " + std::to_string(i + k) + ")";
      }
    }
    i += n;
  }
  return "";
}

// A stored event's parts: its destination list, options and payload.
struct Parsed {
  struct Target {
    std::string name;
    const uint8_t* route_t = nullptr;  // [name, template...] or null
    uint32_t route_t_count = 0;
  };
  std::vector<Target> targets;
  bool by_routes = false;
  const uint8_t* options = nullptr;
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

void Parse(const log::FoundEntry& f, Parsed* out) {
  const auto* event = reinterpret_cast<const uint8_t*>(f.event.data());
  wire::Reader rd(event, f.event.size());
  rd.Next();  // [dests, key, options, payload]: checked by the log's reader
  const wire::Value d = rd.Next();
  if (d.kind == wire::Kind::kArray) {
    for (uint32_t i = 0; i < d.len; ++i) {
      const uint8_t* at = rd.pos();
      const wire::Value s = rd.Next();
      if (s.kind == wire::Kind::kNil) {
        out->by_routes = out->by_routes || i == 0;
      } else if (s.kind == wire::Kind::kArray) {
        const wire::Value n = rd.Next();
        for (uint32_t k = 1; k < s.len; ++k) rd.Skip();
        out->targets.push_back({std::string(n.str()), at, s.len - 1});
      } else if (s.kind == wire::Kind::kStr) {
        out->targets.push_back({std::string(s.str()), nullptr, 0});
      }
    }
  }
  rd.Skip();  // key
  out->options = rd.pos();
  rd.Skip();
  out->payload = rd.pos();
  out->payload_size = f.event.size() - static_cast<size_t>(out->payload - event);
}

// The dead letter of (id, lsn) in `lines`, or a shed range holding lsn.
bool FindLetter(const std::vector<std::string>& lines, const std::string& id, uint64_t lsn,
                pipeline::ParsedLetter* out) {
  const std::string lsn_field = "\"lsn\":" + std::to_string(lsn);
  for (const std::string& line : lines) {
    const bool shed = line.find("\"shed\":") != std::string::npos;
    if (!shed && (line.find(lsn_field) == std::string::npos)) continue;
    pipeline::ParsedLetter l;
    std::string error;
    if (!pipeline::ParseLetter(line, &l, &error)) continue;
    if (shed) {
      auto field = [&](const char* name) -> uint64_t {
        const size_t at = line.find(std::string("\"") + name + "\":");
        return at == std::string::npos ? 0
                                       : std::strtoull(line.c_str() + at + std::strlen(name) + 3,
                                                       nullptr, 10);
      };
      if (lsn >= field("from_lsn") && lsn < field("to_lsn")) {
        *out = l;
        return true;
      }
      continue;
    }
    // The lsn field ends where a digit does not follow.
    const size_t at = line.find(lsn_field) + lsn_field.size();
    if (at < line.size() && line[at] >= '0' && line[at] <= '9') continue;
    if (l.id == id) {
      *out = l;
      return true;
    }
  }
  return false;
}

}  // namespace

void Server::StartEventIndex() {
  events_ = std::make_unique<log::EventIndexer>(log_.get());
  events_stop_.store(false);
  events_thread_ = std::thread([this] { RunEventIndex(); });
}

void Server::StopEventIndex() {
  events_stop_.store(true);
  if (events_thread_.joinable()) events_thread_.join();
}

void Server::RunEventIndex() {
  constexpr size_t kStep = 16384;
  const int64_t t0 = MonoMicros();
  bool built = false;
  int64_t next_sample_us = 0;
  int64_t quiet_until_us = 0;  // after an error, one line a minute
  while (!events_stop_.load()) {
    size_t n = 0;
    Status s = events_->CatchUp(kStep, &n);
    const int64_t now = MonoMicros();
    if (!s.ok() && now >= quiet_until_us) {
      spdlog::warn("event index: reading the log: {} (tried again)", s.message());
      quiet_until_us = now + 60 * 1000000;
    }
    if (now >= next_sample_us) {
      SampleDeliveries();
      next_sample_us = now + kTrailEveryMs * 1000;
    }
    const bool caught_up = events_->indexed_next_lsn() >= log_->durable_next_lsn();
    if (!built && caught_up) {
      built = true;
      spdlog::info("event index: {} events from lsn {} indexed in {} ms ({:.1f} MiB)",
                   events_->index().entries(), log_->first_lsn(), (now - t0) / 1000,
                   static_cast<double>(events_->memory_bytes()) / (1 << 20));
    }
    if (!s.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(kTrailEveryMs));
    } else if (n < kStep) {
      log_->WaitDurable(events_->indexed_next_lsn(), kTrailEveryMs * 1000);
    }
  }
}

void Server::SampleDeliveries() {
  const int64_t now = WallMicros();
  const Destinations snapshot = SnapshotDestinations();
  std::lock_guard<std::mutex> lock(trail_mu_);
  for (const auto& p : snapshot.pipelines) {
    const uint64_t next = p->delivered_next_lsn();
    auto& t = trail_[p->name()];
    if (!t.empty() && t.back().next_lsn == next) continue;
    // A replay moved it back: what it passed before says nothing now.
    if (!t.empty() && next < t.back().next_lsn) t.clear();
    t.push_back(Passed{now, next});
    if (t.size() > kTrailPoints) t.pop_front();
  }
}

int Server::EventStatus(const std::string& id, std::string* body) const {
  auto fail = [&](int status, const std::string& message, bool with_id) {
    *body = "{\"error\":";
    sinks::AppendJsonString(message, body);
    if (with_id) {
      body->append(",\"id\":");
      sinks::AppendJsonString(id, body);
    }
    body->append("}\n");
    return status;
  };
  if (const std::string why = Malformed(id); !why.empty()) return fail(400, why, false);
  if (!started_.load() || !events_) return fail(503, "forkd is not running", true);
  const uint64_t end = log_->durable_next_lsn();
  std::vector<log::FoundEntry> found;
  Status s = events_->Find(id, &found);
  // Acknowledged a moment ago: the index may not have reached it yet.
  if (s.ok() && found.empty() && events_->indexed_next_lsn() < end &&
      events_->WaitIndexed(end, 2000000)) {
    s = events_->Find(id, &found);
  }
  if (!s.ok()) return fail(500, "reading the log: " + s.message(), true);
  const uint64_t first = log_->first_lsn();
  if (found.empty()) {
    if (events_->indexed_next_lsn() < end) {
      return fail(503,
                  "the event index is still being built (at lsn " +
                      std::to_string(events_->indexed_next_lsn()) + " of " +
                      std::to_string(end) + "); try again shortly",
                  true);
    }
    if (events_->Expired(id)) {
      *body = "{\"id\":";
      sinks::AppendJsonString(id, body);
      body->append(",\"status\":\"expired\",\"retained_from_lsn\":")
          .append(std::to_string(first))
          .append(",\"destinations\":[]}\n");
      return 200;
    }
    return fail(404,
                "no event with id " + id + " is in the retained log (lsn " +
                    std::to_string(first) + " to " + std::to_string(end) +
                    "): unknown, or older than the log goes back",
                true);
  }

  const Destinations snapshot = SnapshotDestinations();
  const auto& [config, pipelines, failed, removed, start_failures] = snapshot;
  // Per destination, its answer from the newest entry routed to it.
  std::map<std::string, std::string> answers;
  std::vector<std::string> order;  // config order, then names no longer configured
  for (const auto& d : config->destinations) order.push_back(d.name);
  std::map<std::string, std::vector<std::string>> letters;  // read once per destination
  for (const log::FoundEntry& f : found) {
    Parsed ev;
    Parse(f, &ev);
    const uint64_t lsn = f.header.lsn;
    for (const auto& d : config->destinations) {
      const Parsed::Target* t = nullptr;
      for (const auto& x : ev.targets) {
        if (x.name == d.name) t = &x;
      }
      std::string j = "{\"name\":";
      sinks::AppendJsonString(d.name, &j);
      if (found.size() > 1) j.append(",\"lsn\":").append(std::to_string(lsn));
      if (t == nullptr) {
        if (answers.count(d.name)) continue;  // an older entry was routed here
        j.append(",\"status\":\"filtered\",\"by\":\"routes\",\"reason\":");
        sinks::AppendJsonString(ev.by_routes ? "no route sent it here"
                                             : "the caller named other destinations",
                                &j);
        answers[d.name] = j + "}";
        continue;
      }
      // The destination's transforms, run again as its pipeline runs them.
      pipeline::Shaper shaper(d.chain, config->templates);
      pipeline::Shaper::EventParts parts;
      parts.options = ev.options;
      parts.route_t = t->route_t;
      parts.route_t_count = t->route_t_count;
      parts.bound = f.event.size();
      parts.payload = ev.payload;
      parts.payload_size = ev.payload_size;
      parts.recv_us = f.header.recv_us;
      parts.event_id = id;
      std::string reason;
      const uint8_t* rec;
      size_t rec_size;
      const pipeline::Shaper::Result shaped = shaper.Shape(parts, &reason, &rec, &rec_size);
      if (shaped == pipeline::Shaper::Result::kDropped) {
        j.append(",\"status\":\"filtered\",\"by\":\"transforms\",\"reason\":");
        sinks::AppendJsonString("a filter or validate step of " + d.name + " dropped it", &j);
        answers[d.name] = j + "}";
        continue;
      }
      // Where its delivery stands.
      std::shared_ptr<pipeline::Pipeline> p;
      for (const auto& q : pipelines) {
        if (q->name() == d.name) p = q;
      }
      const FailedStart* fs = nullptr;
      for (const auto& x : failed) {
        if (x.name == d.name) fs = &x;
      }
      const uint64_t next = p ? p->delivered_next_lsn() : fs ? fs->hold.next_lsn : 0;
      if (next > lsn) {
        auto& lines = letters[d.name];
        if (lines.empty()) (void)dead_letters_->Read(d.name, &lines);
        pipeline::ParsedLetter l;
        if (FindLetter(lines, id, lsn, &l)) {
          j.append(",\"status\":\"dead_lettered\",\"reason\":");
          sinks::AppendJsonString(l.reason, &j);
          j.append(",\"attempts\":").append(std::to_string(l.attempts)).append(",\"at\":");
          sinks::AppendJsonString(l.at, &j);
          j.append(",\"file\":");
          sinks::AppendJsonString(dead_letters_->PathFor(d.name), &j);
          answers[d.name] = j + "}";
          continue;
        }
        if (shaped == pipeline::Shaper::Result::kDeadLetter) {
          // Refused by a transform; its letter has been dropped or replayed since.
          j.append(",\"status\":\"dead_lettered\",\"reason\":");
          sinks::AppendJsonString(reason, &j);
          j.append(",\"attempts\":0");
          answers[d.name] = j + "}";
          continue;
        }
        j.append(",\"status\":\"delivered\"");
        // The first moment the trail saw its position past the event, and
        // the one before, when it was not yet: it was delivered in between.
        int64_t at = 0, after = 0;
        {
          std::lock_guard<std::mutex> lock(trail_mu_);
          auto it = trail_.find(d.name);
          if (it != trail_.end()) {
            const auto& t = it->second;
            auto pass = std::partition_point(t.begin(), t.end(),
                                             [&](const Passed& x) { return x.next_lsn <= lsn; });
            if (pass != t.end()) {
              at = pass->at_us;
              if (pass != t.begin()) after = std::prev(pass)->at_us;
            }
          }
        }
        j.append(",\"delivered_at\":");
        if (at > 0) {
          sinks::AppendJsonString(UtcMillis(at), &j);
        } else {
          j.append("null");
        }
        j.append(",\"delivered_after\":");
        if (after > 0) {
          sinks::AppendJsonString(UtcMillis(after), &j);
        } else {
          j.append("null");
        }
        if (d.chain.aggregate) j.append(",\"aggregated\":true");
        answers[d.name] = j + "}";
        continue;
      }
      // Not yet.
      j.append(",\"status\":\"pending\",\"state\":");
      std::string state = "restarting", last_error;
      int64_t attempts = 0;
      if (p) {
        const auto breaker = p->breaker_state();
        state = breaker == pipeline::Breaker::State::kOpen       ? "breaker open"
                : breaker == pipeline::Breaker::State::kHalfOpen ? "breaker half-open"
                : p->healthy()                                   ? "running"
                                                                 : "retrying";
        attempts = p->attempts();
        last_error = p->last_error();
      } else if (fs) {
        state = "failed to start";
        attempts = fs->failures;
        last_error = fs->error;
      }
      sinks::AppendJsonString(state, &j);
      j.append(",\"attempts\":").append(std::to_string(attempts));
      j.append(",\"events_ahead\":").append(std::to_string(lsn - std::min(lsn, next)));
      if (shaped == pipeline::Shaper::Result::kDeadLetter) {
        j.append(",\"will_dead_letter\":");
        sinks::AppendJsonString(reason, &j);
      }
      j.append(",\"last_error\":");
      sinks::AppendJsonString(last_error, &j);
      answers[d.name] = j + "}";
    }
    // Routed to a destination no longer configured.
    for (const auto& x : ev.targets) {
      if (config->Find(x.name) != nullptr) continue;
      if (std::find(order.begin(), order.end(), x.name) == order.end()) order.push_back(x.name);
      std::string j = "{\"name\":";
      sinks::AppendJsonString(x.name, &j);
      j.append(",\"status\":\"pending\",\"state\":\"not configured\",\"attempts\":0}");
      answers[x.name] = j;
    }
  }
  const log::FoundEntry& e = found.front();
  *body = "{\"id\":";
  sinks::AppendJsonString(id, body);
  body->append(",\"lsn\":").append(std::to_string(e.header.lsn));
  body->append(",\"received_at\":");
  sinks::AppendJsonString(UtcMillis(e.header.recv_us), body);
  body->append(",\"received_us\":").append(std::to_string(e.header.recv_us));
  if (found.size() > 1) {
    // A dead letter replayed is appended again under its id.
    body->append(",\"entries\":[");
    for (size_t i = 0; i < found.size(); ++i) {
      if (i) body->push_back(',');
      body->append("{\"lsn\":").append(std::to_string(found[i].header.lsn));
      body->append(",\"received_at\":");
      sinks::AppendJsonString(UtcMillis(found[i].header.recv_us), body);
      body->push_back('}');
    }
    body->push_back(']');
  }
  body->append(",\"destinations\":[");
  bool comma = false;
  for (const auto& name : order) {
    auto it = answers.find(name);
    if (it == answers.end()) continue;
    if (comma) body->push_back(',');
    comma = true;
    body->append(it->second);
  }
  body->append("]}\n");
  return 200;
}

}  // namespace forkd
