// Reading a destination's store back, for `forkd verify`: every row (or
// line) it holds, with its `_fork_id`, from one consistent view.
//   sqlite      a read transaction (WAL: a snapshot while forkd writes)
//   postgres    a REPEATABLE READ, READ ONLY transaction
//   clickhouse  SELECT ... FINAL (rows collapsed as readers see them)
//   file        the files of the destination, each up to its last whole line
// For an aggregate shared by instances the table read is `<table>_parts`.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/status.h"

namespace forkd::verify {

class StoreReader {
 public:
  enum class Kind { kTable, kJsonl, kCsv };
  virtual ~StoreReader() = default;
  virtual Kind kind() const = 0;
  // Where the rows come from, for messages: "sqlite /x/app.db table orders".
  virtual std::string where() const = 0;
  // Connects and takes the view. Ok with no rows when the table or the
  // files do not exist yet.
  [[nodiscard]] virtual Status Open() = 0;
  // kTable: the columns after _fork_id. kCsv: the current file's header
  // after _fork_id (it changes from file to file). kJsonl: empty.
  virtual const std::vector<std::string>& columns() const = 0;
  // Calls `fn` for each row: its id and, for a table, its cells in the
  // order of columns() (nullopt for NULL); for a file, one cell, the line.
  using RowFn = std::function<void(std::string_view id,
                                   const std::vector<std::optional<std::string_view>>& cells)>;
  [[nodiscard]] virtual Status ForEach(const RowFn& fn) = 0;
  // Repair: removes these rows (appends keep the row they have, so a
  // differing one is deleted before it is written again). Tables only.
  [[nodiscard]] virtual Status Delete(const std::vector<std::string>& ids) = 0;
};

// The reader for a destination's store, or null (with *why) for a type whose
// store cannot be read back (http, stdout).
std::unique_ptr<StoreReader> NewStoreReader(const Config& config, const DestinationConfig& d,
                                            std::string* why);
bool CanReadBack(std::string_view type);

}  // namespace forkd::verify
