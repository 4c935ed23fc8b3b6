// Records a destination could never accept, kept with the reason so nothing
// is silently lost: <data_dir>/dead_letters/<destination>.jsonl, one JSON
// object per line: {"_fork_id", "destination", "reason", "at", "payload"}.
// Appends are synced before the cursor moves past the records.
//
// Thread-safe: pipelines append concurrently.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"

namespace forkd::pipeline {

class DeadLetters {
 public:
  explicit DeadLetters(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Status Init();
  // Appends lines already formatted as JSON objects (each ending in '\n').
  [[nodiscard]] Status Append(std::string_view destination, const std::string& lines);
  std::string PathFor(std::string_view destination) const;
  // Formats one dead letter line.
  static void Format(std::string_view destination, std::string_view event_id,
                     std::string_view reason, const uint8_t* payload, std::string* out);

 private:
  std::string dir_;
  std::mutex mu_;
};

}  // namespace forkd::pipeline
