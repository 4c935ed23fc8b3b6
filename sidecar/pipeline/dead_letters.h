// Records a destination could never accept, kept with the reason so nothing
// is silently lost: <data_dir>/dead_letters/<destination>.jsonl, one JSON
// object per line:
//   {"_fork_id", "destination", "reason", "attempts", "first_error",
//    "last_error", "lsn", "at", "payload", "raw"}
// `raw` is the stored event's options and payload as base64 msgpack, so a
// replay is exact; `payload` is the same as JSON, for people. A range skipped
// by the `shed` backlog policy is one line with "shed": {from_lsn, to_lsn,
// events} and no payload. Appends are synced before the cursor moves past
// the records.
//
// Thread-safe: pipelines append concurrently. Across processes (`forkd dlq
// drop` beside a running forkd) the file is flock()ed, and an append that
// finds its file replaced by a rewrite reopens it.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/status.h"

namespace forkd::pipeline {

// One dead letter, for Format.
struct Letter {
  std::string_view event_id;
  std::string_view reason;
  int64_t attempts = 0;  // delivery attempts; 0: refused before any (a transform)
  std::string_view first_error;
  std::string_view last_error;
  uint64_t lsn = 0;  // 0: not a log entry (an aggregate row)
  // The stored event's options (msgpack, may be nil) and payload; `options`
  // null: not replayable (an aggregate row).
  const uint8_t* options = nullptr;
  size_t options_size = 0;
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

class DeadLetters {
 public:
  explicit DeadLetters(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Status Init();
  // Appends lines already formatted as JSON objects (each ending in '\n').
  [[nodiscard]] Status Append(std::string_view destination, const std::string& lines);
  // Reads every non-empty line (without its '\n'); a missing file is no
  // lines. With `numbers`, each line's number in the file (from 1), for
  // messages that point at it.
  [[nodiscard]] Status Read(std::string_view destination, std::vector<std::string>* lines,
                            std::vector<size_t>* numbers = nullptr) const;
  // Rewrites the file with only the lines `keep` says yes to (atomically:
  // a temporary file renamed over it). *removed counts the others.
  [[nodiscard]] Status Rewrite(std::string_view destination,
                               const std::function<bool(const std::string&)>& keep,
                               size_t* removed);
  std::string PathFor(std::string_view destination) const;
  static void Format(std::string_view destination, const Letter& l, std::string* out);
  static void FormatShed(std::string_view destination, std::string_view reason,
                         uint64_t from_lsn, uint64_t to_lsn, uint64_t events, std::string* out);

 private:
  std::string dir_;
  std::mutex mu_;
};

// The parts of a stored line that tools need.
struct ParsedLetter {
  std::string id;        // empty for a shed range
  std::string reason;
  std::string at;
  int64_t attempts = 0;
  std::string raw;       // decoded [options, payload] msgpack; empty: not replayable
  bool shed = false;
  uint64_t shed_events = 0;
  uint64_t shed_from_lsn = 0;  // the shed range of lsns, [from, to)
  uint64_t shed_to_lsn = 0;
};
// False (with *error) for a line that is not a dead letter. `raw` is only
// decoded here, not checked: ReplayEvent checks it.
bool ParseLetter(const std::string& line, ParsedLetter* out, std::string* error);
// The event to append to the log for replaying `l` to `destination` (which
// `config` has): [[destination], id, options, payload]. The file is bytes
// anyone may have edited, so the event is checked as ingest checks one from a
// client before it can reach the log: at most config.max_event bytes,
// well-formed msgpack within config.limits, that shape (options nil or a map,
// payload a map), and its call options against the config (a template it
// names must still exist). False with *error saying what is wrong and where
// ("event: payload must be a map (an object)"). Needs l.raw and l.id.
[[nodiscard]] bool ReplayEvent(const Config& config, std::string_view destination,
                               const ParsedLetter& l, std::string* event, std::string* error);

// Base64 (standard alphabet, padded), for `raw`.
std::string Base64(const uint8_t* data, size_t size);
bool FromBase64(std::string_view text, std::string* out);

}  // namespace forkd::pipeline
