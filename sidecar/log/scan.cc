#include "log/scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "log/log_format.h"
#include "log/log_reader.h"
#include "wire/codec.h"

namespace forkd::log {
namespace {

class CountingReporter : public Reporter {
 public:
  explicit CountingReporter(ScanInfo* info) : info_(info) {}
  void Corruption(uint64_t, size_t, const std::string&) override { ++info_->damaged; }

 private:
  ScanInfo* info_;
};

}  // namespace

Status ScanLog(const std::string& dir, uint64_t from_lsn, uint64_t until_lsn,
               const std::function<bool(const Entry&)>& fn, ScanInfo* info) {
  *info = ScanInfo{};
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return errno == ENOENT ? Status::NotFound("no log at " + dir)
                           : Status::IoError("open " + dir + ": " + std::strerror(errno));
  }
  std::vector<uint64_t> firsts;
  while (dirent* e = ::readdir(d)) {
    uint64_t first = 0;
    if (ParseSegmentName(e->d_name, &first)) firsts.push_back(first);
  }
  ::closedir(d);
  std::sort(firsts.begin(), firsts.end());
  CountingReporter reporter(info);
  bool first_seen = false;
  for (size_t i = 0; i < firsts.size(); ++i) {
    // Segments wholly below from_lsn are skipped; of the oldest, only its
    // first entry is read (ScanInfo's first_*).
    const bool below = i + 1 < firsts.size() && firsts[i + 1] <= from_lsn;
    if (below && i > 0) continue;
    char name[kSegmentNameDigits + 8];
    std::snprintf(name, sizeof(name), "%020" PRIu64 ".log", firsts[i]);
    const std::string path = dir + "/" + name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // deleted by retention meanwhile
      return Status::IoError("open " + path + ": " + std::strerror(errno));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return Status::IoError("stat " + path + ": " + std::strerror(err));
    }
    LogReader reader(fd, 0, &reporter);
    std::string_view rec;
    Status io;
    bool stop = false;
    while (reader.ReadRecord(static_cast<uint64_t>(st.st_size), &rec, &io) ==
           LogReader::Result::kRecord) {
      if (rec.size() < kEntryHeaderSize) {
        ++info->damaged;
        continue;
      }
      Entry e;
      const auto* p = reinterpret_cast<const uint8_t*>(rec.data());
      e.header.DecodeFrom(p);
      e.event = p + kEntryHeaderSize;
      e.event_size = rec.size() - kEntryHeaderSize;
      std::string why;
      if (!wire::CheckStoredEvent(e.event, e.event_size, &why)) {
        ++info->damaged;
        continue;
      }
      if (!first_seen) {
        first_seen = true;
        info->first_lsn = e.header.lsn;
        info->first_recv_us = e.header.recv_us;
      }
      info->next_lsn = std::max(info->next_lsn, e.header.lsn + 1);
      if (below) break;
      if (e.header.lsn < from_lsn) continue;
      if (until_lsn != 0 && e.header.lsn >= until_lsn) {
        stop = true;
        break;
      }
      ++info->entries;
      if (!fn(e)) {
        stop = true;
        break;
      }
    }
    ::close(fd);
    if (!io.ok()) return io;
    if (stop) break;
  }
  return Status::Ok();
}

}  // namespace forkd::log
