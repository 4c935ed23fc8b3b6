#include "pipeline/dead_letters.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/clock.h"
#include "core/fs.h"
#include "sinks/common/json.h"

namespace forkd::pipeline {

Status DeadLetters::Init() { return fs::MakeDirs(dir_, 0700); }

std::string DeadLetters::PathFor(std::string_view destination) const {
  return dir_ + "/" + std::string(destination) + ".jsonl";
}

void DeadLetters::Format(std::string_view destination, std::string_view event_id,
                         std::string_view reason, const uint8_t* payload, std::string* out) {
  out->append("{\"_fork_id\":");
  sinks::AppendJsonString(event_id, out);
  out->append(",\"destination\":");
  sinks::AppendJsonString(destination, out);
  out->append(",\"reason\":");
  sinks::AppendJsonString(reason, out);
  out->append(",\"at\":\"");
  const int64_t now = WallMicros();
  sinks::AppendIsoTime(now / 1000000, static_cast<uint32_t>(now % 1000000) * 1000, out);
  out->append("\",\"payload\":");
  if (payload != nullptr) {
    sinks::AppendJson(payload, out);
  } else {
    out->append("null");
  }
  out->append("}\n");
}

Status DeadLetters::Append(std::string_view destination, const std::string& lines) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string path = PathFor(destination);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("open dead letters", path, errno);
  int rc = fs::WriteAll(fd, lines.data(), lines.size());
  if (rc == 0) rc = fs::Fdatasync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("write dead letters", path, err);
  return Status::Ok();
}

}  // namespace forkd::pipeline
