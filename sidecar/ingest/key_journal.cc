#include "ingest/key_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/crc32c.h"
#include "core/fs.h"
#include "wire/protocol.h"

namespace forkd::ingest {
namespace {

constexpr char kMagic[] = "FORKKEY";  // followed by the version byte
constexpr size_t kMagicSize = sizeof(kMagic) - 1;
constexpr size_t kHeaderSize = kMagicSize + 1;
constexpr size_t kFixed = 4 + 8 + 8 + 2 + 1;  // crc lsn recv_us key_len dest_len
constexpr size_t kFixedV1 = 4 + 8 + 8 + 2;    // crc lsn recv_us len

std::string Header() {
  std::string h(kMagic, kMagicSize);
  h.push_back(static_cast<char>(KeyJournal::kVersion));
  return h;
}

}  // namespace

KeyJournal::~KeyJournal() {
  if (fd_ >= 0) ::close(fd_);
}

void KeyJournal::Encode(std::string_view key, std::string_view dest, uint64_t lsn,
                        int64_t recv_us, std::string* out) {
  const size_t n = std::min<size_t>(key.size(), UINT16_MAX);
  const size_t dn = std::min<size_t>(dest.size(), UINT8_MAX);
  const size_t at = out->size();
  out->resize(at + kFixed + n + dn);
  auto* p = reinterpret_cast<uint8_t*>(out->data() + at);
  wire::PutU64(p + 4, lsn);
  wire::PutU64(p + 12, static_cast<uint64_t>(recv_us));
  p[20] = static_cast<uint8_t>(n & 0xff);
  p[21] = static_cast<uint8_t>(n >> 8);
  p[22] = static_cast<uint8_t>(dn);
  // An empty view may have no bytes behind it: memcpy must not see it.
  if (n > 0) std::memcpy(p + kFixed, key.data(), n);
  if (dn > 0) std::memcpy(p + kFixed + n, dest.data(), dn);
  wire::PutU32(p, crc32c::Mask(crc32c::Value(p + 4, kFixed - 4 + n + dn)));
}

std::string KeyJournal::ConvertV1(const std::string& data, const Each& each,
                                  uint64_t* next_lsn) {
  std::string out = Header();
  size_t off = 0;
  while (data.size() - off >= kFixedV1) {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + off);
    const size_t n = static_cast<size_t>(p[20]) | (static_cast<size_t>(p[21]) << 8);
    if (data.size() - off < kFixedV1 + n) break;  // torn tail
    if (crc32c::Unmask(wire::GetU32(p)) != crc32c::Value(p + 4, kFixedV1 - 4 + n)) break;
    const uint64_t lsn = wire::GetU64(p + 4);
    if (n == 0) {
      *next_lsn = std::max(*next_lsn, lsn);
    } else {
      // Version 1 did not record destinations: the key holds for all of
      // them, as it did when it was written.
      const std::string_view key(reinterpret_cast<const char*>(p + kFixedV1), n);
      const auto recv_us = static_cast<int64_t>(wire::GetU64(p + 12));
      each(key, {}, lsn, recv_us);
      Encode(key, {}, lsn, recv_us, &out);
      ++records_;
      *next_lsn = std::max(*next_lsn, lsn + 1);
    }
    off += kFixedV1 + n;
  }
  if (*next_lsn > 0) {
    Encode({}, {}, *next_lsn, 0, &out);
    ++records_;
  }
  return out;
}

