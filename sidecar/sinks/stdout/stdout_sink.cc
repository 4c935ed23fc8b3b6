#include "sinks/stdout/stdout_sink.h"

#include <unistd.h>

#include <cerrno>

#include "core/fs.h"
#include "sinks/common/json.h"

namespace forkd::sinks {
namespace {

class StdoutSink : public Sink {
 public:
  Status Open(const std::string&) override { return Status::Ok(); }
  void Write(const Record& r) override {
    AppendJsonLine(r.event_id, r.payload, r.payload_size, &buf_);
  }
  size_t buffered_bytes() const override { return buf_.size(); }
  Status Flush() override {
    if (buf_.empty()) return Status::Ok();
    if (fs::WriteAll(STDOUT_FILENO, buf_.data(), buf_.size()) != 0) {
      return Status::Retry(ErrnoStatus("write", "stdout", errno).message());
    }
    buf_.clear();
    return Status::Ok();
  }
  void Discard() override { buf_.clear(); }

 private:
  std::string buf_;
};

}  // namespace

const std::vector<OptionSpec>& StdoutSinkOptions() {
  static const std::vector<OptionSpec> specs = {};
  return specs;
}

std::unique_ptr<Sink> CreateStdoutSink(const SinkContext&) {
  return std::make_unique<StdoutSink>();
}

}  // namespace forkd::sinks
