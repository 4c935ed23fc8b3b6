#include "tools/keygen_cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "ingest/curve_config.h"

namespace forkd::tools {

int Keygen(const KeygenArgs& args) {
  ingest::CurveKeyPair pair;
  std::string error;
  if (!ingest::GenerateCurveKeyPair(&pair, &error)) {
    std::cerr << "forkd keygen: " << error << "\n";
    return 1;
  }
  const std::string text = ingest::FormatCurveKeyPair(pair);
  if (args.out.empty()) {
    std::cout << text;
    return 0;
  }
  // O_EXCL: a key file in use is never replaced by accident; 0600 from the
  // start, so the secret is never readable by others, whatever the umask.
  const int fd = ::open(args.out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::cerr << "forkd keygen: cannot create " << args.out << ": " << std::strerror(errno)
              << (errno == EEXIST ? " (remove it first to replace the key pair)" : "") << "\n";
    return 1;
  }
  const std::string body =
      "# CURVE key pair made by `forkd keygen`. Keep the secret line secret; share the public "
      "one.\n" + text;
  size_t done = 0;
  while (done < body.size()) {
    const ssize_t n = ::write(fd, body.data() + done, body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == body.size() && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    std::cerr << "forkd keygen: cannot write " << args.out << ": " << std::strerror(saved) << "\n";
    ::unlink(args.out.c_str());
    return 1;
  }
  std::cout << "public: " << pair.public_key << "\n";
  return 0;
}

}  // namespace forkd::tools