Status KeyJournal::Open(const Each& each, uint64_t* next_lsn) {
  Status s = fs::MakeDirs(dir_, 0700);
  if (!s.ok()) return s;
  std::string data;
  s = fs::ReadFile(Path(), &data);
  if (!s.ok() && !s.IsNotFound()) return s;
  *next_lsn = 0;
  records_ = 0;
  if (data.size() < kHeaderSize || std::memcmp(data.data(), kMagic, kMagicSize) != 0) {
    // Version 1, or no journal yet: write it anew as version 2.
    const std::string converted = ConvertV1(data, each, next_lsn);
    s = fs::WriteFileAtomic(Path(), converted.data(), converted.size());
    if (!s.ok()) return s;
    fd_ = ::open(Path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) return ErrnoStatus("open", Path(), errno);
    synced_next_lsn_ = *next_lsn;
    return Status::Ok();
  }
  const auto version = static_cast<uint8_t>(data[kMagicSize]);
  if (version != kVersion) {
    return Status::Corruption(Path() + ": key journal version " + std::to_string(version) +
                              ", but this forkd reads version " + std::to_string(kVersion) +
                              " (and 1); a newer forkd wrote it");
  }
  size_t off = kHeaderSize;
  while (data.size() - off >= kFixed) {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + off);
    const size_t n = static_cast<size_t>(p[20]) | (static_cast<size_t>(p[21]) << 8);
    const size_t dn = p[22];
    if (data.size() - off < kFixed + n + dn) break;  // torn tail
    if (crc32c::Unmask(wire::GetU32(p)) != crc32c::Value(p + 4, kFixed - 4 + n + dn)) break;
    const uint64_t lsn = wire::GetU64(p + 4);
    if (n == 0) {
      // A sync marker: every key below `lsn` was in the journal by then.
      *next_lsn = std::max(*next_lsn, lsn);
    } else {
      const auto* k = reinterpret_cast<const char*>(p + kFixed);
      each(std::string_view(k, n), std::string_view(k + n, dn), lsn,
           static_cast<int64_t>(wire::GetU64(p + 12)));
      *next_lsn = std::max(*next_lsn, lsn + 1);
    }
    off += kFixed + n + dn;
    ++records_;
  }
  fd_ = ::open(Path().c_str(), O_WRONLY | O_CLOEXEC, 0600);
  if (fd_ < 0) return ErrnoStatus("open", Path(), errno);
  // Whatever follows the last intact record is cut off.
  if (fs::Truncate(fd_, off) != 0) return ErrnoStatus("truncate", Path(), errno);
  if (::lseek(fd_, static_cast<off_t>(off), SEEK_SET) < 0) return ErrnoStatus("seek", Path(), errno);
  synced_next_lsn_ = *next_lsn;
  return Status::Ok();
}

Status KeyJournal::Find(const std::string& dir, std::string_view key, uint64_t* lsn,
                        int64_t* recv_us) {
  std::string data;
  Status s = fs::ReadFile(dir + "/keys.journal", &data);
  if (!s.ok()) return s;
  if (data.size() < kHeaderSize || std::memcmp(data.data(), kMagic, kMagicSize) != 0 ||
      static_cast<uint8_t>(data[kMagicSize]) != kVersion) {
    return Status::NotFound("no key journal of version " + std::to_string(kVersion));
  }
  bool found = false;
  size_t off = kHeaderSize;
  while (data.size() - off >= kFixed) {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + off);
    const size_t n = static_cast<size_t>(p[20]) | (static_cast<size_t>(p[21]) << 8);
    const size_t dn = p[22];
    if (data.size() - off < kFixed + n + dn) break;  // torn tail
    if (crc32c::Unmask(wire::GetU32(p)) != crc32c::Value(p + 4, kFixed - 4 + n + dn)) break;
    if (n == key.size() && std::memcmp(p + kFixed, key.data(), n) == 0) {
      const uint64_t l = wire::GetU64(p + 4);
      if (!found || l > *lsn) {
        *lsn = l;
        *recv_us = static_cast<int64_t>(wire::GetU64(p + 12));
      }
      found = true;
    }
    off += kFixed + n + dn;
  }
  return found ? Status::Ok() : Status::NotFound("key not in the journal");
}

void KeyJournal::Add(std::string_view key, std::string_view dest, uint64_t lsn,
                     int64_t recv_us) {
  Encode(key, dest, lsn, recv_us, &buf_);
  ++records_;
}

Status KeyJournal::Sync(uint64_t committed_next_lsn) {
  if (committed_next_lsn > synced_next_lsn_) {
    Encode({}, {}, committed_next_lsn, 0, &buf_);  // the marker recovery starts from
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

Status KeyJournal::Rewrite(const std::function<void(const Each&)>& each_live,
                           uint64_t committed_next_lsn) {
  std::string out = Header();
  uint64_t n = 0;
  each_live([&](std::string_view key, std::string_view dest, uint64_t lsn, int64_t recv_us) {
    Encode(key, dest, lsn, recv_us, &out);
    ++n;
  });
  Encode({}, {}, committed_next_lsn, 0, &out);
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
