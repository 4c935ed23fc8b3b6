#include "server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/clock.h"
#include "core/fs.h"
#include "sinks/registry.h"

namespace forkd {

Server::~Server() {
  ingest_.reset();
  pipelines_.clear();
  log_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status Server::Start() {
  Status s = fs::MakeDirs(config_.data_dir, 0700);
  if (!s.ok()) return s;
  // Only the owner may enter: the socket lives here.
  if (::chmod(config_.data_dir.c_str(), 0700) != 0) {
    return ErrnoStatus("restrict data_dir", config_.data_dir, errno);
  }
  const std::string lock_path = config_.data_dir + "/LOCK";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return ErrnoStatus("open lock file", lock_path, errno);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::IoError("another forkd is running with data_dir " + config_.data_dir);
  }

  log::LogOptions lo;
  lo.dir = config_.data_dir + "/wal";
  lo.fsync = config_.fsync;
  lo.segment_bytes = static_cast<uint64_t>(config_.segment_bytes);
  log::RecoveryInfo info;
  const int64_t t0 = MonoMicros();
  s = log::Log::Open(lo, &log_, &info);
  if (!s.ok()) return s;
  spdlog::info("log recovered in {} ms: {} segments, {} bytes, next lsn {}",
               (MonoMicros() - t0) / 1000, info.segments, info.bytes, info.next_lsn);
  if (info.torn_tail_bytes > 0) {
    spdlog::warn("log: cut a torn tail of {} bytes (a write interrupted by a crash)",
                 info.torn_tail_bytes);
  }
  for (const auto& d : info.damage) spdlog::error("log damage: {}", d);

  cursors_ = std::make_unique<log::CursorStore>(config_.data_dir + "/cursors");
  s = cursors_->Init();
  if (!s.ok()) return s;
  dead_letters_ = std::make_unique<pipeline::DeadLetters>(config_.data_dir + "/dead_letters");
  s = dead_letters_->Init();
  if (!s.ok()) return s;

  for (const auto& d : config_.destinations) {
    const sinks::SinkType* type = sinks::FindSinkType(d.type);
    sinks::SinkContext ctx{&config_, &d};
    auto p = std::make_unique<pipeline::Pipeline>(d, type->create(ctx), log_.get(),
                                                  cursors_.get(), dead_letters_.get());
    s = p->Start();
    if (!s.ok()) return Status::IoError("destination " + d.name + ": " + s.message());
    pipelines_.push_back(std::move(p));
  }

  ingest_ = std::make_unique<ingest::Ingest>(
      config_, log_.get(), [this](size_t i) { return pipelines_[i]->delivered_next_lsn(); });
  s = ingest_->Bind();
  if (!s.ok()) return s;
  started_.store(true);
  return Status::Ok();
}

void Server::Serve() {
  ingest_->Run();
  spdlog::info("ingest stopped; draining {} destinations", pipelines_.size());
  for (auto& p : pipelines_) p->Stop(/*drain=*/true, /*drain_timeout_ms=*/30000);
  ingest_->Finish();
  Tick();
  const auto& st = ingest_->stats();
  spdlog::info("stopped: {} events accepted, {} duplicates dropped, {} rejected",
               st.events.load(), st.duplicates.load(), st.nacked.load());
  for (auto& p : pipelines_) {
    spdlog::info("destination {}: {} delivered, {} dead-lettered, lsn {} committed", p->name(),
                 p->stats().delivered.load(), p->stats().dead_lettered.load(),
                 p->committed_next_lsn());
  }
}

void Server::RequestStop() {
  if (ingest_) ingest_->Stop();
}

void Server::Tick() {
  if (!started_.load() || pipelines_.empty()) return;
  uint64_t min_lsn = UINT64_MAX;
  for (auto& p : pipelines_) min_lsn = std::min(min_lsn, p->committed_next_lsn());
  const size_t n = log_->DeleteSegmentsBefore(min_lsn);
  if (n > 0) spdlog::debug("deleted {} log segments below lsn {}", n, min_lsn);
}

}  // namespace forkd
