// One persisted cursor per destination: where in the log its pipeline has
// committed, plus an opaque blob of sink state written in the same atomic
// replace (the file sink keeps its file's committed length there).
//
// File: <dir>/<destination>.cursor, replaced with temp + fsync + rename.
//   "FKCR" u32 version, u64 next_lsn, u64 segment, u64 offset,
//   u32 state_len, state bytes, u32 masked crc32c of everything before it.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "log/log.h"

namespace forkd::log {

struct Cursor {
  Position position;
  std::string sink_state;
};

class CursorStore {
 public:
  explicit CursorStore(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Status Init();
  // NotFound when the destination has no cursor yet; Corruption when the file
  // is damaged (the caller decides where to restart).
  [[nodiscard]] Status Load(const std::string& destination, Cursor* out) const;
  [[nodiscard]] Status Save(const std::string& destination, const Cursor& c) const;
  std::string PathFor(const std::string& destination) const;
  // The destinations that have a cursor file, sorted (NotFound without the
  // directory). A cursor outlives its destination's removal from the config:
  // retention reads it from here.
  [[nodiscard]] Status List(std::vector<std::string>* destinations) const;
  // Deletes the destination's cursor and backfill files (those present), so
  // it no longer holds any log; if it is configured again it starts as new.
  [[nodiscard]] Status Remove(const std::string& destination) const;

  // A new destination with `from: earliest` also receives the events logged
  // before it existed that today's routes send it (a backfill). The lsn where
  // that history ends is kept beside its cursor, in <dir>/<destination>.backfill
  // (decimal text), so a restart mid-backfill goes on with it.
  [[nodiscard]] Status SaveBackfill(const std::string& destination, uint64_t until_lsn) const;
  // 0 when the destination has none.
  uint64_t LoadBackfill(const std::string& destination) const;

  static std::string Encode(const Cursor& c);
  [[nodiscard]] static Status Decode(const std::string& bytes, Cursor* out);

 private:
  std::string dir_;
};

}  // namespace forkd::log
