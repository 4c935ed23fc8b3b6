#include "sinks/file/file_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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
  };
  return specs;
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
  const YAML::Node& cols = o.Node("columns");
  if (cols.IsDefined() && cols.IsSequence()) {
    for (const auto& c : cols) s.columns.push_back(c.Scalar());
  }
  return std::make_unique<FileSink>(std::move(s));
}

FileSink::FileSink(Settings s) : s_(std::move(s)) {
  dir_mode_ = !s_.path.empty() && s_.path.back() == '/';
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

Status FileSink::Open(const std::string& state) {
  const std::string dir = dir_mode_ ? s_.path : s_.path.substr(0, s_.path.rfind('/') + 1);
  Status st = fs::MakeDirs(dir, 0755);
  if (!st.ok()) return Status::Retry(st.message());
  // state: "path\nsize\nstart_us\ncol1,col2,..."
  if (!state.empty()) {
    std::vector<std::string> lines;
    size_t i = 0;
    while (i <= state.size()) {
      size_t j = state.find('\n', i);
      if (j == std::string::npos) j = state.size();
      lines.push_back(state.substr(i, j - i));
      i = j + 1;
    }
    if (lines.size() >= 3) {
      committed_path_ = lines[0];
      committed_size_ = std::strtoull(lines[1].c_str(), nullptr, 10);
      committed_start_us_ = std::strtoll(lines[2].c_str(), nullptr, 10);
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
      if (!committed_path_.empty() && ::stat(committed_path_.c_str(), &sb) == 0) {
        if (static_cast<uint64_t>(sb.st_size) > committed_size_) {
          // Written after the last cursor commit: those records come again.
          if (::truncate(committed_path_.c_str(), static_cast<off_t>(committed_size_)) != 0) {
            return Status::Retry(ErrnoStatus("truncate uncommitted output", committed_path_, errno)
                                     .message());
          }
        }
        cur_path_ = committed_path_;
        cur_size_ = static_cast<uint64_t>(sb.st_size) < committed_size_
                        ? static_cast<uint64_t>(sb.st_size)
                        : committed_size_;
        cur_start_us_ = committed_start_us_;
        have_file_ = true;
      }
    }
  }
  return Status::Ok();
}

void FileSink::StartFile(int64_t recv_us) {
  int64_t start = recv_us;
  if (s_.rotate_ms > 0) {
    const int64_t w = s_.rotate_ms * 1000;
    start = recv_us - ((recv_us % w) + w) % w;
  }
  std::string rename_old;
  if (have_file_ && !dir_mode_) rename_old = NameFor(cur_start_us_);
  if (have_file_ && !rename_old.empty()) {
    // The chunk of the file being closed gets renamed once written.
    if (chunks_.empty() || chunks_.back().path != cur_path_) {
      chunks_.push_back(Chunk{cur_path_, {}, {}});
    }
    chunks_.back().rename_to = rename_old;
  }
  const std::string closing = have_file_ ? cur_path_ : std::string();
  cur_path_ = dir_mode_ ? NameFor(start) : s_.path;
  cur_start_us_ = start;
  cur_size_ = 0;
  struct stat sb;
  if (dir_mode_) {
    // A rotation by size within one second (or one window) must not reopen
    // the file it closes, one written earlier in this batch, or a full one.
    auto taken = [&](const std::string& p) {
      if (p == closing) return true;
      for (const Chunk& c : chunks_) {
        if (c.path == p) return true;
      }
      return s_.rotate_bytes > 0 && ::stat(p.c_str(), &sb) == 0 &&
             static_cast<uint64_t>(sb.st_size) >= static_cast<uint64_t>(s_.rotate_bytes);
    };
    const std::string base = cur_path_;
    for (int n = 1; taken(cur_path_); ++n) cur_path_ = WithSuffix(base, n);
  }
  if (dir_mode_ && ::stat(cur_path_.c_str(), &sb) == 0) {
    // A window's file from before (a restart within the window): append.
    cur_size_ = static_cast<uint64_t>(sb.st_size);
  }
  have_file_ = true;
  chunks_.push_back(Chunk{cur_path_, {}, {}});
}

void FileSink::Write(const Record& r) {
  const int64_t t = r.header->recv_us;
  bool rotate = !have_file_;
  if (!rotate && s_.rotate_ms > 0) {
    const int64_t w = s_.rotate_ms * 1000;
    rotate = t - cur_start_us_ >= w || t < cur_start_us_;
  }
  if (!rotate && s_.rotate_bytes > 0 && cur_size_ >= static_cast<uint64_t>(s_.rotate_bytes)) {
    rotate = true;
  }
  if (rotate) StartFile(t);
  if (chunks_.empty() || chunks_.back().path != cur_path_ || !chunks_.back().rename_to.empty()) {
    chunks_.push_back(Chunk{cur_path_, {}, {}});
  }
  std::string& out = chunks_.back().bytes;
  const size_t before = out.size();
  if (s_.format == Format::kJsonl) {
    // {"_fork_id":"...", ...payload fields}
    out.append("{\"_fork_id\":");
    AppendJsonString(r.event_id, &out);
    wire::Reader rd(r.payload, r.payload_size);
    wire::Value m = rd.Next();
    const uint8_t* q = rd.pos();
    for (uint32_t i = 0; i < m.len; ++i) {
      wire::Reader kr(q, r.payload_size - static_cast<size_t>(q - r.payload));
      wire::Value k = kr.Next();
      if (k.kind == wire::Kind::kStr && k.str() == "_fork_id") {
        kr.Skip();  // the id is forkd's; a payload field of that name is dropped
        q = kr.pos();
        continue;
      }
      out.push_back(',');
      if (k.kind == wire::Kind::kStr) {
        AppendJsonString(k.str(), &out);
        q = kr.pos();
      } else {
        std::string key;
        q = AppendJson(q, &key);
        AppendJsonString(key, &out);
      }
      out.push_back(':');
      q = AppendJson(q, &out);
    }
    out.append("}\n");
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
    if (cur_size_ == 0 && before == 0) WriteCsvHeader(&out);
    AppendCsv(r, &out);
  }
  const size_t added = out.size() - before;
  buffered_ += added;
  cur_size_ += added;
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
  AppendCsvField(r.event_id, out);
  // One pass over the payload, each value placed in its column.
  thread_local std::vector<std::pair<const uint8_t*, size_t>> slots;
  slots.assign(csv_cols_.size(), {nullptr, 0});
  wire::Reader rd(r.payload, r.payload_size);
  wire::Value m = rd.Next();
  for (uint32_t i = 0; i < m.len; ++i) {
    wire::Value k = rd.Peek();
    rd.Skip();
    const uint8_t* v = rd.pos();
    rd.Skip();
    if (k.kind != wire::Kind::kStr) continue;
    for (size_t c = 0; c < csv_cols_.size(); ++c) {
      if (csv_cols_[c] == k.str()) {
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

Status FileSink::WriteChunk(Chunk& c) {
  if (fd_ < 0 || fd_path_ != c.path) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(c.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      fd_path_.clear();
      return Status::Retry(ErrnoStatus("open output", c.path, errno).message());
    }
    fd_path_ = c.path;
  }
  struct stat sb;
  if (::fstat(fd_, &sb) != 0) return Status::Retry(ErrnoStatus("stat", c.path, errno).message());
  const off_t before = sb.st_size;
  if (!c.bytes.empty() && fs::WriteAll(fd_, c.bytes.data(), c.bytes.size()) != 0) {
    int err = errno;
    (void)fs::Truncate(fd_, static_cast<uint64_t>(before));
    return Status::Retry(ErrnoStatus("write", c.path, err).message());
  }
  if (s_.fsync && fs::Fdatasync(fd_) != 0) {
    int err = errno;
    (void)fs::Truncate(fd_, static_cast<uint64_t>(before));
    return Status::Retry(ErrnoStatus("sync", c.path, err).message());
  }
  committed_path_ = c.path;
  committed_size_ = static_cast<uint64_t>(before) + c.bytes.size();
  committed_start_us_ = cur_start_us_;
  if (!c.rename_to.empty()) {
    ::close(fd_);
    fd_ = -1;
    fd_path_.clear();
    // Never replace an earlier rotated file of the same second.
    if (Exists(c.rename_to)) {
      const std::string base = c.rename_to;
      for (int n = 1; Exists(c.rename_to); ++n) c.rename_to = WithSuffix(base, n);
    }
    if (fs::Rename(c.path.c_str(), c.rename_to.c_str()) != 0) {
      // The bytes are written and synced: only the rename is left to retry.
      buffered_ -= c.bytes.size();
      c.bytes.clear();
      return Status::Retry(ErrnoStatus("rotate", c.rename_to, errno).message());
    }
    committed_path_ = s_.path;
    committed_size_ = 0;
  }
  return Status::Ok();
}

Status FileSink::Flush() {
  size_t done = 0;
  Status s;
  for (; done < chunks_.size(); ++done) {
    s = WriteChunk(chunks_[done]);
    if (!s.ok()) break;
    buffered_ -= chunks_[done].bytes.size();
  }
  chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<long>(done));
  if (!s.ok()) return s;
  committed_start_us_ = cur_start_us_;
  return Status::Ok();
}

void FileSink::Discard() {
  chunks_.clear();
  buffered_ = 0;
  cur_path_ = committed_path_;
  cur_size_ = committed_size_;
  cur_start_us_ = committed_start_us_;
  have_file_ = !committed_path_.empty();
}

std::string FileSink::State() const {
  std::string cols;
  for (size_t i = 0; i < csv_cols_.size(); ++i) {
    if (i) cols.push_back('\x1f');
    cols += csv_cols_[i];
  }
  return committed_path_ + "\n" + std::to_string(committed_size_) + "\n" +
         std::to_string(committed_start_us_) + "\n" + cols;
}

}  // namespace forkd::sinks
