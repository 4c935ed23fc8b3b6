#include "core/status.h"

#include <cstring>

namespace forkd {

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  std::string m = what + " failed: ";
  if (!path.empty()) m += path + ": ";
  m += std::strerror(err);
  return Status::IoError(std::move(m));
}

}  // namespace forkd
