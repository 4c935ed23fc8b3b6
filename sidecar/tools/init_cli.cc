#include "tools/init_cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <iostream>

namespace forkd::tools {

namespace {

constexpr const char* kIgnoreLine = ".fork/";

// The directory part of `path` ("" for a bare file name).
std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string Cwd() {
  char buf[PATH_MAX];
  return ::getcwd(buf, sizeof buf) != nullptr ? std::string(buf) : std::string(".");
}

// The absolute form of `dir` (a directory that exists), or `dir` itself.
std::string Absolute(const std::string& dir) {
  char buf[PATH_MAX];
  if (::realpath(dir.empty() ? "." : dir.c_str(), buf) == nullptr) return dir;
  return buf;
}

bool WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Writes `text` to `path`: a new file (EEXIST when there is one), or with
// `replace` a temp file renamed over it, so a failed write leaves the old
// file whole. Returns 0 or an errno.
int WriteConfig(const std::string& path, const std::string& text, bool replace) {
  const std::string target = replace ? path + ".init.tmp" : path;
  // A temp file left by an interrupted run is overwritten; the file itself never is.
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL), 0644);
  if (fd < 0) return errno;
  const bool ok = WriteAll(fd, text) && ::fsync(fd) == 0;
  int err = ok ? 0 : (errno != 0 ? errno : EIO);
  ::close(fd);
  if (ok && replace && ::rename(target.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) ::unlink(target.c_str());
  return err;
}

// True when a line of `text` already ignores forkd's data_dir.
bool Ignores(const std::string& text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    if (line == ".fork" || line == ".fork/" || line == "/.fork" || line == "/.fork/") return true;
    start = end + 1;
  }
  return false;
}

// Adds kIgnoreLine to `path` unless a line there has it. Sets *added.
// Returns 0 or an errno.
int AddIgnore(const std::string& path, bool* added) {
  *added = false;
  std::string text;
  const int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd >= 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(rfd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    const int err = n < 0 ? errno : 0;
    ::close(rfd);
    if (err != 0) return err;
    if (Ignores(text)) return 0;
  } else if (errno != ENOENT) {
    return errno;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  std::string line;
  if (!text.empty() && text.back() != '\n') line += "\n";
  line += std::string(kIgnoreLine) + "\n";
  const bool ok = WriteAll(fd, line);
  const int err = ok ? 0 : (errno != 0 ? errno : EIO);
  ::close(fd);
  *added = ok;
  return err;
}

}  // namespace

std::string StarterConfig() {
  return R"(# fork.yaml: where forkd sends the events your app routes with routeData().
# Written by `forkd init`. Paths are relative to this file.
#   every key:                  docs/configuration.md (or `npx forkd config-reference`)
#   transforms and conditions:  docs/transforms.md
#   running it for real:        docs/deployment.md, docs/operations.md
# After each edit: `npx forkd check`. What one event would become:
#   npx forkd explain --payload '{"event":"purchase","orderId":"o-1","amount":42}'

# forkd's own files: its log, cursors, dead letters, and the socket the app
# connects to (.fork/fork.sock: fork-router's default endpoint when the app
# runs from this directory). Not for git: `forkd init` listed it in .gitignore.
data_dir: ./.fork

# Health, Prometheus metrics and a live dashboard at http://127.0.0.1:8787/
admin: 127.0.0.1:8787

destinations:
  # Current state: one row per order, replaced when the same orderId comes
  # again. In production, the same with `type: postgres` and a `url`.
  production:
    type: sqlite
    path: ./data/production.db
    table: orders
    mode: upsert
    key: orderId

  # Every event as one JSON object per line; a new file past 64MiB.
  logs:
    type: file
    format: jsonl
    path: ./data/logs/events.jsonl
    rotate: 64MiB

# Routes pick destinations when routeData() names none: with this one,
# routeData({ event: 'purchase', orderId, amount }) reaches both. A call can
# also name them: routeData(event, 'logs') or routeData(event, ['production', 'logs']).
routes:
  - { when: 'event == "purchase"', to: [production, logs] }
)";
}

bool DefaultConfigPath(std::string* path, std::string* error) {
  struct stat st;
  if (::stat(kDefaultConfig, &st) == 0) {
    *path = kDefaultConfig;
    return true;
  }
  *error = std::string("no --config given, and there is no ") + kDefaultConfig + " in " + Cwd() +
           ": create one with `npx forkd init`, or pass --config FILE";
  return false;
}

int Init(const InitArgs& args) {
  const std::string path = args.config.empty() ? kDefaultConfig : args.config;
  struct stat st;
  const bool exists = ::lstat(path.c_str(), &st) == 0;
  if (exists && !args.force) {
    std::cerr << "forkd init: " << path
              << " already exists; left as it is (`forkd init --force` replaces it)\n";
    return 1;
  }
  if (exists && S_ISDIR(st.st_mode)) {
    std::cerr << "forkd init: " << path << " is a directory\n";
    return 1;
  }
  const std::string dir = DirOf(path);
  if (int err = WriteConfig(path, StarterConfig(), exists); err != 0) {
    std::cerr << "forkd init: cannot write " << path << " (in " << Absolute(dir)
              << "): " << std::strerror(err) << "\n";
    return 1;
  }
  std::cout << (exists ? "Replaced " : "Wrote ") << path
            << ": a SQLite table for current state (data/production.db), a JSON Lines log "
               "(data/logs/events.jsonl), and a route for purchase events.\n";

  const std::string ignore = Join(dir, ".gitignore");
  bool added = false;
  if (int err = AddIgnore(ignore, &added); err != 0) {
    std::cerr << "forkd init: cannot add " << kIgnoreLine << " to " << ignore << ": "
              << std::strerror(err) << " (add it by hand: it holds forkd's log and socket)\n";
    return 1;
  }
  std::cout << (added ? "Added " : "Kept ") << kIgnoreLine << (added ? " to " : " in ") << ignore
            << (added ? "" : " (already there)") << ".\n";

  const bool here = dir.empty() || Absolute(dir) == Absolute("");
  std::cout << "\nNext:\n"
            << "  " << (path == kDefaultConfig ? "npx forkd run" : "npx forkd run --config " + path)
            << "\n      starts forkd with this file; leave it running.\n"
            << "  npm run dev\n"
            << "      in another terminal; then, in an API route:\n"
            << "      import { routeData } from 'fork-router';\n"
            << "      await routeData({ event: 'purchase', orderId: 'o-1', amount: 42 });\n";
  if (!here) {
    std::cout << "  forkd's socket will be " << Join(Absolute(dir), ".fork/fork.sock")
              << ": start the app from " << Absolute(dir) << ", or set FORK_ENDPOINT=ipc://"
              << Join(Absolute(dir), ".fork/fork.sock") << " for it.\n";
  }
  return 0;
}

}  // namespace forkd::tools
