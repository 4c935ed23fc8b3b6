#include "sinks/stream/stream_sink.h"

#include <charconv>

#include "sinks/common/json.h"
#include "streams/hub.h"

namespace forkd::sinks {
namespace {

class StreamSink : public Sink {
 public:
  StreamSink(std::string name, size_t buffer) : hub_(streams::HubFor(name)), buffer_(buffer) {}

  // `state`: the last position published when the cursor was committed.
  Status Open(const std::string& state) override {
    streams::Pos after = streams::AfterLsn(0);
    if (!state.empty()) {
      uint64_t lsn = 0;
      auto r = std::from_chars(state.data(), state.data() + state.size(), lsn);
      if (r.ec == std::errc() && r.ptr == state.data() + state.size()) after = streams::AfterLsn(lsn);
    }
    hub_->Open(after, buffer_);
    last_ = hub_->last();
    return Status::Ok();
  }
  void Write(const Record& r) override {
    streams::Pos p{r.header->lsn, 0};
    if (p.lsn < last_.lsn) return;  // delivered again after a restart: published already
    if (p.lsn == last_.lsn) {
      // Several records at one lsn (an aggregate's rows emitted together);
      // Open's "everything at this lsn" means they were published already.
      if (last_.k == UINT32_MAX) return;
      p.k = last_.k + 1;
    }
    last_ = p;
    streams::Hub::Item it;
    it.pos = p;
    it.frame = "id: " + streams::FormatPos(p) + "\ndata: ";
    AppendJsonLine(r.event_id, r.payload, r.payload_size, &it.frame);
    it.frame.append("\n");  // the line's "\n" and this one end the message
    bytes_ += it.frame.size();
    batch_.push_back(std::move(it));
  }
  size_t buffered_bytes() const override { return bytes_; }
  Status Flush() override {
    if (!batch_.empty()) committed_ = batch_.back().pos.lsn;
    hub_->Publish(&batch_);
    bytes_ = 0;
    return Status::Ok();
  }
  void Discard() override {
    batch_.clear();
    bytes_ = 0;
    last_ = hub_->last();
  }
  // What is published is never sent twice: a record delivered again (a
  // deferred cursor commit, a restart) is skipped by position.
  bool idempotent() const override { return true; }
  std::string State() const override { return committed_ ? std::to_string(committed_) : ""; }

 private:
  std::shared_ptr<streams::Hub> hub_;
  size_t buffer_;
  std::vector<streams::Hub::Item> batch_;
  size_t bytes_ = 0;
  streams::Pos last_;
  uint64_t committed_ = 0;
};

}  // namespace

const std::vector<OptionSpec>& StreamSinkOptions() {
  static const std::vector<OptionSpec> specs = {
      {"buffer", OptType::kInt, "10000",
       "Records kept in memory for subscribers; one further behind catches up from the log",
       false, {}, 1, 10000000},
      {"public", OptType::kBool, "false",
       "Serve GET /streams/<name> to anyone (any Host, CORS *): a ticker for a public page"},
      {"token", OptType::kString, "",
       "Subscribers must send it (Authorization: Bearer <token>, or ?token=); supports ${ENV}"},
      {"max_subscribers", OptType::kInt, "1000",
       "Subscribers served at once; more are refused with 503", false, {}, 1, 100000},
  };
  return specs;
}

bool CheckStreamOptions(const Options& o, std::string* error) {
  if (o.Bool("public") && !o.Str("token").empty()) {
    *error = "token: a public stream takes no token (set public: false to require one)";
    return false;
  }
  return true;
}

std::unique_ptr<Sink> CreateStreamSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  return std::make_unique<StreamSink>(ctx.destination->name, static_cast<size_t>(o.Int("buffer")));
}

}  // namespace forkd::sinks
