// The simulated power loss: a child process makes changes through fs.h with
// crashfs on and pulls the plug; the files it leaves are what a disk would
// hold if nothing unsynced had survived.
#include "core/crashfs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>

#include "core/fs.h"
#include "test_util.h"

namespace forkd::fs {
namespace {

using test::FileExists;
using test::ReadFileOrDie;
using test::TempDir;
using test::WriteFileOrDie;

int SyncDir(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int rc = Fsync(dfd);
  ::close(dfd);
  return rc;
}

// Runs `changes` in a child with crashfs on, then powers off; returns the
// child's stderr's last line.
void PowerLossAfter(const TempDir& dir, const std::function<void()>& changes) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("FORKD_CRASHFS", dir.Join("stash").c_str(), 1);
    crashfs::EnableFromEnv();
    changes();
    crashfs::PowerOff("test");
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
}

TEST_CASE("power off keeps synced content and drops what was not", "[crashfs]") {
  TempDir dir;
  const std::string a = dir.Join("a"), seg = dir.Join("seg"), cut = dir.Join("cut");
  WriteFileOrDie(a, "hello");
  WriteFileOrDie(cut, "0123456789");
  PowerLossAfter(dir, [&] {
    // Appended, never synced.
    int fd = Open(a.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (WriteAll(fd, " world", 6) != 0) std::abort();
    // A new segment: its entry and first write synced, the second not.
    int s = Open(seg.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (SyncDir(dir.path()) != 0) std::abort();
    if (PwriteAll(s, "abc", 3, 0) != 0 || Fdatasync(s) != 0) std::abort();
    if (PwriteAll(s, "def", 3, 3) != 0) std::abort();
    // Cut short and overwritten, never synced.
    int c = Open(cut.c_str(), O_WRONLY | O_CLOEXEC);
    if (Truncate(c, 4) != 0 || PwriteAll(c, "XYZXYZXYZ", 9, 2) != 0) std::abort();
  });
  CHECK(ReadFileOrDie(a) == "hello");
  CHECK(ReadFileOrDie(seg) == "abc");
  CHECK(ReadFileOrDie(cut) == "0123456789");
}

TEST_CASE("power off undoes directory changes not made durable", "[crashfs]") {
  TempDir dir;
  const std::string kept = dir.Join("kept"), gone = dir.Join("gone"), doomed = dir.Join("doomed");
  const std::string cursor = dir.Join("x.cursor"), sub = dir.Join("sub/deeper");
  WriteFileOrDie(cursor, "v1");
  WriteFileOrDie(doomed, "still here");
  PowerLossAfter(dir, [&] {
    // Atomic replacement, all durable; and MakeDirs makes each new
    // directory durable. (Both sync `dir`, so they come first.)
    if (!WriteFileAtomic(kept, "durable", 7).ok()) std::abort();
    if (!MakeDirs(sub, 0700).ok()) std::abort();
    // Written and fdatasynced, but its name never was.
    int fd = Open(gone.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (WriteAll(fd, "lost", 4) != 0 || Fdatasync(fd) != 0) std::abort();
    // A new version renamed over the old without syncing the directory.
    const std::string tmp = cursor + ".tmp";
    int t = Open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (WriteAll(t, "v2", 2) != 0 || Fdatasync(t) != 0) std::abort();
    if (Rename(tmp.c_str(), cursor.c_str()) != 0) std::abort();
    // Deleted without syncing the directory.
    if (Unlink(doomed.c_str()) != 0) std::abort();
  });
  CHECK(ReadFileOrDie(kept) == "durable");
  CHECK_FALSE(FileExists(gone));
  CHECK(ReadFileOrDie(cursor) == "v1");
  CHECK_FALSE(FileExists(cursor + ".tmp"));
  CHECK(ReadFileOrDie(doomed) == "still here");
  CHECK(FileExists(sub));
}

TEST_CASE("FORKD_POWER_OFF=syncs:N powers off instead of the Nth sync", "[crashfs]") {
  TempDir dir;
  const std::string f = dir.Join("f");
  WriteFileOrDie(f, "");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("FORKD_CRASHFS", dir.Join("stash").c_str(), 1);
    ::setenv("FORKD_POWER_OFF", "syncs:3", 1);
    crashfs::EnableFromEnv();
    int fd = Open(f.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    for (const char* s : {"1", "2", "3", "4"}) {
      (void)WriteAll(fd, s, 1);
      (void)Fdatasync(fd);
    }
    ::_exit(0);  // not reached: the third sync powers off
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(ReadFileOrDie(f) == "12");
}

}  // namespace
}  // namespace forkd::fs
