#include "core/instance.h"

#include <unistd.h>

#include "core/fs.h"
#include "wire/random.h"

namespace forkd {

bool ValidInstanceId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

std::string NewInstanceId() {
  char host[256] = {};
  std::string name;
  if (::gethostname(host, sizeof host - 1) == 0) {
    for (const char* p = host; *p && name.size() < 40; ++p) {
      const char c = *p;
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      name.push_back(ok ? c : '-');
    }
  }
  if (name.empty()) name = "forkd";
  static const char kHex[] = "0123456789abcdef";
  const uint64_t r = wire::RandomU64();
  std::string suffix;
  for (int i = 0; i < 8; ++i) suffix.push_back(kHex[(r >> (4 * i)) & 15]);
  return name + "-" + suffix;
}

}  // namespace

Status ResolveInstance(const std::string& data_dir, const std::string& configured,
                       std::string* id, std::string* warning) {
  warning->clear();
  const std::string path = data_dir + "/instance";
  std::string stored;
  Status s = fs::ReadFile(path, &stored);
  if (s.ok()) {
    while (!stored.empty() && (stored.back() == '\n' || stored.back() == '\r')) stored.pop_back();
    if (!ValidInstanceId(stored)) {
      return Status::InvalidArgument(path + " holds no valid instance id ('" + stored.substr(0, 80) +
                                     "'); it is written once and must not be edited");
    }
    if (!configured.empty() && configured != stored) {
      *warning = "instance: '" + configured + "' is ignored: data_dir " + data_dir +
                 " belongs to instance '" + stored +
                 "' (its aggregates would count twice under a new id); use a new data_dir to "
                 "start as '" + configured + "'";
    }
    *id = stored;
    return Status::Ok();
  }
  if (!s.IsNotFound()) return s;
  *id = configured.empty() ? NewInstanceId() : configured;
  const std::string text = *id + "\n";
  return fs::WriteFileAtomic(path, text.data(), text.size());
}

}  // namespace forkd
