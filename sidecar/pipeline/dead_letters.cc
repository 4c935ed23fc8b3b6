#include "pipeline/dead_letters.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <cerrno>

#include "core/clock.h"
#include "core/fs.h"
#include "pipeline/router.h"
#include "sinks/common/json.h"
#include "wire/codec.h"
#include "wire/msgpack.h"

namespace forkd::pipeline {

namespace {

void AppendNow(std::string* out) {
  out->append(",\"at\":\"");
  const int64_t now = WallMicros();
  sinks::AppendIsoTime(now / 1000000, static_cast<uint32_t>(now % 1000000) * 1000, out);
  out->push_back('"');
}

// Opens `path` for appending and locks it, reopening when a rewrite renamed
// another file over it while we waited for the lock.
int OpenLocked(const std::string& path, Status* s) {
  for (int tries = 0; tries < 100; ++tries) {
    const int fd = fs::Open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      *s = ErrnoStatus("open dead letters", path, errno);
      return -1;
    }
    if (::flock(fd, LOCK_EX) != 0) {
      *s = ErrnoStatus("lock dead letters", path, errno);
      ::close(fd);
      return -1;
    }
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev) {
      return fd;
    }
    ::close(fd);  // replaced while we waited: open the new one
  }
  *s = Status::IoError("dead letters " + path + " keeps being replaced");
  return -1;
}

}  // namespace

Status DeadLetters::Init() { return fs::MakeDirs(dir_, 0700); }

std::string DeadLetters::PathFor(std::string_view destination) const {
  return dir_ + "/" + std::string(destination) + ".jsonl";
}

void DeadLetters::Format(std::string_view destination, const Letter& l, std::string* out) {
  out->append("{\"_fork_id\":");
  sinks::AppendJsonString(l.event_id, out);
  out->append(",\"destination\":");
  sinks::AppendJsonString(destination, out);
  out->append(",\"reason\":");
  sinks::AppendJsonString(l.reason, out);
  out->append(",\"attempts\":").append(std::to_string(l.attempts));
  if (l.attempts > 0) {
    out->append(",\"first_error\":");
    sinks::AppendJsonString(l.first_error, out);
    out->append(",\"last_error\":");
    sinks::AppendJsonString(l.last_error, out);
  }
  if (l.lsn > 0) out->append(",\"lsn\":").append(std::to_string(l.lsn));
  AppendNow(out);
  out->append(",\"payload\":");
  if (l.payload != nullptr) {
    sinks::AppendJson(l.payload, out);
  } else {
    out->append("null");
  }
  if (l.options != nullptr && l.payload != nullptr) {
    // [options, payload] as msgpack: a fixarray of two, then both as stored.
    std::string raw;
    raw.reserve(1 + l.options_size + l.payload_size);
    raw.push_back(static_cast<char>(0x92));
    raw.append(reinterpret_cast<const char*>(l.options), l.options_size);
    raw.append(reinterpret_cast<const char*>(l.payload), l.payload_size);
    out->append(",\"raw\":\"")
        .append(Base64(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()))
        .push_back('"');
  }
  out->append("}\n");
}

void DeadLetters::FormatShed(std::string_view destination, std::string_view reason,
                             uint64_t from_lsn, uint64_t to_lsn, uint64_t events,
                             std::string* out) {
  out->append("{\"_fork_id\":null,\"destination\":");
  sinks::AppendJsonString(destination, out);
  out->append(",\"reason\":");
  sinks::AppendJsonString(reason, out);
  out->append(",\"shed\":{\"from_lsn\":")
      .append(std::to_string(from_lsn))
      .append(",\"to_lsn\":")
      .append(std::to_string(to_lsn))
      .append(",\"events\":")
      .append(std::to_string(events))
      .append("}");
  AppendNow(out);
  out->append("}\n");
}

Status DeadLetters::Append(std::string_view destination, const std::string& lines) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string path = PathFor(destination);
  Status s;
  const int fd = OpenLocked(path, &s);
  if (fd < 0) return s;
  int rc = fs::WriteAll(fd, lines.data(), lines.size());
  if (rc == 0) rc = fs::Fdatasync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("write dead letters", path, err);
  return Status::Ok();
}

