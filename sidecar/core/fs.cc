#include "core/fs.h"

#include "core/crashfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

namespace forkd::fs {
namespace {

struct Fault {
  const char* kind;
  std::atomic<uint64_t> countdown{0};  // 0: none armed
  std::atomic<bool> sticky{false};
  std::atomic<bool> tripped{false};
  std::atomic<int> err{EIO};
};
Fault g_write{"write"}, g_fsync{"fsync"}, g_rename{"rename"};
std::atomic<int64_t> g_fsync_delay_ms{0};

void DelayFsync() {
  const int64_t ms = g_fsync_delay_ms.load(std::memory_order_relaxed);
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

Fault* FaultFor(const std::string& kind) {
  if (kind == "write") return &g_write;
  if (kind == "fsync") return &g_fsync;
  if (kind == "rename") return &g_rename;
  return nullptr;
}

// True when this call must fail; sets errno.
bool Trip(Fault& f) {
  if (f.tripped.load(std::memory_order_relaxed) && f.sticky.load(std::memory_order_relaxed)) {
    errno = f.err.load();
    return true;
  }
  uint64_t c = f.countdown.load(std::memory_order_relaxed);
  if (c == 0) return false;
  if (f.countdown.fetch_sub(1) == 1) {
    f.tripped.store(true);
    errno = f.err.load();
    // Said once, so that a test can tell a fault that fired from one never reached.
    std::fprintf(stderr, "injected fault: this %s fails with %s%s\n", f.kind,
                 std::strerror(errno), f.sticky.load() ? ", and every later one" : "");
    errno = f.err.load();
    return true;
  }
  return false;
}

}  // namespace

int PwriteAll(int fd, const void* data, size_t n, uint64_t offset) {
  if (Trip(g_write)) return -1;
  crashfs::Op op;
  crashfs::WillWrite(fd, offset, n);
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return 0;
}

int WriteAll(int fd, const void* data, size_t n) {
  if (Trip(g_write)) return -1;
  crashfs::Op op;
  crashfs::WillWrite(fd, crashfs::kAtPosition, n);
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

int Fsync(int fd) {
  DelayFsync();
  if (Trip(g_fsync)) return -1;
  crashfs::BeforeSync();
  crashfs::Op op;
  const int rc = ::fsync(fd);
  if (rc == 0) crashfs::Synced(fd);
  return rc;
}

int Fdatasync(int fd) {
  DelayFsync();
  if (Trip(g_fsync)) return -1;
  crashfs::BeforeSync();
  crashfs::Op op;
  const int rc = ::fdatasync(fd);
  if (rc == 0) crashfs::Synced(fd);
  return rc;
}

int Truncate(int fd, uint64_t size) {
  crashfs::Op op;
  crashfs::WillTruncate(fd, size);
  return ::ftruncate(fd, static_cast<off_t>(size));
}

int Truncate(const char* path, uint64_t size) {
  crashfs::Op op;
  crashfs::WillTruncatePath(path, size);
  return ::truncate(path, static_cast<off_t>(size));
}

int Rename(const char* from, const char* to) {
  if (Trip(g_rename)) return -1;
  crashfs::Op op;
  const uint64_t ticket = crashfs::WillRename(from, to);
  const int rc = ::rename(from, to);
  if (rc != 0) {
    const int err = errno;
    crashfs::Failed(ticket);
    errno = err;
  }
  return rc;
}

int Unlink(const char* path) {
  crashfs::Op op;
  const uint64_t ticket = crashfs::WillUnlink(path);
  const int rc = ::unlink(path);
  if (rc != 0) {
    const int err = errno;
    crashfs::Failed(ticket);
    errno = err;
  }
  return rc;
}

int Open(const char* path, int flags, mode_t mode) {
  crashfs::Op op;
  const uint64_t ticket = (flags & O_CREAT) != 0 ? crashfs::WillCreate(path) : 0;
  if ((flags & O_TRUNC) != 0) crashfs::WillTruncatePath(path, 0);
  const int fd = ::open(path, flags, mode);
  if (fd < 0) {
    const int err = errno;
    crashfs::Failed(ticket);
    errno = err;
  }
  return fd;
}

namespace {

// mkdir(2), recorded for a simulated power loss.
int Mkdir(const char* path, mode_t mode) {
  crashfs::Op op;
  const uint64_t ticket = crashfs::WillMkdir(path);
  const int rc = ::mkdir(path, mode);
  if (rc != 0) {
    const int err = errno;
    crashfs::Failed(ticket);
    errno = err;
  }
  return rc;
}

int SyncDirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -1;
  const int rc = Fsync(dfd);
  const int err = errno;
  ::close(dfd);
  errno = err;
  return rc;
}

}  // namespace

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return Status::InvalidArgument("empty directory path");
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    i = j + 1;
    if (cur.empty()) continue;
    if (Mkdir(cur.c_str(), mode) == 0) {
      // A new directory is only as durable as its entry in the parent.
      if (SyncDirOf(cur) != 0) return ErrnoStatus("sync directory of", cur, errno);
    } else if (errno != EEXIST) {
      return ErrnoStatus("create directory", cur, errno);
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat directory", path, errno);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + " exists and is not a directory");
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const void* data, size_t n) {
  const std::string tmp = path + ".tmp";
  int fd = Open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("create", tmp, errno);
  if (WriteAll(fd, data, n) != 0) {
    int err = errno;
    ::close(fd);
    Unlink(tmp.c_str());
    return ErrnoStatus("write", tmp, err);
  }
  if (Fdatasync(fd) != 0) {
    int err = errno;
    ::close(fd);
    Unlink(tmp.c_str());
    return ErrnoStatus("sync", tmp, err);
  }
  ::close(fd);
  if (Rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    Unlink(tmp.c_str());
    return ErrnoStatus("rename", path, err);
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = Fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (rc != 0) return ErrnoStatus("sync directory", dir, err);
  }
  return Status::Ok();
}

Status ReadFile(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound(path + " does not exist");
    return ErrnoStatus("open", path, errno);
  }
  out->clear();
  char buf[8192];
  while (true) {
    ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus("read", path, err);
    }
    if (r == 0) break;
    out->append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return Status::Ok();
}

void InjectFault(const std::string& kind, uint64_t nth, int err, bool sticky) {
  Fault* f = FaultFor(kind);
  if (f == nullptr) return;
  f->tripped.store(false);
  f->sticky.store(sticky);
  f->err.store(err);
  f->countdown.store(nth);
}

void ClearFaults() {
  for (Fault* f : {&g_write, &g_fsync, &g_rename}) {
    f->countdown.store(0);
    f->sticky.store(false);
    f->tripped.store(false);
  }
}

void InjectFsyncDelay(int64_t ms) { g_fsync_delay_ms.store(ms); }

void InjectFaultsFromEnv() {
  if (const char* delay = std::getenv("FORKD_FSYNC_DELAY_MS")) {
    InjectFsyncDelay(std::strtoll(delay, nullptr, 10));
  }
  const char* spec = std::getenv("FORKD_FAULT");
  if (spec == nullptr || *spec == 0) return;
  std::string s(spec);
  std::string parts[4];
  size_t n = 0;
  size_t start = 0;
  while (n < 4) {
    size_t colon = s.find(':', start);
    parts[n++] = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (n < 2) return;
  const uint64_t nth = std::strtoull(parts[1].c_str(), nullptr, 10);
  const bool sticky = n > 2 && parts[2] == "sticky";
  const int err = n > 3 ? std::atoi(parts[3].c_str()) : EIO;
  InjectFault(parts[0], nth, err, sticky);
}

}  // namespace forkd::fs
