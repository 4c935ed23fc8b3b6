// Simulated machine crash, for tests: what a power loss leaves on disk.
//
// Off unless FORKD_CRASHFS names a directory on the same file system as the
// data (it holds the hard links that let a deletion be undone). When on,
// every change fs.h makes is recorded in two ways:
//
//   - File contents. A file written since its last fsync/fdatasync is
//     "dirty": its synced size is remembered, and before any write or
//     truncate below that size the bytes it replaces are saved. A successful
//     fsync/fdatasync of the file forgets all of it: that content is durable.
//   - Directory entries. Creating, renaming over, deleting a file and making
//     a directory are pending until the directory holding the (new) name is
//     fsynced.
//
// PowerOff() stops every further fs call, puts each dirty file back to its
// synced content, undoes every pending directory change (newest first), says
// what it dropped on stderr ("power off: ...") and SIGKILLs the process:
// the next process finds the files as the disk would after a power loss in
// which nothing unsynced survived. The moment is chosen by
// FORKD_POWER_OFF=syncs:N (instead of the Nth fsync/fdatasync from start-up,
// so the writes it would have made durable are lost) or by SIGUSR2 (main.cc).
//
// Not modelled: writes that bypass fs.h (SQLite's own files, sockets), a
// torn write that keeps part of the unsynced bytes, a rename between two
// directories (pending until the target directory is synced).
//
// Thread-safe. Every hook is a no-op when off.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <shared_mutex>

namespace forkd::fs::crashfs {

// Reads FORKD_CRASHFS and FORKD_POWER_OFF; call once, before other threads.
void EnableFromEnv();
bool Enabled();

// Held around a recorded change and its system call, so that PowerOff
// never runs in the middle of one.
class Op {
 public:
  Op();
  ~Op();
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

 private:
  bool held_;
};

// Hooks, each called inside an Op, before the change they describe. A
// content change needs no word on failure (its saved bytes are the current
// ones); a directory change returns a ticket to pass to Failed() if the call
// then fails (0: nothing was recorded).
void WillWrite(int fd, uint64_t offset, uint64_t n);  // offset kAtPosition: where the fd writes
void WillTruncate(int fd, uint64_t size);
void WillTruncatePath(const char* path, uint64_t size);  // open(O_TRUNC), truncate(path)
[[nodiscard]] uint64_t WillCreate(const char* path);    // before open(O_CREAT) of `path`
[[nodiscard]] uint64_t WillRename(const char* from, const char* to);
[[nodiscard]] uint64_t WillUnlink(const char* path);
[[nodiscard]] uint64_t WillMkdir(const char* path);
void Failed(uint64_t ticket);
constexpr uint64_t kAtPosition = UINT64_MAX;
// After a successful fsync/fdatasync of `fd` (a file or a directory).
void Synced(int fd);
// Called before an fsync/fdatasync takes its Op: powers off at the chosen one.
void BeforeSync();

// Simulates the power loss now. Does not return.
[[noreturn]] void PowerOff(const char* why);

}  // namespace forkd::fs::crashfs