Status DeadLetters::Read(std::string_view destination, std::vector<std::string>* lines,
                         std::vector<size_t>* numbers) const {
  lines->clear();
  if (numbers != nullptr) numbers->clear();
  std::string text;
  const std::string path = PathFor(destination);
  Status s = fs::ReadFile(path, &text);
  if (s.IsNotFound()) return Status::Ok();
  if (!s.ok()) return s;
  size_t at = 0;
  size_t number = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    ++number;
    if (nl > at) {
      lines->emplace_back(text, at, nl - at);
      if (numbers != nullptr) numbers->push_back(number);
    }
    at = nl + 1;
  }
  return Status::Ok();
}

Status DeadLetters::Rewrite(std::string_view destination,
                            const std::function<bool(const std::string&)>& keep,
                            size_t* removed) {
  std::lock_guard<std::mutex> lock(mu_);
  *removed = 0;
  const std::string path = PathFor(destination);
  Status s;
  const int fd = OpenLocked(path, &s);  // held until the new file is in place
  if (fd < 0) return s;
  std::vector<std::string> lines;
  s = Read(destination, &lines);
  std::string out;
  for (const auto& l : lines) {
    if (keep(l)) {
      out.append(l).push_back('\n');
    } else {
      ++*removed;
    }
  }
  if (s.ok() && *removed > 0) s = fs::WriteFileAtomic(path, out.data(), out.size());
  ::close(fd);
  return s;
}

bool ParseLetter(const std::string& line, ParsedLetter* out, std::string* error) {
  *out = ParsedLetter{};
  YAML::Node n;
  try {
    n = YAML::Load(line);  // JSON is YAML
  } catch (const YAML::Exception& e) {
    *error = "not JSON: " + e.msg;
    return false;
  }
  if (!n.IsMap() || !n["destination"] || !n["reason"]) {
    *error = "not a dead letter (no destination or reason)";
    return false;
  }
  try {
    if (n["_fork_id"] && n["_fork_id"].IsScalar()) out->id = n["_fork_id"].Scalar();
    out->reason = n["reason"].Scalar();
    if (n["at"]) out->at = n["at"].Scalar();
    if (n["attempts"]) out->attempts = n["attempts"].as<int64_t>();
    if (n["shed"] && n["shed"].IsMap()) {
      out->shed = true;
      out->shed_events = n["shed"]["events"].as<uint64_t>();
      if (n["shed"]["from_lsn"]) out->shed_from_lsn = n["shed"]["from_lsn"].as<uint64_t>();
      if (n["shed"]["to_lsn"]) out->shed_to_lsn = n["shed"]["to_lsn"].as<uint64_t>();
    }
    if (n["raw"] && !FromBase64(n["raw"].Scalar(), &out->raw)) {
      *error = "raw is not base64";
      return false;
    }
  } catch (const YAML::Exception& e) {
    *error = "bad field: " + e.msg;
    return false;
  }
  if (!out->raw.empty() && (static_cast<uint8_t>(out->raw[0]) != 0x92)) {
    *error = "raw is not [options, payload]";
    return false;
  }
  return true;
}

bool ReplayEvent(const Config& config, std::string_view destination, const ParsedLetter& l,
                 std::string* event, std::string* error) {
  const DestinationConfig* dest = config.Find(destination);
  if (dest == nullptr) {
    *error = "destination '" + std::string(destination) + "' is not configured";
    return false;
  }
  if (l.raw.empty() || static_cast<uint8_t>(l.raw[0]) != 0x92) {
    *error = "raw is not [options, payload]";
    return false;
  }
  wire::Buffer b;
  wire::Writer w(&b);
  w.ArrayHeader(4);
  w.ArrayHeader(1);
  w.Str(destination);
  w.Str(l.id);
  w.Raw(reinterpret_cast<const uint8_t*>(l.raw.data()) + 1, l.raw.size() - 1);
  // What ingest checks of a client's event, in the same order and words.
  if (b.size() > static_cast<uint64_t>(config.max_event)) {
    *error = "event of " + std::to_string(b.size()) + " bytes exceeds limits.max_event (" +
             std::to_string(config.max_event) + " bytes)";
    return false;
  }
  wire::EventView ev;
  if (!wire::CheckEvent(b.data(), b.size(), config.limits, &ev, error)) return false;
  const std::vector<uint32_t> targets{static_cast<uint32_t>(dest - config.destinations.data())};
  if (CheckCallOptions(config, ev.options, ev.options_size, targets, error) != nullptr) {
    return false;
  }
  event->assign(reinterpret_cast<const char*>(b.data()), b.size());
  return true;
}

std::string Base64(const uint8_t* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool FromBase64(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  out->assign(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (!text.empty() && text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out->resize(len);
  return true;
}

}  // namespace forkd::pipeline
