#include "sinks/file/file_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "core/fs.h"
#include "sinks/common/json.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

bool Exists(const std::string& path) {
  struct stat sb;
  return ::stat(path.c_str(), &sb) == 0;
}

// `path` with "_<n>" before its extension: the name for the n-th other file
// that would have had the same name (two rotations within one second).
std::string WithSuffix(const std::string& path, int n) {
  const size_t slash = path.rfind('/');
  const size_t dot = path.rfind('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) {
    return path.substr(0, dot) + "_" + std::to_string(n) + path.substr(dot);
  }
  return path + "_" + std::to_string(n);
}

}  // namespace

const std::vector<OptionSpec>& FileSinkOptions() {
  static const std::vector<OptionSpec> specs = {
      {"path", OptType::kString, "",
       "File to write, or a directory (ending in /) of files named by time", true},
      {"format", OptType::kEnum, "jsonl", "Output format", false, {"jsonl", "csv"}},
      {"rotate", OptType::kString, "",
       "Start a new file every interval (1h, 15m) or past a size (64MiB); off when empty"},
      {"columns", OptType::kNode, "",
       "CSV columns (a list of top-level field names); default: the first record's fields"},
      {"fsync", OptType::kBool, "true", "fdatasync each batch before committing the cursor"},
      {"file_mode", OptType::kString, "0640",
       "Permissions of the files it creates, in octal: 0640 (owner and group read), 0600 "
       "(owner only), 0644 ... Never writable by others. Directories it creates get the same "
       "plus search (0750 for 0640); the umask can only narrow them"},
  };
  return specs;
}

bool ParseFileMode(const std::string& text, mode_t* mode, std::string* error) {
  const bool octal = (text.size() == 3 || text.size() == 4) &&
                     text.find_first_not_of("01234567") == std::string::npos;
  const unsigned long v = octal ? std::strtoul(text.c_str(), nullptr, 8) : 0;
  if (!octal || (v & ~0666ul) != 0) {
    *error = "expected an octal mode of read and write bits like 0640 or 0600, got '" + text + "'";
    return false;
  }
  if ((v & 0002) != 0) {
    *error = "'" + text + "' lets any user of the machine alter the output; use 0640, 0660 or 0644";
    return false;
  }
  if ((v & 0600) != 0600) {
    *error = "'" + text + "' does not let forkd itself read and write the file; the owner needs 6";
    return false;
  }
  *mode = static_cast<mode_t>(v);
  return true;
}

bool CheckFileOptions(const Options& options, std::string* error) {
  mode_t mode = 0;
  if (!ParseFileMode(options.Str("file_mode"), &mode, error)) {
    *error = "file_mode: " + *error;
    return false;
  }
  return true;
}

mode_t DirModeFor(mode_t file_mode) {
  return file_mode | 0700 | ((file_mode & 0040) ? 0010 : 0) | ((file_mode & 0004) ? 0001 : 0);
}

std::unique_ptr<Sink> CreateFileSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  FileSink::Settings s;
  s.path = ctx.config->Resolve(o.Str("path"));
  if (!o.Str("path").empty() && o.Str("path").back() == '/' && s.path.back() != '/') s.path += '/';
  s.format = o.Str("format") == "csv" ? FileSink::Format::kCsv : FileSink::Format::kJsonl;
  const std::string& rot = o.Str("rotate");
  if (!rot.empty()) {
    int64_t v = 0;
    if (ParseDurationMs(rot, &v) && v > 0 && rot.find_first_of("smhd") != std::string::npos) {
      s.rotate_ms = v;
    } else if (ParseSize(rot, &v) && v > 0) {
      s.rotate_bytes = v;
    }
  }
  s.fsync = o.Bool("fsync");
  std::string error;
  if (!ParseFileMode(o.Str("file_mode"), &s.file_mode, &error)) s.file_mode = 0640;  // checked at load
  const YAML::Node& cols = o.Node("columns");
  if (cols.IsDefined() && cols.IsSequence()) {
    for (const auto& c : cols) s.columns.push_back(c.Scalar());
  }
  return std::make_unique<FileSink>(std::move(s));
}

