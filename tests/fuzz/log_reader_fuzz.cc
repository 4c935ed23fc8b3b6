// A segment file's bytes read as forkd reads its log after a restart:
// recovery scans and cuts the last segment, then a tail reader hands on its
// entries. Only entries whose event passed CheckStoredEvent come out, and
// each is used the way forkd uses it: walked like the pipeline's Select and
// ingest's key recovery, shaped (the per-call options, a route's templates,
// a chain that rewrites the payload), and formatted as a dead letter, which
// must parse back to the same event.
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/crc32c.h"
#include "core/fs.h"
#include "fuzz_util.h"
#include "log/log.h"
#include "log/log_format.h"
#include "pipeline/dead_letters.h"
#include "pipeline/shaper.h"

namespace {

using namespace forkd;

std::string g_wal;  // a directory of its own, on tmpfs when there is one
std::map<std::string, transforms::Chain, std::less<>>* g_templates;
transforms::Chain* g_chain;

class CountingReporter : public log::Reporter {
 public:
  void Corruption(uint64_t, size_t, const std::string& reason) override { fork_fuzz::Use(reason); }
};

transforms::Chain ChainOf(const char* yaml) {
  transforms::Chain chain;
  std::vector<ConfigError> errors;
  transforms::ParseContext pc;
  pc.file = "fuzz.yaml";
  pc.errors = &errors;
  fork_fuzz::Require(transforms::ParseChain(YAML::Load(yaml), "transforms.t", pc, &chain),
                     "the fuzzer's own chain parses");
  return chain;
}

void Use(const log::Entry& e, pipeline::Shaper* shaper) {
  // An exact-size copy: the reader's buffer has slack that would hide a read
  // one byte too far.
  std::unique_ptr<uint8_t[]> event(new uint8_t[e.event_size]);
  std::memcpy(event.get(), e.event, e.event_size);
  const uint8_t* p = event.get();
  fork_fuzz::WalkStoredEvent(p, e.event_size);

  wire::Reader rd(p, e.event_size);
  rd.Next();
  const wire::Value d = rd.Next();
  const uint8_t* route_t = nullptr;
  uint32_t route_t_count = 0;
  for (uint32_t i = 0; d.kind == wire::Kind::kArray && i < d.len; ++i) {
    const uint8_t* at = rd.pos();
    const wire::Value s = rd.Next();
    if (s.kind == wire::Kind::kArray) {
      route_t = at;
      route_t_count = s.len - 1;
      for (uint32_t k = 0; k < s.len; ++k) rd.Skip();
    }
  }
  const wire::Value key = rd.Next();
  const uint8_t* options = rd.pos();
  rd.Skip();
  const uint8_t* payload = rd.pos();
  const size_t payload_size = e.event_size - static_cast<size_t>(payload - p);

  pipeline::Shaper::EventParts parts;
  parts.options = options;
  parts.route_t = route_t;
  parts.route_t_count = route_t_count;
  parts.bound = e.event_size;
  parts.payload = payload;
  parts.payload_size = payload_size;
  parts.recv_us = e.header.recv_us;
  parts.event_id = key.str();
  std::string reason;
  const uint8_t* out;
  size_t out_size;
  if (shaper->Shape(parts, &reason, &out, &out_size) == pipeline::Shaper::Result::kWrite) {
    fork_fuzz::WalkValue(out, out_size);
  }

  pipeline::Letter l;
  l.event_id = key.kind == wire::Kind::kStr ? key.str() : "fuzz-1";
  l.reason = "fuzz";
  l.lsn = e.header.lsn;
  l.options = options;
  l.options_size = static_cast<size_t>(payload - options);
  l.payload = payload;
  l.payload_size = payload_size;
  std::string line;
  pipeline::DeadLetters::Format("d", l, &line);
  line.pop_back();
  pipeline::ParsedLetter back;
  std::string error;
  fork_fuzz::Require(pipeline::ParseLetter(line, &back, &error),
                     "a dead letter forkd wrote parses back");
  fork_fuzz::Require(back.raw == "\x92" + std::string(reinterpret_cast<const char*>(options),
                                                      l.options_size + payload_size),
                     "a dead letter keeps the stored options and payload exactly");
}

// Walks the records as the reader frames them (log_format.h) and stores the
// masked CRC32C of each one's type and data in its header.
void FixChecksums(std::string* bytes) {
  size_t pos = 0;
  while (pos + log::kHeaderSize <= bytes->size()) {
    const size_t in_block = pos % log::kBlockSize;
    if (log::kBlockSize - in_block < log::kHeaderSize) {
      pos += log::kBlockSize - in_block;
      continue;
    }
    auto* h = reinterpret_cast<uint8_t*>(bytes->data() + pos);
    const size_t len = static_cast<size_t>(h[4]) | (static_cast<size_t>(h[5]) << 8);
    if (log::kHeaderSize + len > log::kBlockSize - in_block ||
        pos + log::kHeaderSize + len > bytes->size()) {
      return;
    }
    const uint8_t type = h[6];
    const uint32_t crc =
        crc32c::Mask(crc32c::Extend(crc32c::Value(&type, 1), h + log::kHeaderSize, len));
    std::memcpy(h, &crc, 4);
    pos += log::kHeaderSize + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string tmpl = std::string(base) + "/fork_log_fuzz.XXXXXX";
  fork_fuzz::Require(mkdtemp(tmpl.data()) != nullptr, "a temporary directory");
  fork_fuzz::RemoveAtExit(tmpl);
  g_wal = tmpl + "/wal";
  g_templates = new std::map<std::string, transforms::Chain, std::less<>>();
  (*g_templates)["clean"] = ChainOf("[{redact: [card]}, {set: {source: web}}]");
  g_chain = new transforms::Chain(ChainOf("[{rename: {amount: total}}, {cast: {total: float}}]"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the mode: odd, the harness rewrites every record's
  // checksum to match its bytes first, so mutations inside records reach the
  // entry and event checks instead of all failing the CRC; even, the bytes
  // go to the file as they are.
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) FixChecksums(&bytes);
  Status s = fs::MakeDirs(g_wal, 0700);
  fork_fuzz::Require(s.ok(), "the log directory");
  const std::string segment = g_wal + "/00000000000000000001.log";
  const int fd = ::open(segment.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  fork_fuzz::Require(fd >= 0 && fs::WriteAll(fd, bytes.data(), bytes.size()) == 0,
                     "the segment is written");
  ::close(fd);

  log::LogOptions o;
  o.dir = g_wal;
  o.fsync = log::FsyncPolicy::kNever;
  std::unique_ptr<log::Log> log;
  log::RecoveryInfo info;
  s = log::Log::Open(o, &log, &info);
  fork_fuzz::Require(s.ok(), "a segment of any bytes opens");
  CountingReporter reporter;
  std::unique_ptr<log::TailReader> reader;
  s = log->NewReader(log::Position{}, &reporter, &reader);
  fork_fuzz::Require(s.ok(), "a reader opens");
  pipeline::Shaper shaper(*g_chain, *g_templates);
  log::Entry e;
  Status io;
  while (reader->Next(&e, &io) == log::TailReader::Result::kEntry) Use(e, &shaper);
  fork_fuzz::Require(io.ok(), "reading a segment file fails only on I/O");
  return 0;
}
