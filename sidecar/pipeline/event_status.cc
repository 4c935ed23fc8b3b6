#include "pipeline/event_status.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>

#include "pipeline/shaper.h"
#include "sinks/common/json.h"
#include "wire/msgpack.h"

namespace forkd::pipeline {

std::string UtcMillis(int64_t wall_us) {
  const time_t t = static_cast<time_t>(wall_us / 1000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(wall_us / 1000 % 1000));
  return buf;
}

std::string MalformedEventId(const std::string& id) {
  if (id.empty()) return "an event id is required: /api/events/<receipt id or idempotency key>";
  if (id.size() > kMaxEventIdBytes) {
    return "the event id is " + std::to_string(id.size()) + " bytes long; ids are at most " +
           std::to_string(kMaxEventIdBytes);
  }
  for (size_t i = 0; i < id.size();) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      return "the event id holds a control character at byte " + std::to_string(i);
    }
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > id.size()) {
      return "the event id is not UTF-8 (byte " + std::to_string(i) + ")";
    }
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(id[i + k]) & 0xC0) != 0x80) {
        return "the event id is not UTF-8 (byte " + std::to_string(i + k) + ")";
      }
    }
    i += n;
  }
  return "";
}

namespace {

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

std::string EventStatusJson(const Config& config, const std::string& id,
                            const std::vector<log::FoundEntry>& entries,
                            const std::function<DeliveryProgress(const std::string&)>& progress,
                            const DeadLetters& dead_letters) {
  // Per destination, its answer from the newest entry routed to it.
  std::map<std::string, std::string> answers;
  std::vector<std::string> order;  // config order, then names no longer configured
  for (const auto& d : config.destinations) order.push_back(d.name);
  std::map<std::string, std::vector<std::string>> letters;  // read once per destination
  for (const log::FoundEntry& f : entries) {
    Parsed ev;
    Parse(f, &ev);
    const uint64_t lsn = f.header.lsn;
    for (const auto& d : config.destinations) {
      const Parsed::Target* t = nullptr;
      for (const auto& x : ev.targets) {
        if (x.name == d.name) t = &x;
      }
      std::string j = "{\"name\":";
      sinks::AppendJsonString(d.name, &j);
      if (entries.size() > 1) j.append(",\"lsn\":").append(std::to_string(lsn));
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
      Shaper shaper(d.chain, config.templates);
      Shaper::EventParts parts;
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
      const Shaper::Result shaped = shaper.Shape(parts, &reason, &rec, &rec_size);
      if (shaped == Shaper::Result::kDropped) {
        j.append(",\"status\":\"filtered\",\"by\":\"transforms\",\"reason\":");
        sinks::AppendJsonString("a filter or validate step of " + d.name + " dropped it", &j);
        answers[d.name] = j + "}";
        continue;
      }
      // Where its delivery stands.
      const DeliveryProgress dp = progress(d.name);
      const uint64_t next = dp.known ? dp.next_lsn : 0;
      if (next > lsn) {
        auto& lines = letters[d.name];
        if (lines.empty()) (void)dead_letters.Read(d.name, &lines);
        ParsedLetter l;
        if (FindLetter(lines, id, lsn, &l)) {
          j.append(",\"status\":\"dead_lettered\",\"reason\":");
          sinks::AppendJsonString(l.reason, &j);
          j.append(",\"attempts\":").append(std::to_string(l.attempts)).append(",\"at\":");
          sinks::AppendJsonString(l.at, &j);
          j.append(",\"file\":");
          sinks::AppendJsonString(dead_letters.PathFor(d.name), &j);
          answers[d.name] = j + "}";
          continue;
        }
        if (shaped == Shaper::Result::kDeadLetter) {
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
        if (dp.passed) dp.passed(lsn, &at, &after);
        if (after > 0) after = std::max(after, f.header.recv_us);  // not before it arrived
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
      const std::string state = dp.known ? dp.state : "restarting";
      const int64_t attempts = dp.attempts;
      const std::string& last_error = dp.last_error;
      sinks::AppendJsonString(state, &j);
      j.append(",\"attempts\":").append(std::to_string(attempts));
      j.append(",\"events_ahead\":").append(std::to_string(lsn - std::min(lsn, next)));
      if (shaped == Shaper::Result::kDeadLetter) {
        j.append(",\"will_dead_letter\":");
        sinks::AppendJsonString(reason, &j);
      }
      j.append(",\"last_error\":");
      sinks::AppendJsonString(last_error, &j);
      answers[d.name] = j + "}";
    }
    // Routed to a destination no longer configured.
    for (const auto& x : ev.targets) {
      if (config.Find(x.name) != nullptr) continue;
      if (std::find(order.begin(), order.end(), x.name) == order.end()) order.push_back(x.name);
      std::string j = "{\"name\":";
      sinks::AppendJsonString(x.name, &j);
      j.append(",\"status\":\"pending\",\"state\":\"not configured\",\"attempts\":0}");
      answers[x.name] = j;
    }
  }
  const log::FoundEntry& e = entries.front();
  std::string out = "{\"id\":";
  std::string* body = &out;
  sinks::AppendJsonString(id, body);
  body->append(",\"lsn\":").append(std::to_string(e.header.lsn));
  body->append(",\"received_at\":");
  sinks::AppendJsonString(UtcMillis(e.header.recv_us), body);
  body->append(",\"received_us\":").append(std::to_string(e.header.recv_us));
  if (entries.size() > 1) {
    // A dead letter replayed is appended again under its id.
    body->append(",\"entries\":[");
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) body->push_back(',');
      body->append("{\"lsn\":").append(std::to_string(entries[i].header.lsn));
      body->append(",\"received_at\":");
      sinks::AppendJsonString(UtcMillis(entries[i].header.recv_us), body);
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
  return out;
}

}  // namespace forkd::pipeline
