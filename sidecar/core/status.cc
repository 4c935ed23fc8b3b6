#include "core/status.h"

#include <cstring>

namespace forkd {

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  std::string m = what + " failed: ";
  if (!path.empty()) m += path + ": ";
  // strerror capitalises ("No space left on device"); mid-sentence, as the
  // messages are documented, it reads in lower case. Acronyms ("RPC ...") stay.
  std::string e = std::strerror(err);
  if (e.size() > 1 && e[0] >= 'A' && e[0] <= 'Z' && !(e[1] >= 'A' && e[1] <= 'Z')) {
    e[0] = static_cast<char>(e[0] - 'A' + 'a');
  }
  m += e;
  return Status::IoError(std::move(m));
}

}  // namespace forkd
