// GET /streams/<name>: a `stream` destination's records as Server-Sent
// Events. A subscriber resumes after the position it names (Last-Event-ID,
// or ?after=): from the destination's hub (streams/hub.h) when the ring
// still holds what follows, else first from the log, through the
// destination's own transforms, up to where the ring begins. Without a
// position it starts at the live end. Each subscriber holds one admin
// worker thread while connected.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "core/clock.h"
#include "pipeline/shaper.h"
#include "pipeline/stored_event.h"
#include "server.h"
#include "sinks/common/json.h"
#include "streams/hub.h"

namespace forkd {

namespace {

constexpr int64_t kKeepAliveMs = 15000;
constexpr size_t kChunkBytes = 64 * 1024;
constexpr int kCatchUpEntries = 512;  // log entries read per provider call
// A subscriber writes at most once per this many ms, taking every record
// that came meanwhile in one write: with a thousand subscribers, a wakeup
// per record each would be a million context switches a second.
constexpr int64_t kCoalesceMs = 25;

// One subscriber's connection.
struct Subscription {
  std::shared_ptr<const Config> config;
  const DestinationConfig* dest = nullptr;
  std::shared_ptr<streams::Hub> hub;
  streams::Pos after;
  bool in_ring = false;  // has read from the ring: falling out of it is an overflow
  // Catching up from the log up to `until` (inclusive).
  std::unique_ptr<log::TailReader> reader;
  std::unique_ptr<pipeline::Shaper> shaper;
  streams::Pos until;
  int64_t last_write_ms = 0;
  std::string out;
};

class NullReporter : public log::Reporter {
 public:
  void Corruption(uint64_t, size_t, const std::string&) override {}
};
NullReporter null_reporter;

std::string Event(const char* name, const std::string& reason, const streams::Pos* id) {
  std::string f;
  if (id) f += "id: " + streams::FormatPos(*id) + "\n";
  f += "event: ";
  f += name;
  f += "\ndata: {\"reason\":";
  sinks::AppendJsonString(reason, &f);
  f += "}\n\n";
  return f;
}

}  // namespace

admin::Handlers::StreamPolicy Server::StreamPolicyFor(const std::string& name) const {
  admin::Handlers::StreamPolicy p;
  const auto snapshot = SnapshotDestinations();
  const DestinationConfig* d = snapshot.config->Find(name);
  if (d == nullptr || d->type != "stream") return p;
  p.found = true;
  p.is_public = d->sink.Bool("public");
  p.token = d->sink.Str("token");
  return p;
}

void Server::ServeStream(const std::string& name, const httplib::Request& req,
                         httplib::Response& res) {
  auto sub = std::make_shared<Subscription>();
  sub->config = SnapshotDestinations().config;
  sub->dest = sub->config->Find(name);
  sub->hub = streams::HubFor(name);
  const std::string given =
      req.has_header("Last-Event-ID") ? req.get_header_value("Last-Event-ID") : req.get_param_value("after");
  if (given.empty()) {
    sub->after = sub->hub->last();  // the live end
  } else if (!streams::ParsePos(given, &sub->after)) {
    res.status = 400;
    std::string body = "{\"error\":";
    sinks::AppendJsonString("Last-Event-ID / after must be a position this stream sent (like 1042 or 1042-3), got '" +
                                given.substr(0, 64) + "'",
                            &body);
    res.set_content(body + "}\n", "application/json");
    return;
  }
  const size_t max = static_cast<size_t>(sub->dest->sink.Int("max_subscribers"));
  if (!sub->hub->Join(max)) {
    res.status = 503;
    res.set_header("Retry-After", "5");
    res.set_content("{\"error\":\"this stream has its max_subscribers (" + std::to_string(max) +
                        ") already\"}\n",
                    "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // no proxy buffering
  log::Log* wal = log_.get();
  const bool aggregates = static_cast<bool>(sub->dest->chain.aggregate);
  res.set_chunked_content_provider(
      "text/event-stream",
      [sub, wal, aggregates, this](size_t, httplib::DataSink& sink) {
        if (stopping_.load() || !sink.is_writable()) return false;
        std::string& out = sub->out;
        out.clear();
        const int64_t now_ms = MonoMicros() / 1000;
        if (sub->last_write_ms == 0) {
          // Tell the browser how soon to come back, at once.
          out = "retry: 1000\n\n";
          sub->last_write_ms = now_ms;
        }
        if (sub->reader) {
          // Catching up from the log.
          Status io;
          log::Entry e;
          char id_buf[64];
          std::string reason;
          int n = 0;
          bool done = false;
          while (n++ < kCatchUpEntries && out.size() < kChunkBytes) {
            if (sub->reader->Next(&e, &io) != log::TailReader::Result::kEntry || e.header.lsn > sub->until.lsn) {
              done = true;
              break;
            }
            pipeline::StoredEvent ev;
            pipeline::ReadStoredEvent(e, sub->dest->name, &ev);
            if (!ev.mine) continue;
            pipeline::Shaper::EventParts parts;
            parts.options = ev.options;
            parts.route_t = ev.route_t;
            parts.route_t_count = ev.route_t_count;
            parts.bound = e.event_size;
            parts.payload = ev.payload;
            parts.payload_size = ev.payload_size;
            parts.recv_us = e.header.recv_us;
            parts.event_id = pipeline::StoredEventId(e, ev, id_buf);
            const uint8_t* rec;
            size_t rec_size;
            if (sub->shaper->Shape(parts, &reason, &rec, &rec_size) != pipeline::Shaper::Result::kWrite) continue;
            const streams::Pos p{e.header.lsn, 0};
            out += "id: " + streams::FormatPos(p) + "\ndata: ";
            sinks::AppendJsonLine(parts.event_id, rec, rec_size, &out);
            out += "\n";
          }
          if (done) {
            sub->reader.reset();
            sub->shaper.reset();
            sub->after = sub->until;
          }
        } else {
          if (out.empty() && now_ms - sub->last_write_ms < kCoalesceMs) {
            std::this_thread::sleep_for(std::chrono::milliseconds(kCoalesceMs - (now_ms - sub->last_write_ms)));
          }
          streams::Pos last, covered;
          const int64_t wait = std::max<int64_t>(0, kKeepAliveMs - (now_ms - sub->last_write_ms));
          switch (sub->hub->Next(sub->after, out.empty() ? std::min<int64_t>(wait, 1000) : 0, kChunkBytes, &out, &last, &covered)) {
            case streams::Hub::Read::kFrames:
              sub->after = last;
              sub->in_ring = true;
              break;
            case streams::Hub::Read::kTimeout:
              if (out.empty() && MonoMicros() / 1000 - sub->last_write_ms >= kKeepAliveMs) out = ": keep-alive\n\n";
              break;
            case streams::Hub::Read::kClosed: return false;
            case streams::Hub::Read::kBehind:
              if (sub->in_ring) {
                // It read too slowly: the ring moved past what it has not read.
                out += Event("overflow", "this subscriber fell more than `buffer` records behind; "
                             "reconnect with Last-Event-ID to resume",
                             nullptr);
                sink.write(out.data(), out.size());
                sink.done();
                return false;
              }
              if (aggregates) {
                // An aggregate's rows cannot be recomputed from the middle of
                // the log: start again from what the ring holds.
                out += Event("reset", "this aggregate's updates after that position are no longer kept; "
                             "what follows are the latest ones", &covered);
                sub->after = covered;
                break;
              }
              {
                const uint64_t first = wal->first_lsn();
                uint64_t from = sub->after.lsn + 1;
                if (from < first) {
                  out += Event("reset", "records after that position are older than the log's retention; "
                               "what follows starts at the oldest retained", nullptr);
                  from = first;
                }
                std::unique_ptr<log::TailReader> rd;
                if (!wal->NewReader(log::Position{from, 0, 0}, &null_reporter, &rd).ok()) return false;
                sub->reader = std::move(rd);
                sub->shaper = std::make_unique<pipeline::Shaper>(sub->dest->chain, sub->config->templates);
                sub->until = covered;
              }
              break;
          }
        }
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) return false;
          sub->last_write_ms = MonoMicros() / 1000;
        }
        return true;
      },
      [sub](bool) { sub->hub->Leave(); });
}

}  // namespace forkd
