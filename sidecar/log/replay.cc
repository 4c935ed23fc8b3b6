#include "log/replay.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <memory>

#include "log/backlog.h"
#include "wire/codec.h"
#include "wire/msgpack.h"

namespace forkd::log {
namespace {

bool HasId(const Entry& e, std::string_view id, char* buf) {
  wire::Reader rd(e.event, e.event_size);
  rd.Next();  // [dests, key, options, payload]
  rd.Skip();  // dests
  const wire::Value k = rd.Next();
  if (k.kind == wire::Kind::kStr) return k.str() == id;
  return std::string_view(buf, wire::FormatEventIdTo(e.header.client_id, e.header.seq, buf)) == id;
}

std::string Range(const ReplayPlan& p, uint64_t end_lsn) {
  if (p.oldest_lsn == 0 || p.oldest_lsn >= end_lsn) return "the log holds no events";
  return "the log goes back to " + FormatUtc(p.oldest_recv_us) + " (lsn " +
         std::to_string(p.oldest_lsn) + ")";
}

}  // namespace

std::string FormatUtc(int64_t wall_us) {
  const time_t t = static_cast<time_t>(wall_us / 1000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status PlanReplay(Log* log, const std::string& destination, const ReplayRequest& request,
                  uint64_t cursor_lsn, uint64_t delivered_lsn, uint64_t end_lsn,
                  ReplayPlan* out) {
  *out = ReplayPlan{};
  const uint64_t first = log->first_lsn();
  std::unique_ptr<TailReader> reader;
  Status s = log->NewReader(Position{first, 0, 0}, nullptr, &reader);
  if (!s.ok()) return s;
  char id_buf[wire::kMaxEventIdSize];
  bool found = false;
  Entry e;
  while (reader->Next(&e, &s) == TailReader::Result::kEntry && e.header.lsn < end_lsn) {
    if (out->oldest_lsn == 0) {
      out->oldest_lsn = e.header.lsn;
      out->oldest_recv_us = e.header.recv_us;
      // Older entries were deleted, and some of them may have been received
      // in the window asked for.
      if (request.by_time && first > 1 && request.since_us < e.header.recv_us) {
        return Status::NotFound("events received since " + FormatUtc(request.since_us) +
                                " are no longer all in the log: " + Range(*out, end_lsn));
      }
    }
    if (request.by_time ? e.header.recv_us >= request.since_us
                        : HasId(e, request.id, id_buf)) {
      found = true;
      out->from = Position{e.header.lsn, 0, 0};
      out->from_recv_us = e.header.recv_us;
      break;
    }
  }
  if (!s.ok()) return s;
  if (!found) {
    if (!request.by_time) {
      return Status::NotFound("no event with id " + request.id + " is in the log: " +
                              Range(*out, end_lsn));
    }
    out->from = Position{end_lsn, 0, 0};  // nothing received since then
  }
  // Never forward: what the cursor has not passed is delivered anyway.
  if (out->from.next_lsn >= cursor_lsn) {
    out->from = Position{cursor_lsn, 0, 0};
    out->from_recv_us = 0;
  }
  const uint64_t until = std::max(cursor_lsn, delivered_lsn);
  if (out->from.next_lsn >= until) return Status::Ok();
  std::map<std::string, uint64_t> counts;
  s = CountRouted(log, {{destination, out->from.next_lsn}}, until, &counts);
  if (!s.ok()) return s;
  out->events = counts[destination];
  return Status::Ok();
}

}  // namespace forkd::log
