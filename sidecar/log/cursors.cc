#include "log/cursors.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "core/crc32c.h"
#include "core/fs.h"

namespace forkd::log {
namespace {
constexpr char kMagic[4] = {'F', 'K', 'C', 'R'};
constexpr uint32_t kVersion = 1;
constexpr size_t kFixed = 4 + 4 + 8 + 8 + 8 + 4;
constexpr std::string_view kSuffix = ".cursor";
}  // namespace

Status CursorStore::Init() { return fs::MakeDirs(dir_, 0700); }

std::string CursorStore::PathFor(const std::string& destination) const {
  return dir_ + "/" + destination + ".cursor";
}

Status CursorStore::List(std::vector<std::string>* destinations) const {
  destinations->clear();
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return Status::NotFound(dir_ + " does not exist");
    return ErrnoStatus("list cursors in", dir_, errno);
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    if (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix) {
      destinations->emplace_back(name.substr(0, name.size() - kSuffix.size()));
    }
  }
  ::closedir(d);
  std::sort(destinations->begin(), destinations->end());
  return Status::Ok();
}

Status CursorStore::Remove(const std::string& destination) const {
  // The cursor last: a crash in between leaves it in place, still holding
  // the log, and the removal can be repeated.
  for (const std::string& path : {dir_ + "/" + destination + ".backfill", PathFor(destination)}) {
    if (fs::Unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("delete", path, errno);
  }
  // The deletion is durable before anyone is told the log is released.
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoStatus("open directory", dir_, errno);
  const int rc = fs::Fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return ErrnoStatus("sync directory", dir_, err);
  return Status::Ok();
}

std::string CursorStore::Encode(const Cursor& c) {
  std::string out(kFixed + c.sink_state.size() + 4, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  std::memcpy(p, kMagic, 4);
  wire::PutU32(p + 4, kVersion);
  wire::PutU64(p + 8, c.position.next_lsn);
  wire::PutU64(p + 16, c.position.segment);
  wire::PutU64(p + 24, c.position.offset);
  wire::PutU32(p + 32, static_cast<uint32_t>(c.sink_state.size()));
  std::memcpy(p + kFixed, c.sink_state.data(), c.sink_state.size());
  const size_t body = kFixed + c.sink_state.size();
  wire::PutU32(p + body, crc32c::Mask(crc32c::Value(p, body)));
  return out;
}

Status CursorStore::Decode(const std::string& bytes, Cursor* out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < kFixed + 4 || std::memcmp(p, kMagic, 4) != 0) {
    return Status::Corruption("not a cursor file");
  }
  if (wire::GetU32(p + 4) != kVersion) {
    return Status::Corruption("cursor version " + std::to_string(wire::GetU32(p + 4)));
  }
  const uint32_t state_len = wire::GetU32(p + 32);
  if (bytes.size() != kFixed + state_len + 4) return Status::Corruption("cursor length mismatch");
  const uint32_t crc = crc32c::Unmask(wire::GetU32(p + kFixed + state_len));
  if (crc != crc32c::Value(p, kFixed + state_len)) return Status::Corruption("cursor checksum");
  out->position.next_lsn = wire::GetU64(p + 8);
  out->position.segment = wire::GetU64(p + 16);
  out->position.offset = wire::GetU64(p + 24);
  out->sink_state.assign(bytes.data() + kFixed, state_len);
  return Status::Ok();
}

Status CursorStore::Load(const std::string& destination, Cursor* out) const {
  std::string bytes;
  const std::string path = PathFor(destination);
  Status s = fs::ReadFile(path, &bytes);
  if (!s.ok()) return s;
  s = Decode(bytes, out);
  if (!s.ok()) return Status::Corruption(path + ": " + s.message());
  return Status::Ok();
}

Status CursorStore::Save(const std::string& destination, const Cursor& c) const {
  const std::string bytes = Encode(c);
  return fs::WriteFileAtomic(PathFor(destination), bytes.data(), bytes.size());
}

Status CursorStore::SaveBackfill(const std::string& destination, uint64_t until_lsn) const {
  const std::string text = std::to_string(until_lsn) + "\n";
  return fs::WriteFileAtomic(dir_ + "/" + destination + ".backfill", text.data(), text.size());
}

uint64_t CursorStore::LoadBackfill(const std::string& destination) const {
  std::string text;
  if (!fs::ReadFile(dir_ + "/" + destination + ".backfill", &text).ok()) return 0;
  uint64_t v = 0;
  for (char c : text) {
    if (c == '\n') break;
    if (c < '0' || c > '9') return 0;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return 0;
    v = v * 10 + digit;
  }
  return v;
}

}  // namespace forkd::log
