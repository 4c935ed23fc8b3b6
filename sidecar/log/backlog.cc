#include "log/backlog.h"

#include <algorithm>
#include <memory>

#include "wire/msgpack.h"

namespace forkd::log {
namespace {

class CountingReporter : public Reporter {
 public:
  void Corruption(uint64_t, size_t, const std::string&) override { ++regions; }
  uint64_t regions = 0;
};

}  // namespace

bool RoutedTo(const Entry& e, std::string_view destination) {
  // Entries were validated when they were taken, like those a pipeline reads.
  wire::Reader rd(e.event, e.event_size);
  rd.Next();  // [dests, key, options, payload]
  const wire::Value d = rd.Next();
  if (d.kind != wire::Kind::kArray) return false;
  for (uint32_t i = 0; i < d.len; ++i) {
    const wire::Value s = rd.Next();
    if (s.kind == wire::Kind::kStr) {
      if (s.str() == destination) return true;
    } else if (s.kind == wire::Kind::kArray) {
      if (s.len == 0) continue;
      const wire::Value n = rd.Next();
      if (n.kind == wire::Kind::kStr && n.str() == destination) return true;
      for (uint32_t k = 1; k < s.len; ++k) rd.Skip();
    }
  }
  return false;
}

Status CountRouted(Log* log, const std::map<std::string, uint64_t>& from, uint64_t end_lsn,
                   std::map<std::string, uint64_t>* counts, uint64_t* damaged) {
  counts->clear();
  if (damaged) *damaged = 0;
  uint64_t lowest = UINT64_MAX;
  for (const auto& [name, lsn] : from) {
    (*counts)[name] = 0;
    lowest = std::min(lowest, lsn);
  }
  if (from.empty()) return Status::Ok();
  // Below the oldest segment there is nothing left to count.
  lowest = std::max(lowest, log->first_lsn());
  if (lowest >= end_lsn) return Status::Ok();
  CountingReporter reporter;
  std::unique_ptr<TailReader> reader;
  Status s = log->NewReader(Position{lowest, 0, 0}, &reporter, &reader);
  while (s.ok()) {
    Entry e;
    if (reader->Next(&e, &s) != TailReader::Result::kEntry || e.header.lsn >= end_lsn) break;
    for (const auto& [name, lsn] : from) {
      if (e.header.lsn >= lsn && RoutedTo(e, name)) ++(*counts)[name];
    }
  }
  if (damaged) *damaged = reporter.regions;
  return s;
}

Status FirstHeld(Log* log, const Position& from, uint64_t end_lsn, EntryHeader* out) {
  // Below the oldest segment nothing is left: start at what is.
  const uint64_t first = log->first_lsn();
  const Position at = from.next_lsn >= first ? from : Position{first, 0, 0};
  if (at.next_lsn >= end_lsn) return Status::NotFound("no entry held");
  std::unique_ptr<TailReader> reader;
  Status s = log->NewReader(at, nullptr, &reader);
  if (!s.ok()) return s;
  Entry e;
  if (reader->Next(&e, &s) != TailReader::Result::kEntry) {
    return s.ok() ? Status::NotFound("no entry held") : s;
  }
  if (e.header.lsn >= end_lsn) return Status::NotFound("no entry held");
  *out = e.header;
  return Status::Ok();
}

}  // namespace forkd::log
