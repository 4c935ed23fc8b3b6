#include "log/log.h"

#include <pthread.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "core/clock.h"
#include "core/fs.h"
#include "wire/codec.h"

namespace forkd::log {
namespace {

// Collects what recovery finds while scanning the last segment.
class RecoveryReporter : public Reporter {
 public:
  void Corruption(uint64_t offset, size_t bytes, const std::string& reason) override {
    regions.push_back({offset, bytes, reason});
  }
  struct Region {
    uint64_t offset;
    size_t bytes;
    std::string reason;
  };
  std::vector<Region> regions;
};

int64_t MtimeMicros(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000 + st.st_mtim.tv_nsec / 1000;
}

}  // namespace

Log::Log(const LogOptions& options) : options_(options) {}

Log::~Log() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  durable_cv_.notify_all();
  if (sync_thread_.joinable()) sync_thread_.join();
  if (active_fd_ >= 0) ::close(active_fd_);
  if (dir_fd_ >= 0) ::close(dir_fd_);
  if (completion_fd_ >= 0) ::close(completion_fd_);
}

std::string Log::SegmentPath(uint64_t first_lsn) const {
  char name[kSegmentNameDigits + 8];
  std::snprintf(name, sizeof(name), "%020" PRIu64 ".log", first_lsn);
  return options_.dir + "/" + name;
}

Status Log::Open(const LogOptions& options, std::unique_ptr<Log>* out, RecoveryInfo* info) {
  std::unique_ptr<Log> log(new Log(options));
  Status s = fs::MakeDirs(options.dir, 0700);
  if (!s.ok()) return s;
  log->dir_fd_ = ::open(options.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (log->dir_fd_ < 0) return ErrnoStatus("open log directory", options.dir, errno);
  log->completion_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (log->completion_fd_ < 0) return ErrnoStatus("eventfd", "", errno);
  s = log->Recover(info);
  if (!s.ok()) return s;
  log->sync_thread_ = std::thread([l = log.get()] {
    pthread_setname_np(pthread_self(), "fork/log-sync");
    l->SyncLoop();
  });
  *out = std::move(log);
  return Status::Ok();
}

Status Log::Recover(RecoveryInfo* info) {
  DIR* d = ::opendir(options_.dir.c_str());
  if (d == nullptr) return ErrnoStatus("list log directory", options_.dir, errno);
  std::vector<uint64_t> firsts;
  while (dirent* e = ::readdir(d)) {
    uint64_t first;
    if (ParseSegmentName(e->d_name, &first)) firsts.push_back(first);
  }
  ::closedir(d);
  std::sort(firsts.begin(), firsts.end());

  if (firsts.empty()) {
    // A new log: one empty segment whose name fixes the first lsn.
    const std::string path = SegmentPath(1);
    int fd = fs::Open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoStatus("create log segment", path, errno);
    if (fs::Fsync(dir_fd_) != 0) {
      ::close(fd);
      return ErrnoStatus("sync log directory", options_.dir, errno);
    }
    segments_.push_back({1, 0, false, WallMicros()});
    active_fd_ = fd;
    active_segment_ = 1;
    next_lsn_ = 1;
  } else {
    for (size_t i = 0; i + 1 < firsts.size(); ++i) {
      struct stat st;
      const std::string path = SegmentPath(firsts[i]);
      if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat log segment", path, errno);
      segments_.push_back({firsts[i], static_cast<uint64_t>(st.st_size), true, MtimeMicros(st)});
      info->bytes += static_cast<uint64_t>(st.st_size);
    }
    // The last segment may end in a torn write: scan it to its last whole entry.
    const uint64_t last = firsts.back();
    const std::string path = SegmentPath(last);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open log segment", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return ErrnoStatus("stat log segment", path, errno);
    }
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    RecoveryReporter reporter;
    LogReader reader(fd, 0, &reporter);
    uint64_t end = 0;
    uint64_t last_lsn = last - 1;
    Status io;
    std::string_view rec;
    while (reader.ReadRecord(file_size, &rec, &io) == LogReader::Result::kRecord) {
      if (rec.size() < kEntryHeaderSize) {
        reporter.Corruption(reader.last_record_offset(), rec.size(), "entry shorter than header");
        continue;
      }
      EntryHeader h;
      h.DecodeFrom(reinterpret_cast<const uint8_t*>(rec.data()));
      last_lsn = std::max(last_lsn, h.lsn);
      end = reader.position();
    }
    if (!io.ok()) {
      ::close(fd);
      return io;
    }
    for (const auto& r : reporter.regions) {
      if (r.offset < end) {
        info->corrupt_bytes += r.bytes;
        info->damage.push_back(path + " at byte " + std::to_string(r.offset) + ": " + r.reason +
                               " (" + std::to_string(r.bytes) + " bytes skipped)");
      }
    }
    if (end < file_size) {
      info->torn_tail_bytes = file_size - end;
      if (fs::Truncate(fd, end) != 0 || fs::Fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        return ErrnoStatus("truncate torn log tail", path, err);
      }
    }
    segments_.push_back({last, end, false, MtimeMicros(st)});
    info->bytes += end;
    active_fd_ = fd;
    active_segment_ = last;
    next_lsn_ = last_lsn + 1;
  }

  const Segment& active = segments_.back();
  opened_segment_ = active.first_lsn;
  opened_offset_ = active.size;
  writer_.Reset(active.size);
  pending_segment_ = durable_segment_ = active.first_lsn;
  pending_offset_ = durable_offset_ = active.size;
  pending_first_lsn_ = next_lsn_;
  durable_next_lsn_.store(next_lsn_, std::memory_order_release);
  info->segments = segments_.size();
  info->next_lsn = next_lsn_;
  return Status::Ok();
}

