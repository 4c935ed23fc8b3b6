#include "core/crashfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace forkd::fs::crashfs {
namespace {

using Key = std::pair<dev_t, ino_t>;

// A file changed since its last sync: how to put it back.
struct Dirty {
  int handle = -1;            // O_RDWR on the inode, whatever its names become
  uint64_t synced_size = 0;
  struct Undo {
    uint64_t offset;
    std::string bytes;        // what was there before a change, below synced_size
  };
  std::vector<Undo> undo;     // oldest first
};

// A directory change not yet made durable by an fsync of `dir`.
struct NsOp {
  enum Kind { kCreate, kRename, kUnlink, kMkdir } kind;
  uint64_t ticket;
  Key dir;
  std::string path;   // created, deleted or made; a rename's new name
  std::string from;   // a rename's old name
  std::string stash;  // hard link to what the change removed from `path`, if anything
};

std::atomic<bool> g_enabled{false};
std::atomic<bool> g_powering_off{false};
std::shared_mutex g_ops;  // shared by each Op, taken whole by PowerOff
std::mutex g_mu;          // guards what follows
std::string g_stash_dir;
std::map<Key, Dirty> g_dirty;
std::vector<NsOp> g_pending;  // oldest first
uint64_t g_next_ticket = 1;
std::atomic<uint64_t> g_syncs{0};
uint64_t g_power_off_at_sync = 0;  // 0: only on request

bool KeyOf(int fd, Key* key, struct stat* st) {
  if (::fstat(fd, st) != 0) return false;
  *key = {st->st_dev, st->st_ino};
  return true;
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool DirKey(const std::string& path, Key* key) {
  struct stat st;
  if (::stat(DirOf(path).c_str(), &st) != 0) return false;
  *key = {st.st_dev, st.st_ino};
  return true;
}

// The dirty record of the inode open as `fd` (or at `path`), made on its first change.
Dirty* DirtyFor(const Key& key, const struct stat& st, const std::string& reopen) {
  auto it = g_dirty.find(key);
  if (it != g_dirty.end()) return &it->second;
  // Not dirty yet: what it holds now is what the disk holds.
  const int h = ::open(reopen.c_str(), O_RDWR | O_CLOEXEC);
  if (h < 0) {
    std::fprintf(stderr, "crashfs: cannot track %s: %s\n", reopen.c_str(), std::strerror(errno));
    std::abort();
  }
  Dirty& d = g_dirty[key];
  d.handle = h;
  d.synced_size = static_cast<uint64_t>(st.st_size);
  return &d;
}

// Saves the bytes in [offset, offset + n) below the synced size.
void SaveRange(Dirty* d, uint64_t offset, uint64_t n) {
  if (offset >= d->synced_size) return;
  const uint64_t end = std::min(d->synced_size, offset + n);
  std::string bytes(end - offset, '\0');
  const ssize_t r = ::pread(d->handle, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  // Past the current end there is nothing to save: an earlier truncate's
  // record (undone later) brings those bytes back.
  bytes.resize(r > 0 ? static_cast<size_t>(r) : 0);
  if (!bytes.empty()) d->undo.push_back({offset, std::move(bytes)});
}

std::string FdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

uint64_t Record(NsOp op) {
  op.ticket = g_next_ticket++;
  g_pending.push_back(std::move(op));
  return g_pending.back().ticket;
}

// A hard link keeping what `path` names now, or "" when it names nothing.
std::string Stash(const char* path) {
  const std::string stash = g_stash_dir + "/" + std::to_string(::getpid()) + "-" +
                            std::to_string(g_next_ticket);
  if (::link(path, stash.c_str()) == 0) return stash;
  if (errno == ENOENT) return "";
  std::fprintf(stderr, "crashfs: cannot keep %s as %s: %s\n", path, stash.c_str(),
               std::strerror(errno));
  std::abort();
}

void RemoveTree(const std::string& path) {
  if (DIR* d = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      RemoveTree(path + "/" + name);
    }
    ::closedir(d);
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

}  // namespace

void EnableFromEnv() {
  const char* dir = std::getenv("FORKD_CRASHFS");
  if (dir == nullptr || *dir == 0) return;
  g_stash_dir = dir;
  ::mkdir(dir, 0700);
  const char* when = std::getenv("FORKD_POWER_OFF");
  if (when != nullptr && std::strncmp(when, "syncs:", 6) == 0) {
    g_power_off_at_sync = std::strtoull(when + 6, nullptr, 10);
  }
  g_enabled.store(true);
}

bool Enabled() { return g_enabled.load(std::memory_order_relaxed); }

Op::Op() : held_(Enabled()) {
  if (!held_) return;
  // Once the power is going off, nothing more reaches the disk.
  while (g_powering_off.load()) ::pause();
  g_ops.lock_shared();
}

Op::~Op() {
  if (held_) g_ops.unlock_shared();
}

void WillWrite(int fd, uint64_t offset, uint64_t n) {
  if (!Enabled() || n == 0) return;
  Key key;
  struct stat st;
  if (!KeyOf(fd, &key, &st) || !S_ISREG(st.st_mode)) return;
  if (offset == kAtPosition) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_APPEND) != 0) {
      offset = static_cast<uint64_t>(st.st_size);
    } else {
      const off_t pos = ::lseek(fd, 0, SEEK_CUR);
      offset = pos < 0 ? 0 : static_cast<uint64_t>(pos);
    }
  }
  std::lock_guard<std::mutex> lock(g_mu);
  SaveRange(DirtyFor(key, st, FdPath(fd)), offset, n);
}

