// What the log holds from a destination's cursor. For destinations that have
// no running pipeline (one removed from the config, whose cursor stays
// behind, or one whose pipeline failed to start) retention keeps everything
// from their cursors; CountRouted counts the events among it that were routed
// to them, so an operator is told what is at stake in numbers. FirstHeld
// tells how old the oldest entry a cursor holds is: a destination's lag in
// seconds.
//
// Threads: any; it reads the log through its own reader.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/status.h"
#include "log/entry.h"
#include "log/log.h"

namespace forkd::log {

// True when the stored event ([dests, key, options, payload]) lists
// `destination`: by name, or in a route's [name, template...] entry.
bool RoutedTo(const Entry& e, std::string_view destination);

// For each destination in `from` (name -> the lsn its cursor resumes at),
// counts the entries in [that lsn, end_lsn) routed to it. One pass over the
// log from the lowest of them; entries no longer in the log are not counted.
// *damaged: the regions the reader had to skip (0 on a clean log).
[[nodiscard]] Status CountRouted(Log* log, const std::map<std::string, uint64_t>& from,
                                 uint64_t end_lsn, std::map<std::string, uint64_t>* counts,
                                 uint64_t* damaged = nullptr);

// The header of the first entry at or after `from` and below `end_lsn`: the
// oldest one a cursor at `from` has not processed. Entries are in the log in
// the order they were received, so its recv_us is the oldest receipt time
// among them. One read when `from` carries a valid segment hint; without
// one, a scan of that segment. NotFound when the log holds no entry in the
// range (nothing pending, or those entries are no longer in the log).
[[nodiscard]] Status FirstHeld(Log* log, const Position& from, uint64_t end_lsn,
                               EntryHeader* out);

}  // namespace forkd::log