FileSink::FileSink(Settings s) : s_(std::move(s)) {
  dir_mode_ = !s_.path.empty() && s_.path.back() == '/';
  chunked_ = dir_mode_ && s_.rotate_ms > 0;
  ext_ = s_.format == Format::kCsv ? ".csv" : ".jsonl";
  csv_cols_ = s_.columns;
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

std::string FileSink::NameFor(int64_t stamp_us) const {
  std::tm tm{};
  time_t t = static_cast<time_t>(stamp_us / 1000000);
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H-%M-%SZ", &tm);
  if (dir_mode_) return s_.path + buf + ext_;
  // Rotated name beside the active file: events.jsonl -> events-<stamp>.jsonl
  const size_t slash = s_.path.rfind('/');
  const size_t dot = s_.path.rfind('.');
  if (dot != std::string::npos && dot > slash) {
    return s_.path.substr(0, dot) + "-" + buf + s_.path.substr(dot);
  }
  return s_.path + "-" + buf;
}

int64_t FileSink::WindowStart(int64_t recv_us) const {
  if (s_.rotate_ms <= 0) return recv_us;
  const int64_t w = s_.rotate_ms * 1000;
  return recv_us - ((recv_us % w) + w) % w;
}

Status FileSink::OpenCurrent() {
  if (fd_ >= 0) return Status::Ok();
  fd_ = fs::Open(cur_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, s_.file_mode);
  if (fd_ < 0) return Status::Retry(ErrnoStatus("open output", cur_path_, errno).message());
  return Status::Ok();
}

Status FileSink::Open(const std::string& state) {
  const std::string dir = dir_mode_ ? s_.path : s_.path.substr(0, s_.path.rfind('/') + 1);
  Status st = fs::MakeDirs(dir, DirModeFor(s_.file_mode));
  if (!st.ok()) return Status::Retry(st.message());
  if (state.empty()) return Status::Ok();
  // state: "path\nsize\nstart_us\ncol1<US>col2..."
  std::vector<std::string> lines;
  size_t i = 0;
  while (i <= state.size()) {
    size_t j = state.find('\n', i);
    if (j == std::string::npos) j = state.size();
    lines.push_back(state.substr(i, j - i));
    i = j + 1;
  }
  if (lines.size() < 3) return Status::Ok();
  const std::string path = lines[0];
  const uint64_t size = std::strtoull(lines[1].c_str(), nullptr, 10);
  if (lines.size() >= 4 && !lines[3].empty() && s_.columns.empty()) {
    csv_cols_.clear();
    size_t a = 0;
    while (a <= lines[3].size()) {
      size_t b = lines[3].find('\x1f', a);
      if (b == std::string::npos) b = lines[3].size();
      csv_cols_.push_back(lines[3].substr(a, b - a));
      a = b + 1;
    }
  }
  struct stat sb;
  if (path.empty() || ::stat(path.c_str(), &sb) != 0) return Status::Ok();
  const int64_t start_us = std::strtoll(lines[2].c_str(), nullptr, 10);
  if (!dir_mode_ && path == s_.path && static_cast<uint64_t>(sb.st_size) < size) {
    // A size rotation reached the disk (the active file renamed, a new one
    // made, the directory synced) but the cursor commit naming the new file
    // did not: the committed bytes are in the newest rotated file of the
    // committed file's start. Cut it back to them (what follows comes
    // again) and begin the active file anew.
    const std::string base = NameFor(start_us);
    std::string rotated;
    for (int n = 1; Exists(n == 1 ? base : WithSuffix(base, n - 1)); ++n) {
      rotated = n == 1 ? base : WithSuffix(base, n - 1);
    }
    struct stat rb;
    if (!rotated.empty() && ::stat(rotated.c_str(), &rb) == 0 && static_cast<uint64_t>(rb.st_size) >= size) {
      const int rfd = ::open(rotated.c_str(), O_WRONLY | O_CLOEXEC);
      if (rfd < 0) return Status::Retry(ErrnoStatus("open rotated output", rotated, errno).message());
      int rc = fs::Truncate(rfd, size);
      if (rc == 0 && s_.fsync) rc = fs::Fsync(rfd);
      const int err = errno;
      ::close(rfd);
      if (rc != 0) return Status::Retry(ErrnoStatus("truncate uncommitted output", rotated, err).message());
      if (fs::Truncate(path.c_str(), 0) != 0) {
        return Status::Retry(ErrnoStatus("truncate uncommitted output", path, errno).message());
      }
      have_file_ = false;  // the next record opens the active file again
      return Status::Ok();
    }
  }
  if (static_cast<uint64_t>(sb.st_size) > size) {
    // Written after the last cursor commit: those records come again.
    if (fs::Truncate(path.c_str(), size) != 0) {
      return Status::Retry(ErrnoStatus("truncate uncommitted output", path, errno).message());
    }
  }
  cur_path_ = path;
  cur_size_ = committed_size_ = std::min<uint64_t>(static_cast<uint64_t>(sb.st_size), size);
  cur_start_us_ = start_us;
  have_file_ = true;
  return Status::Ok();
}

bool FileSink::NeedsRotate(const Record& r) const {
  if (!have_file_) return true;
  if (s_.rotate_ms > 0) {
    const int64_t t = r.header->recv_us;
    if (t - cur_start_us_ >= s_.rotate_ms * 1000 || t < cur_start_us_) return true;
  }
  return s_.rotate_bytes > 0 && cur_size_ >= static_cast<uint64_t>(s_.rotate_bytes);
}

Status FileSink::Rotate(const Record& r) {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  const int64_t start = WindowStart(r.header->recv_us);
  const std::string dir = Dir();
  std::string path;
  uint64_t size = 0;
  if (chunked_) {
    if (have_file_) {
      Status st = Finish();
      if (!st.ok()) return st;
    }
    // The window's part file; a name taken (by a part or a finished file of
    // the same window) gets _1, _2 ...
    const std::string final_name = NameFor(start);
    std::string base = final_name;
    for (int n = 1; Exists(base) || Exists(dir + "." + base.substr(dir.size()) + ".part"); ++n) {
      base = WithSuffix(final_name, n);
    }
    path = dir + "." + base.substr(dir.size()) + ".part";
  } else if (dir_mode_) {
    // Never reopen a file this sink did not commit into: a taken name gets
    // _1, _2 ... before the extension (sorting after the first).
    path = NameFor(start);
    const std::string base = path;
    for (int n = 1; Exists(path); ++n) path = WithSuffix(base, n);
  } else {
    path = s_.path;
    struct stat sb;
    if (::stat(path.c_str(), &sb) == 0) {
      if (have_file_ && sb.st_size > 0) {
        // Close the active file under its rotated name.
        std::string rotated = NameFor(cur_start_us_);
        const std::string base = rotated;
        for (int n = 1; Exists(rotated); ++n) rotated = WithSuffix(base, n);
        if (fs::Rename(path.c_str(), rotated.c_str()) != 0) {
          return Status::Retry(ErrnoStatus("rotate", rotated, errno).message());
        }
      } else {
        size = static_cast<uint64_t>(sb.st_size);  // continue a file from before
      }
    }
  }
  cur_path_ = path;
  cur_size_ = committed_size_ = size;
  cur_start_us_ = start;
  have_file_ = true;
  Status s = OpenCurrent();
  if (!s.ok()) return s;
  // Make the new name durable before the cursor points at it.
  return SyncDir(dir);
}

std::string FileSink::Dir() const {
  return dir_mode_ ? s_.path : s_.path.substr(0, s_.path.rfind('/') + 1);
}

Status FileSink::SyncDir(const std::string& dir) {
  if (!s_.fsync) return Status::Ok();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = fs::Fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (rc != 0) return Status::Retry(ErrnoStatus("sync directory", dir, err).message());
  }
  return Status::Ok();
}