uint64_t Log::Append(int64_t recv_us, const uint8_t* client_id, uint64_t seq,
                     const uint8_t* event, size_t size) {
  EntryHeader h;
  h.lsn = next_lsn_;
  h.recv_us = recv_us;
  std::memcpy(h.client_id, client_id, wire::kClientIdSize);
  h.seq = seq;
  h.EncodeTo(entry_header_);
  writer_.AddRecord(entry_header_, kEntryHeaderSize, event, size, &pending_);
  return next_lsn_++;
}

bool Log::StartCommit(uint64_t* generation) {
  if (in_flight_ || pending_.empty()) return false;
  std::unique_ptr<Batch> b;
  {
    std::lock_guard<std::mutex> lock(mu_);
    b = std::move(spare_);
  }
  if (!b) b = std::make_unique<Batch>();
  b->generation = ++generation_;
  b->segment = pending_segment_;
  b->offset = pending_offset_;
  b->first_lsn = pending_first_lsn_;
  b->last_lsn = next_lsn_ - 1;
  b->bytes.clear();
  std::swap(b->bytes, pending_);
  *generation = b->generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    to_sync_ = std::move(b);
  }
  work_cv_.notify_one();
  in_flight_ = true;
  pending_first_lsn_ = next_lsn_;
  if (writer_.offset() >= options_.segment_bytes) {
    // Roll: the next batch starts a new segment named by its first lsn.
    pending_segment_ = next_lsn_;
    pending_offset_ = 0;
    writer_.Reset(0);
  } else {
    pending_offset_ = writer_.offset();
  }
  return true;
}

bool Log::TakeCompletion(CommitResult* out, CommitResult* pending_failed) {
  uint64_t ignored;
  [[maybe_unused]] ssize_t r = ::read(completion_fd_, &ignored, sizeof(ignored));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completions_.empty()) return false;
    *out = std::move(completions_.front());
    completions_.pop_front();
  }
  in_flight_ = false;
  *pending_failed = CommitResult{};
  if (out->status.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    durable_segment_ = segments_.back().first_lsn;
    durable_offset_ = segments_.back().size;
    return true;
  }
  // The pending batch was framed to follow the failed one; it cannot be
  // written either. Fail it and start again from the durable end.
  if (!pending_.empty()) {
    pending_failed->first_lsn = pending_first_lsn_;
    pending_failed->last_lsn = next_lsn_ - 1;
    pending_failed->status = out->status;
  }
  pending_.clear();
  next_lsn_ = out->first_lsn;
  pending_first_lsn_ = next_lsn_;
  pending_segment_ = durable_segment_;
  pending_offset_ = durable_offset_;
  writer_.Reset(durable_offset_);
  return true;
}

void Log::SyncLoop() {
  while (true) {
    std::unique_ptr<Batch> b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || to_sync_ != nullptr; });
      if (to_sync_ == nullptr) return;  // stopping, nothing left to write
      b = std::move(to_sync_);
    }
    const int64_t t0 = MonoMicros();
    const bool new_segment = b->segment != active_segment_;
    Status s = WriteBatch(*b);
    stats_.sync_us_total.fetch_add(static_cast<uint64_t>(MonoMicros() - t0),
                                   std::memory_order_relaxed);
    CommitResult result{b->generation, b->first_lsn, b->last_lsn, s};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (s.ok()) {
        if (new_segment) {
          segments_.back().sealed = true;
          segments_.push_back({b->segment, 0, false, 0});
        }
        segments_.back().size = b->offset + b->bytes.size();
        segments_.back().written_us = WallMicros();
        durable_next_lsn_.store(b->last_lsn + 1, std::memory_order_release);
        stats_.commits.fetch_add(1, std::memory_order_relaxed);
        stats_.entries.fetch_add(b->last_lsn - b->first_lsn + 1, std::memory_order_relaxed);
        stats_.bytes.fetch_add(b->bytes.size(), std::memory_order_relaxed);
      } else {
        stats_.errors.fetch_add(1, std::memory_order_relaxed);
      }
      completions_.push_back(std::move(result));
      b->bytes.clear();
      spare_ = std::move(b);
    }
    durable_cv_.notify_all();
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(completion_fd_, &one, sizeof(one));
  }
}

