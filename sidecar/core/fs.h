// File-system calls used for anything durable. Every create, write, sync,
// rename and delete of the log, the cursors, the key journal, dead letters
// and the file sink's output goes through here, which is also where tests
// inject faults (fail the Nth call of a kind, once or from then on) and
// simulate a power loss (core/crashfs.h).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace forkd::fs {

// Each returns 0, or -1 with errno set (as the system call would).
int PwriteAll(int fd, const void* data, size_t n, uint64_t offset);
int WriteAll(int fd, const void* data, size_t n);
int Fsync(int fd);
int Fdatasync(int fd);
int Truncate(int fd, uint64_t size);
int Truncate(const char* path, uint64_t size);
int Rename(const char* from, const char* to);
int Unlink(const char* path);
// open(2): returns the fd, or -1 with errno set.
int Open(const char* path, int flags, mode_t mode = 0600);

// Creates `path` and its parents with `mode` where missing, each new one
// durably (its parent directory is fsynced).
Status MakeDirs(const std::string& path, mode_t mode);
// Replaces `path` with `data` atomically: temp file, fsync, rename, fsync dir.
Status WriteFileAtomic(const std::string& path, const void* data, size_t n);
// Reads a whole (small) file.
Status ReadFile(const std::string& path, std::string* out);

// Fault injection, for tests. Kinds: "write", "fsync", "rename" (fsync covers
// fdatasync too). The nth call of that kind from now on (1 = the next) fails
// with `err`; with `sticky` every later call fails too, until ClearFaults().
// The first failure says so on stderr ("injected fault: this rename fails ...").
void InjectFault(const std::string& kind, uint64_t nth, int err, bool sticky);
void ClearFaults();
// Makes every later Fsync/Fdatasync take at least `ms` longer (0: none), to
// stand for a slow disk.
void InjectFsyncDelay(int64_t ms);
// Reads FORKD_FAULT="kind:nth[:sticky][:errno]" and FORKD_FSYNC_DELAY_MS
// once, at start-up.
void InjectFaultsFromEnv();

}  // namespace forkd::fs