Status FileSink::Finish() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // ".<name>.part" -> "<name>": everything in it was synced by its flushes.
  const std::string dir = Dir();
  const std::string part = cur_path_.substr(dir.size());
  if (part.size() > 6 && part[0] == '.' && part.compare(part.size() - 5, 5, ".part") == 0 &&
      Exists(cur_path_)) {
    const std::string final_path = dir + part.substr(1, part.size() - 6);
    if (fs::Rename(cur_path_.c_str(), final_path.c_str()) != 0) {
      return Status::Retry(ErrnoStatus("finish chunk", final_path, errno).message());
    }
    Status st = SyncDir(dir);
    if (!st.ok()) return st;
  }
  have_file_ = false;
  cur_path_.clear();
  cur_size_ = committed_size_ = 0;
  return Status::Ok();
}

Status FileSink::Idle(int64_t now_us, bool* changed) {
  *changed = false;
  if (!chunked_ || !have_file_ || !buf_.empty()) return Status::Ok();
  if (now_us < cur_start_us_ + s_.rotate_ms * 1000) return Status::Ok();
  Status st = Finish();
  *changed = st.ok();
  return st;
}

void FileSink::Write(const Record& r) {
  if (!have_file_) {
    // Callers that skip NeedsRotate (tests, tools) still get a file.
    (void)Rotate(r);
  }
  std::string& out = buf_;
  const size_t before = out.size();
  if (s_.format == Format::kJsonl) {
    AppendJsonLine(r.event_id, r.payload, r.payload_size, &out);
  } else {
    if (csv_cols_.empty()) {
      wire::Reader rd(r.payload, r.payload_size);
      wire::Value m = rd.Next();
      for (uint32_t i = 0; i < m.len; ++i) {
        wire::Value k = rd.Peek();
        rd.Skip();
        if (k.kind == wire::Kind::kStr && k.str() != "_fork_id") csv_cols_.emplace_back(k.str());
        rd.Skip();
      }
    }
    if (cur_size_ == 0) WriteCsvHeader(&out);
    AppendCsv(r, &out);
  }
  cur_size_ += out.size() - before;
}

