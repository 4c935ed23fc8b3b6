#include "ingest/key_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/crc32c.h"
#include "core/fs.h"
#include "wire/protocol.h"

namespace forkd::ingest {
namespace {
constexpr size_t kFixed = 4 + 8 + 8 + 2;
}

KeyJournal::~KeyJournal() {
  if (fd_ >= 0) ::close(fd_);
}

void KeyJournal::Encode(std::string_view key, uint64_t lsn, int64_t recv_us, std::string* out) {
  const size_t n = std::min<size_t>(key.size(), UINT16_MAX);
  const size_t at = out->size();
  out->resize(at + kFixed + n);
  auto* p = reinterpret_cast<uint8_t*>(out->data() + at);
  wire::PutU64(p + 4, lsn);
  wire::PutU64(p + 12, static_cast<uint64_t>(recv_us));
  p[20] = static_cast<uint8_t>(n & 0xff);
  p[21] = static_cast<uint8_t>(n >> 8);
  std::memcpy(p + kFixed, key.data(), n);
  wire::PutU32(p, crc32c::Mask(crc32c::Value(p + 4, kFixed - 4 + n)));
}

Status KeyJournal::Open(const std::function<void(std::string_view, uint64_t, int64_t)>& each,
                        uint64_t* next_lsn) {
  Status s = fs::MakeDirs(dir_, 0700);
  if (!s.ok()) return s;
  std::string data;
  s = fs::ReadFile(Path(), &data);
  if (!s.ok() && !s.IsNotFound()) return s;
  *next_lsn = 0;
  size_t off = 0;
  while (data.size() - off >= kFixed) {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + off);
    const size_t n = static_cast<size_t>(p[20]) | (static_cast<size_t>(p[21]) << 8);
    if (data.size() - off < kFixed + n) break;  // torn tail
    if (crc32c::Unmask(wire::GetU32(p)) != crc32c::Value(p + 4, kFixed - 4 + n)) break;
    const uint64_t lsn = wire::GetU64(p + 4);
    if (n == 0) {
      // A sync marker: every key below `lsn` was in the journal by then.
      *next_lsn = std::max(*next_lsn, lsn);
    } else {
      each(std::string_view(reinterpret_cast<const char*>(p + kFixed), n), lsn,
           static_cast<int64_t>(wire::GetU64(p + 12)));
      *next_lsn = std::max(*next_lsn, lsn + 1);
    }
    off += kFixed + n;
    ++records_;
  }
  fd_ = ::open(Path().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return ErrnoStatus("open", Path(), errno);
  // Whatever follows the last intact record is cut off.
  if (fs::Truncate(fd_, off) != 0) return ErrnoStatus("truncate", Path(), errno);
  if (::lseek(fd_, static_cast<off_t>(off), SEEK_SET) < 0) return ErrnoStatus("seek", Path(), errno);
  synced_next_lsn_ = *next_lsn;
  return Status::Ok();
}

void KeyJournal::Add(std::string_view key, uint64_t lsn, int64_t recv_us) {
  Encode(key, lsn, recv_us, &buf_);
  ++records_;
}

Status KeyJournal::Sync(uint64_t committed_next_lsn) {
  if (committed_next_lsn > synced_next_lsn_) {
    Encode({}, committed_next_lsn, 0, &buf_);  // the marker recovery starts from
  }
  if (!buf_.empty()) {
    const off_t before = ::lseek(fd_, 0, SEEK_CUR);
    if (fs::WriteAll(fd_, buf_.data(), buf_.size()) != 0 || fs::Fdatasync(fd_) != 0) {
      const int err = errno;
      // Cut off a partial write so the next sync appends whole records.
      if (before >= 0) {
        (void)fs::Truncate(fd_, static_cast<uint64_t>(before));
        (void)::lseek(fd_, before, SEEK_SET);
      }
      return ErrnoStatus("write", Path(), err);
    }
    buf_.clear();
  }
  synced_next_lsn_ = committed_next_lsn;
  return Status::Ok();
}

Status KeyJournal::Rewrite(
    const std::function<void(const std::function<void(std::string_view, uint64_t, int64_t)>&)>&
        each_live,
    uint64_t committed_next_lsn) {
  std::string out;
  uint64_t n = 0;
  each_live([&](std::string_view key, uint64_t lsn, int64_t recv_us) {
    Encode(key, lsn, recv_us, &out);
    ++n;
  });
  Encode({}, committed_next_lsn, 0, &out);
  Status s = fs::WriteFileAtomic(Path(), out.data(), out.size());
  if (!s.ok()) return s;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(Path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) return ErrnoStatus("open", Path(), errno);
  buf_.clear();
  records_ = n;
  synced_next_lsn_ = committed_next_lsn;
  return Status::Ok();
}

}  // namespace forkd::ingest
