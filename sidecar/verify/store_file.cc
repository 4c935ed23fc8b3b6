// The file store: the destination's files (the active one and those rotated
// beside it, or every file of its directory, parts of the open window
// included), read line by line up to each file's last whole line.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "verify/store_internal.h"

namespace forkd::verify {
namespace {

bool EndsWith(std::string_view s, std::string_view t) {
  return s.size() >= t.size() && s.substr(s.size() - t.size()) == t;
}

// The first field of a CSV line (RFC 4180), unquoted.
std::string CsvField(std::string_view line, size_t* at) {
  std::string out;
  size_t i = *at;
  if (i < line.size() && line[i] == '"') {
    ++i;
    while (i < line.size()) {
      if (line[i] == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          out.push_back('"');
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      out.push_back(line[i++]);
    }
  } else {
    while (i < line.size() && line[i] != ',') out.push_back(line[i++]);
  }
  if (i < line.size() && line[i] == ',') ++i;
  *at = i;
  return out;
}

// The JSON string at the start of `s` (after `{"_fork_id":`), unescaped as
// forkd escapes; false when the line does not start that way.
bool JsonlId(std::string_view line, std::string* id) {
  constexpr std::string_view kPrefix = "{\"_fork_id\":\"";
  if (line.substr(0, kPrefix.size()) != kPrefix) return false;
  id->clear();
  for (size_t i = kPrefix.size(); i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"') return true;
    if (c != '\\') {
      id->push_back(c);
      continue;
    }
    if (++i == line.size()) return false;
    switch (line[i]) {
      case 'n': id->push_back('\n'); break;
      case 't': id->push_back('\t'); break;
      case 'r': id->push_back('\r'); break;
      case 'b': id->push_back('\b'); break;
      case 'f': id->push_back('\f'); break;
      case 'u': {
        if (i + 4 >= line.size()) return false;
        const unsigned cp = static_cast<unsigned>(std::stoul(std::string(line.substr(i + 1, 4)), nullptr, 16));
        i += 4;
        if (cp < 0x80) {
          id->push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
          id->push_back(static_cast<char>(0xC0 | (cp >> 6)));
          id->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
          id->push_back(static_cast<char>(0xE0 | (cp >> 12)));
          id->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          id->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        break;
      }
      default: id->push_back(line[i]);
    }
  }
  return false;
}

class FileStore : public StoreReader {
 public:
  FileStore(std::string path, bool csv) : path_(std::move(path)), csv_(csv) {}
  Kind kind() const override { return csv_ ? Kind::kCsv : Kind::kJsonl; }
  std::string where() const override { return "file " + path_; }
  const std::vector<std::string>& columns() const override { return columns_; }

  Status Open() override {
    const std::string ext = csv_ ? ".csv" : ".jsonl";
    const bool is_dir = !path_.empty() && path_.back() == '/';
    std::string dir = is_dir ? path_ : path_.substr(0, path_.rfind('/') + 1);
    std::string stem;
    if (!is_dir) {
      const std::string base = path_.substr(dir.size());
      stem = EndsWith(base, ext) ? base.substr(0, base.size() - ext.size()) : base;
    }
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return Status::Ok();
      return Status::IoError(where() + ": open " + dir + ": " + std::strerror(errno));
    }
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      bool mine;
      if (is_dir) {
        mine = (name[0] != '.' && EndsWith(name, ext)) ||
               (name[0] == '.' && EndsWith(name, ext + ".part"));
      } else {
        mine = name == path_.substr(dir.size()) ||
               (name.rfind(stem + "-", 0) == 0 && EndsWith(name, ext));
      }
      if (mine) files_.push_back(dir + name);
    }
    ::closedir(d);
    std::sort(files_.begin(), files_.end());
    return Status::Ok();
  }

  Status ForEach(const RowFn& fn) override {
    std::vector<std::optional<std::string_view>> cells(1);
    std::string id;
    for (const std::string& f : files_) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        if (errno == ENOENT) continue;  // renamed (a window closed) meanwhile: read under its new name
        return Status::IoError(where() + ": open " + f + ": " + std::strerror(errno));
      }
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string data = ss.str();
      const size_t end = data.rfind('\n');  // a line still being written is not judged
      if (end == std::string::npos) continue;
      size_t at = 0;
      bool header = csv_;
      columns_.clear();
      while (at <= end) {
        const size_t nl = data.find('\n', at);
        std::string_view line = std::string_view(data).substr(at, nl - at);
        at = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (header) {
          header = false;
          size_t i = 0;
          const std::string first = CsvField(line, &i);
          while (i < line.size()) columns_.push_back(CsvField(line, &i));
          if (first == "_fork_id") continue;
          columns_.clear();  // no header: judged line by line
        }
        if (csv_) {
          size_t i = 0;
          id = CsvField(line, &i);
        } else if (!JsonlId(line, &id)) {
          id.clear();
        }
        cells[0] = line;
        fn(id, cells);
      }
    }
    return Status::Ok();
  }

  Status Delete(const std::vector<std::string>&) override {
    return Status::InvalidArgument(where() + ": lines of a file are not deleted");
  }

 private:
  std::string path_;
  bool csv_;
  std::vector<std::string> files_;
  std::vector<std::string> columns_;
};

}  // namespace

std::unique_ptr<StoreReader> NewFileStore(const Config& config, const DestinationConfig& d,
                                          std::string*) {
  std::string path = config.Resolve(d.sink.Str("path"));
  if (!d.sink.Str("path").empty() && d.sink.Str("path").back() == '/' && path.back() != '/') path += '/';
  return std::make_unique<FileStore>(path, d.sink.Str("format") == "csv");
}

bool CanReadBack(std::string_view type) {
  return type == "sqlite" || type == "postgres" || type == "clickhouse" || type == "file";
}

std::unique_ptr<StoreReader> NewStoreReader(const Config& config, const DestinationConfig& d,
                                            std::string* why) {
  if (d.type == "sqlite") return NewSqliteStore(config, d, why);
  if (d.type == "postgres") return NewPostgresStore(config, d, why);
  if (d.type == "clickhouse") return NewClickHouseStore(config, d, why);
  if (d.type == "file") return NewFileStore(config, d, why);
  *why = "a " + d.type + " destination's store cannot be read back";
  return nullptr;
}

}  // namespace forkd::verify