namespace {
void AppendCsvField(std::string_view v, std::string* out) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(v);
    return;
  }
  out->push_back('"');
  for (char c : v) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}
}  // namespace

void FileSink::WriteCsvHeader(std::string* out) {
  out->append("_fork_id");
  for (const auto& c : csv_cols_) {
    out->push_back(',');
    AppendCsvField(c, out);
  }
  out->append("\r\n");
}

void FileSink::AppendCsv(const Record& r, std::string* out) {
  AppendCsvRecord(csv_cols_, r.event_id, r.payload, r.payload_size, out);
}

void AppendCsvRecord(const std::vector<std::string>& columns, std::string_view id,
                     const uint8_t* payload, size_t payload_size, std::string* out) {
  AppendCsvField(id, out);
  // One pass over the payload, each value placed in its column.
  thread_local std::vector<std::pair<const uint8_t*, size_t>> slots;
  slots.assign(columns.size(), {nullptr, 0});
  wire::Reader rd(payload, payload_size);
  wire::Value m = rd.Next();
  for (uint32_t i = 0; i < m.len; ++i) {
    wire::Value k = rd.Peek();
    rd.Skip();
    const uint8_t* v = rd.pos();
    rd.Skip();
    if (k.kind != wire::Kind::kStr) continue;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (columns[c] == k.str()) {
        slots[c] = {v, static_cast<size_t>(rd.pos() - v)};
        break;
      }
    }
  }
  std::string tmp;
  for (const auto& [v, n] : slots) {
    out->push_back(',');
    if (v == nullptr) continue;
    wire::Reader vr(v, n);
    wire::Value val = vr.Peek();
    tmp.clear();
    switch (val.kind) {
      case wire::Kind::kNil: break;
      case wire::Kind::kStr: AppendCsvField(val.str(), out); break;
      case wire::Kind::kBool: out->append(val.b ? "true" : "false"); break;
      default:
        AppendJson(v, &tmp);  // numbers as themselves, the rest as JSON text
        if (val.kind == wire::Kind::kBin || val.kind == wire::Kind::kExt) {
          // JSON strings lose their quotes in a CSV cell.
          if (tmp.size() >= 2 && tmp.front() == '"') tmp = tmp.substr(1, tmp.size() - 2);
        }
        AppendCsvField(tmp, out);
    }
  }
  out->append("\r\n");
}

Status FileSink::Flush() {
  if (buf_.empty()) return Status::Ok();
  Status s = OpenCurrent();
  if (!s.ok()) return s;
  if (fs::WriteAll(fd_, buf_.data(), buf_.size()) != 0) {
    const int err = errno;
    (void)fs::Truncate(fd_, committed_size_);
    return Status::Retry(ErrnoStatus("write", cur_path_, err).message());
  }
  if (s_.fsync && fs::Fdatasync(fd_) != 0) {
    const int err = errno;
    (void)fs::Truncate(fd_, committed_size_);
    return Status::Retry(ErrnoStatus("sync", cur_path_, err).message());
  }
  committed_size_ += buf_.size();
  buf_.clear();
  return Status::Ok();
}

void FileSink::Discard() {
  buf_.clear();
  cur_size_ = committed_size_;
}

std::string FileSink::State() const {
  std::string cols;
  for (size_t i = 0; i < csv_cols_.size(); ++i) {
    if (i) cols.push_back('\x1f');
    cols += csv_cols_[i];
  }
  return cur_path_ + "\n" + std::to_string(committed_size_) + "\n" +
         std::to_string(cur_start_us_) + "\n" + cols;
}

}  // namespace forkd::sinks
