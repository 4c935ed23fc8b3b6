// The `file` sink: JSON Lines or CSV, with rotation by time or size.
//
// `path` ending in '/' is a directory: each file is named by the start of its
// time window (rotate: 1h) or by its first record's time, e.g.
// 2026-11-21T17-00-00Z.csv. Otherwise `path` is the active file, and a
// rotated file is renamed to <stem>-<stamp><ext> beside it. A name already
// taken (two rotations by size within one second) gets _1, _2 ... before the
// extension, so no file is reopened or replaced.
//
// A directory with time rotation (path: ./out/, rotate: 1h) is chunked: one
// file per window, named by the window's start, written under a hidden
// temporary name (.<name>.part) and renamed to its name once the window is
// over and its last batch is synced, so a reader never sees a partial file.
// A window whose events stop is closed by time, without waiting for the next
// record.
//
// Every record carries its event id as `_fork_id` (the first JSON key, the
// first CSV column). The committed length of the active file is kept in the
// cursor, so output written but never committed (a crash between the write
// and the cursor commit) is cut off on restart: no duplicates from a crash.
//
// Files it creates get `file_mode` (0640 by default); directories it creates
// get the same bits plus search where read is (0640 -> 0750, 0600 -> 0700).
// The process umask can only narrow them. Files and directories that already
// exist keep their modes.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/options.h"
#include "sinks/sink.h"

namespace forkd::sinks {

const std::vector<OptionSpec>& FileSinkOptions();
// Parses `file_mode` ("0640"): octal, read/write bits only, not writable by
// others. False with *error saying what is accepted.
bool ParseFileMode(const std::string& text, mode_t* mode, std::string* error);
// The mode for a directory holding files of `file_mode`: search (x) added
// wherever read is, and the owner's always (0640 -> 0750).
mode_t DirModeFor(mode_t file_mode);
// The checks beyond the table: "file_mode: message".
bool CheckFileOptions(const Options& options, std::string* error);
std::unique_ptr<Sink> CreateFileSink(const SinkContext& ctx);
// One CSV line as the sink writes it (RFC 4180 quoting, "\r\n" at the end):
// the id, then the record's value for each of `columns` (empty when absent).
void AppendCsvRecord(const std::vector<std::string>& columns, std::string_view id,
                     const uint8_t* payload, size_t payload_size, std::string* out);

class FileSink : public Sink {
 public:
  enum class Format { kJsonl, kCsv };
  struct Settings {
    std::string path;  // absolute; a trailing '/' means a directory
    Format format = Format::kJsonl;
    int64_t rotate_ms = 0;     // 0: no time rotation
    int64_t rotate_bytes = 0;  // 0: no size rotation
    bool fsync = true;
    std::vector<std::string> columns;  // CSV; empty: from the first record
    mode_t file_mode = 0640;           // of files it creates
  };
  explicit FileSink(Settings s);
  ~FileSink() override;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override { return buf_.size(); }
  Status Flush() override;
  void Discard() override;
  std::string State() const override;
  bool NeedsRotate(const Record& r) const override;
  Status Rotate(const Record& r) override;
  Status Idle(int64_t now_us, bool* changed) override;

 private:
  int64_t WindowStart(int64_t recv_us) const;
  std::string NameFor(int64_t stamp_us) const;
  void WriteCsvHeader(std::string* out);
  void AppendCsv(const Record& r, std::string* out);
  Status OpenCurrent();
  // Chunked: renames the current window's part file to its final name.
  Status Finish();
  Status SyncDir(const std::string& dir);
  std::string Dir() const;

  Settings s_;
  bool dir_mode_ = false;
  bool chunked_ = false;  // a directory with time rotation
  std::string ext_;
  std::string buf_;  // the batch, not yet written

  // The current file. cur_size_ counts the buffered bytes too.
  std::string cur_path_;
  int64_t cur_start_us_ = 0;  // its window start, or its first record's time
  uint64_t cur_size_ = 0;
  uint64_t committed_size_ = 0;  // what the last successful Flush left
  bool have_file_ = false;

  int fd_ = -1;
  std::vector<std::string> csv_cols_;
};

}  // namespace forkd::sinks