Status Log::WriteBatch(Batch& b) {
  int prev_fd = -1;
  uint64_t prev_segment = 0;
  std::string path = SegmentPath(b.segment);
  if (b.segment != active_segment_) {
    int fd = fs::Open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoStatus("create log segment", path, errno);
    if (fs::Fsync(dir_fd_) != 0) {
      int err = errno;
      ::close(fd);
      fs::Unlink(path.c_str());
      return ErrnoStatus("sync log directory", options_.dir, err);
    }
    prev_fd = active_fd_;
    prev_segment = active_segment_;
    active_fd_ = fd;
    active_segment_ = b.segment;
  }
  auto fail = [&](const char* what, int err) {
    Status s = ErrnoStatus(what, path, err);
    if (prev_fd >= 0) {
      // The new segment holds nothing durable: remove it, go back to the old.
      ::close(active_fd_);
      fs::Unlink(path.c_str());
      active_fd_ = prev_fd;
      active_segment_ = prev_segment;
    } else if (fs::Truncate(active_fd_, b.offset) != 0) {
      // Leaves garbage past the durable end; recovery truncates it.
    }
    return s;
  };
  if (fs::PwriteAll(active_fd_, b.bytes.data(), b.bytes.size(), b.offset) != 0) {
    return fail("log write", errno);
  }
  if (options_.fsync == FsyncPolicy::kBatch && fs::Fdatasync(active_fd_) != 0) {
    return fail("log sync", errno);
  }
  if (prev_fd >= 0) ::close(prev_fd);
  return Status::Ok();
}

void Log::WaitDurable(uint64_t lsn, int64_t timeout_us) {
  if (durable_next_lsn() > lsn) return;
  std::unique_lock<std::mutex> lock(mu_);
  durable_cv_.wait_for(lock, std::chrono::microseconds(timeout_us),
                       [&] { return stop_ || durable_next_lsn() > lsn; });
}

void Log::WakeAll() {
  std::lock_guard<std::mutex> lock(mu_);
  durable_cv_.notify_all();
}

bool Log::SegmentInfo(uint64_t segment, uint64_t* limit, bool* sealed, uint64_t* next) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i].first_lsn == segment) {
      *limit = segments_[i].size;
      *sealed = segments_[i].sealed;
      *next = i + 1 < segments_.size() ? segments_[i + 1].first_lsn : 0;
      return true;
    }
  }
  return false;
}

uint64_t Log::SegmentFor(uint64_t lsn) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t found = segments_.front().first_lsn;
  for (const Segment& s : segments_) {
    if (s.first_lsn <= lsn) found = s.first_lsn;
  }
  return found;
}

uint64_t Log::total_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const Segment& s : segments_) n += s.size;
  return n;
}

uint64_t Log::BytesFrom(const Position& from) const {
  std::lock_guard<std::mutex> lock(mu_);
  // Without a valid hint the whole segment holding the lsn counts.
  uint64_t segment = segments_.front().first_lsn;
  for (const Segment& s : segments_) {
    if (s.first_lsn <= from.next_lsn) segment = s.first_lsn;
  }
  const uint64_t offset = from.segment == segment ? from.offset : 0;
  uint64_t n = 0;
  for (const Segment& s : segments_) {
    if (s.first_lsn > segment) n += s.size;
    if (s.first_lsn == segment) n += s.size - std::min(s.size, offset);
  }
  return n;
}

uint64_t Log::first_lsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segments_.front().first_lsn;
}

size_t Log::segment_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segments_.size();
}

uint64_t Log::RecentStart(uint64_t min_bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t bytes = 0;
  for (size_t i = segments_.size(); i-- > 0;) {
    bytes += segments_[i].size;
    if (bytes >= min_bytes || i == 0) return segments_[i].first_lsn;
  }
  return segments_.front().first_lsn;
}

size_t Log::DeleteSegmentsBefore(uint64_t min_next_lsn) {
  return DeleteSegments(min_next_lsn, WallMicros(), RetentionPolicy{0, 0});
}