void WillTruncate(int fd, uint64_t size) {
  if (!Enabled()) return;
  Key key;
  struct stat st;
  if (!KeyOf(fd, &key, &st) || !S_ISREG(st.st_mode)) return;
  std::lock_guard<std::mutex> lock(g_mu);
  SaveRange(DirtyFor(key, st, FdPath(fd)), size, UINT64_MAX - size);
}

void WillTruncatePath(const char* path, uint64_t size) {
  if (!Enabled()) return;
  struct stat st;
  if (::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return;
  std::lock_guard<std::mutex> lock(g_mu);
  SaveRange(DirtyFor({st.st_dev, st.st_ino}, st, path), size, UINT64_MAX - size);
}

uint64_t WillCreate(const char* path) {
  if (!Enabled()) return 0;
  struct stat st;
  Key dir;
  if (::lstat(path, &st) == 0 || !DirKey(path, &dir)) return 0;
  std::lock_guard<std::mutex> lock(g_mu);
  return Record({NsOp::kCreate, 0, dir, path, "", ""});
}

uint64_t WillRename(const char* from, const char* to) {
  if (!Enabled()) return 0;
  Key dir;
  if (!DirKey(to, &dir)) return 0;
  std::lock_guard<std::mutex> lock(g_mu);
  std::string stash = Stash(to);
  return Record({NsOp::kRename, 0, dir, to, from, std::move(stash)});
}

uint64_t WillUnlink(const char* path) {
  if (!Enabled()) return 0;
  Key dir;
  if (!DirKey(path, &dir)) return 0;
  std::lock_guard<std::mutex> lock(g_mu);
  std::string stash = Stash(path);
  if (stash.empty()) return 0;
  return Record({NsOp::kUnlink, 0, dir, path, "", std::move(stash)});
}

uint64_t WillMkdir(const char* path) {
  if (!Enabled()) return 0;
  struct stat st;
  Key dir;
  if (::lstat(path, &st) == 0 || !DirKey(path, &dir)) return 0;
  std::lock_guard<std::mutex> lock(g_mu);
  return Record({NsOp::kMkdir, 0, dir, path, "", ""});
}

void Failed(uint64_t ticket) {
  if (ticket == 0) return;
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto it = g_pending.begin(); it != g_pending.end(); ++it) {
    if (it->ticket != ticket) continue;
    if (!it->stash.empty()) ::unlink(it->stash.c_str());
    g_pending.erase(it);
    return;
  }
}

void Synced(int fd) {
  if (!Enabled()) return;
  Key key;
  struct stat st;
  if (!KeyOf(fd, &key, &st)) return;
  std::lock_guard<std::mutex> lock(g_mu);
  if (S_ISDIR(st.st_mode)) {
    // Every change to this directory's entries is durable now.
    std::vector<NsOp> keep;
    for (NsOp& op : g_pending) {
      if (op.dir == key) {
        if (!op.stash.empty()) ::unlink(op.stash.c_str());
      } else {
        keep.push_back(std::move(op));
      }
    }
    g_pending.swap(keep);
    return;
  }
  auto it = g_dirty.find(key);
  if (it == g_dirty.end()) return;
  ::close(it->second.handle);
  g_dirty.erase(it);
}

void BeforeSync() {
  if (!Enabled() || g_power_off_at_sync == 0) return;
  if (g_syncs.fetch_add(1) + 1 == g_power_off_at_sync) PowerOff("at a sync");
}

void PowerOff(const char* why) {
  g_powering_off.store(true);
  g_ops.lock();  // waits for the calls under way; no new one starts
  std::lock_guard<std::mutex> lock(g_mu);
  uint64_t dropped = 0;
  for (auto& [key, d] : g_dirty) {
    struct stat st;
    if (::fstat(d.handle, &st) == 0 && static_cast<uint64_t>(st.st_size) > d.synced_size) {
      dropped += static_cast<uint64_t>(st.st_size) - d.synced_size;
    }
    for (auto u = d.undo.rbegin(); u != d.undo.rend(); ++u) {
      dropped += u->bytes.size();
      [[maybe_unused]] ssize_t w =
          ::pwrite(d.handle, u->bytes.data(), u->bytes.size(), static_cast<off_t>(u->offset));
    }
    [[maybe_unused]] int rc = ::ftruncate(d.handle, static_cast<off_t>(d.synced_size));
  }
  // Newest first, so each change finds the names as it left them.
  for (auto op = g_pending.rbegin(); op != g_pending.rend(); ++op) {
    switch (op->kind) {
      case NsOp::kCreate:
        ::unlink(op->path.c_str());
        break;
      case NsOp::kMkdir:
        RemoveTree(op->path);
        break;
      case NsOp::kRename:
        ::rename(op->path.c_str(), op->from.c_str());
        if (!op->stash.empty()) ::rename(op->stash.c_str(), op->path.c_str());
        break;
      case NsOp::kUnlink:
        ::rename(op->stash.c_str(), op->path.c_str());
        break;
    }
  }
  std::fprintf(stderr,
               "power off (%s): %zu files rolled back, %" PRIu64
               " unsynced bytes dropped, %zu directory changes undone\n",
               why, g_dirty.size(), dropped, g_pending.size());
  std::fflush(stderr);
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);
}

}  // namespace forkd::fs::crashfs