size_t Log::DeleteSegments(uint64_t min_next_lsn, int64_t now_us, const RetentionPolicy& policy) {
  std::vector<uint64_t> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<SegmentSpan> spans;
    spans.reserve(segments_.size());
    for (const Segment& s : segments_) spans.push_back({s.first_lsn, s.size, s.sealed, s.written_us});
    const size_t n = SegmentsToDelete(spans, min_next_lsn, now_us, policy);
    for (size_t i = 0; i < n; ++i) doomed.push_back(segments_[i].first_lsn);
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  for (uint64_t first : doomed) fs::Unlink(SegmentPath(first).c_str());
  if (!doomed.empty()) (void)fs::Fsync(dir_fd_);
  return doomed.size();
}

Status Log::NewReader(const Position& from, Reporter* reporter, std::unique_ptr<TailReader>* out) {
  std::unique_ptr<TailReader> r(new TailReader(this, reporter));
  const uint64_t segment = SegmentFor(from.next_lsn);
  const bool hint_ok = from.segment == segment && from.offset > 0;
  Status s = r->OpenSegment(segment, hint_ok ? from.offset : 0);
  if (!s.ok()) return s;
  r->skip_below_ = from.next_lsn;
  r->next_lsn_ = from.next_lsn;
  if (from.next_lsn < segment && reporter != nullptr) {
    reporter->Corruption(0, 0,
                         "entries " + std::to_string(from.next_lsn) + ".." +
                             std::to_string(segment - 1) + " are no longer in the log");
  }
  *out = std::move(r);
  return Status::Ok();
}

TailReader::~TailReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status TailReader::OpenSegment(uint64_t segment, uint64_t offset) {
  const std::string path = log_->SegmentPath(segment);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open log segment", path, errno);
  reader_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  segment_ = segment;
  reader_ = std::make_unique<LogReader>(fd_, offset, reporter_);
  return Status::Ok();
}

bool TailReader::CheckEntry(const Entry& e, size_t record_size) {
  // Everything downstream walks the event without bounds checks, so this is
  // where bytes stop being trusted. The CRC only says they are what was
  // written; an edited segment or an older writer's bug can still hold
  // anything. What this process wrote, ingest checked before appending it
  // (wire::CheckEvent, or its own encoder for injected events), so only
  // entries from before it opened the log are walked here.
  std::string why;
  if (e.header.lsn >= log_->durable_next_lsn()) {
    why = "lsn " + std::to_string(e.header.lsn) + " is past the durable end " +
          std::to_string(log_->durable_next_lsn());
  } else if (check_events_ && !WrittenSinceOpen() &&
             !wire::CheckStoredEvent(e.event, e.event_size, &why)) {
    why = "entry lsn " + std::to_string(e.header.lsn) + ": " + why;
  } else {
    return true;
  }
  if (reporter_ != nullptr) {
    reporter_->Corruption(reader_->last_record_offset(), record_size,
                          "segment " + log_->SegmentPath(segment_) + ": " + why +
                              "; entry skipped");
  }
  // A lying lsn says nothing about where the reader is: keep the count.
  if (e.header.lsn < log_->durable_next_lsn()) next_lsn_ = e.header.lsn + 1;
  return false;
}

bool TailReader::WrittenSinceOpen() const {
  return segment_ > log_->opened_segment_ ||
         (segment_ == log_->opened_segment_ &&
          reader_->last_record_offset() >= log_->opened_offset_);
}

TailReader::Result TailReader::Next(Entry* e, Status* io) {
  while (true) {
    uint64_t limit = 0;
    uint64_t next = 0;
    bool sealed = false;
    if (!log_->SegmentInfo(segment_, &limit, &sealed, &next)) {
      // Our segment was deleted: everything in it was consumed by all.
      *io = OpenSegment(log_->SegmentFor(next_lsn_), 0);
      if (!io->ok()) return Result::kEnd;
      continue;
    }
    std::string_view rec;
    LogReader::Result r = reader_->ReadRecord(limit, &rec, io);
    if (!io->ok()) return Result::kEnd;
    if (r == LogReader::Result::kRecord) {
      if (rec.size() < kEntryHeaderSize) {
        if (reporter_ != nullptr) {
          reporter_->Corruption(reader_->last_record_offset(), rec.size(),
                                "entry shorter than its header");
        }
        continue;
      }
      const auto* p = reinterpret_cast<const uint8_t*>(rec.data());
      e->header.DecodeFrom(p);
      if (e->header.lsn < skip_below_) continue;
      e->event = p + kEntryHeaderSize;
      e->event_size = rec.size() - kEntryHeaderSize;
      if (log_->options_.check_events && !CheckEntry(*e, rec.size())) continue;
      next_lsn_ = e->header.lsn + 1;
      return Result::kEntry;
    }
    if (sealed && next != 0) {
      *io = OpenSegment(next, 0);
      if (!io->ok()) return Result::kEnd;
      continue;
    }
    return Result::kEnd;
  }
}

Position TailReader::position() const { return Position{next_lsn_, segment_, reader_->position()}; }

}  // namespace forkd::log
