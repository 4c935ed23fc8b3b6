// The connection to forkd (Link): the ZeroMQ DEALER socket and the I/O
// thread that sends the events' frames, keeps them until forkd acknowledges
// them (to resend after a reconnect), decodes what forkd answers and tracks
// deadlines. Client (client.h) drives it from the JS thread.
//
// Threads. The JS thread encodes each event (encoder.h) into a scratch
// buffer, then under a short mutex appends it to the outbox: the kRoute frame
// being filled. The I/O thread takes whole frames, sends them, keeps them
// until every event in them is acknowledged (to resend after a reconnect),
// tracks deadlines, and hands completions back in batches through one
// thread-safe function, with at most one call queued at a time.
//
// Code marked [I/O] runs on the I/O thread and never touches a napi_value or
// a Napi:: object; code marked [JS] runs on the JS thread; [any] is either.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "wire/codec.h"
#include "wire/protocol.h"

namespace fork_router {

namespace wire = ::forkd::wire;

struct LinkOptions {
  std::string endpoint;  // a ZeroMQ endpoint: ipc://..., tcp://host:port
  std::string agent;     // sent in kHello, e.g. "fork-router/0.1.0 node/v20.11.0"
  uint8_t client_id[wire::kClientIdSize] = {};
  uint8_t session[wire::kClientIdSize] = {};  // sent in kHello only; random per client
  // CURVE (all Z85, validated by the JS layer). With a server key the
  // connection is encrypted and forkd authenticated; without a client pair,
  // Start() makes one for this client.
  std::string curve_server_key;
  std::string curve_public_key;
  std::string curve_secret_key;
};

struct LinkStats {
  uint64_t sent = 0;       // events sent for the first time
  uint64_t acked = 0;      // events forkd acknowledged as durable
  uint64_t delivered = 0;  // events every destination committed (ack: 'delivered')
  uint64_t nacked = 0;     // events forkd rejected
  uint64_t timed_out = 0;  // events whose deadline passed first
  uint64_t in_flight = 0;  // events queued or sent and not settled
  uint64_t in_flight_bytes = 0;  // encoded bytes of events not yet acknowledged
  uint64_t reconnects = 0;       // welcomes after the first
  uint64_t resent = 0;           // events sent again after a reconnect
  bool connected = false;        // a welcome arrived and the link did not drop since
};

// How one event ended, as the I/O thread saw it.
enum class Outcome : uint8_t {
  kAccepted,          // durable in forkd's log
  kDelivered,         // every target destination is done: stored, or filtered (see outcomes)
  kRejected,          // kNack, or a destination did not store it: see the detail
  kTimedOut,          // sent, no acknowledgement before the deadline
  kDeliveryTimedOut,  // acknowledged, not delivered before the deadline
  kUnavailable,       // never sent: forkd was not reachable before the deadline (the
                      // detail, when there is one, says why: a failed CURVE handshake, a
                      // refused hello)
};

struct Completion {
  uint64_t seq = 0;
  Outcome outcome = Outcome::kAccepted;
  // Settled by a delivered frame from a forkd that reports outcomes: the
  // destinations the detail does not name delivered the event.
  bool outcomes = false;
  int32_t detail = -1;  // index into CompletionBatch::details, or -1
};

struct CompletionDetail {
  std::string code;  // kRejected only
  std::string message;
  std::vector<std::string> routed;  // names the config's routes chose (Ack trailer)
  bool has_routed = false;          // `routed` came from an Ack trailer
  std::vector<wire::DestinationOutcome> outcomes;  // the destinations that did not store it
};

struct CompletionBatch {
  std::vector<Completion> items;
  std::vector<CompletionDetail> details;
  bool empty() const { return items.empty(); }
  void clear() {
    items.clear();
    details.clear();
  }
};

// Events bound for one kRoute frame: the frame bytes (kRouteHeaderSize
// reserved at the front, written when the I/O thread takes the frame) and
// each event's deadline.
struct Frame {
  wire::Buffer bytes;
  uint64_t first_seq = 0;
  uint32_t count = 0;
  std::vector<int64_t> deadlines;  // ms on NowMs()'s clock
  void Reset();
};

// The connection to forkd. Created and driven by Client on the JS thread; the
// socket and everything below "I/O thread state" belong to the I/O thread.
class Link {
 public:
  // [I/O] Called when completions become available and none are waiting to
  // be taken; it must only schedule a call to TakeCompletions on the JS thread.
  using Notify = std::function<void()>;

  explicit Link(LinkOptions options);
  ~Link();  // Stop()
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // [JS] Creates the socket, starts connecting and starts the I/O thread.
  // Fails on an endpoint ZeroMQ refuses or when resources run out.
  [[nodiscard]] bool Start(Notify notify, std::string* error);
  // [JS] Stops the I/O thread (joins it: a few milliseconds at most) and
  // closes the socket and its context. Completions the thread produced last
  // are left for TakeCompletions. Idempotent.
  void Stop();

  // [JS] Appends one encoded event to the outbox; returns its sequence number
  // (1, 2, 3 ... per client). Does not wake the I/O thread (see Kick) unless
  // the outbox passed kSealBytes.
  uint64_t Enqueue(const uint8_t* event, uint32_t size, uint8_t flags, int64_t deadline_ms);
  // [JS] Wakes the I/O thread if events were queued since the last kick.
  // Cheap when there is nothing to do; at most one wakeup write in flight.
  void Kick();
  // [JS] Moves the available completions into *out (cleared first).
  void TakeCompletions(CompletionBatch* out);

  // [any]
  uint64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t in_flight_bytes() const { return in_flight_bytes_.load(std::memory_order_relaxed); }
  uint32_t max_event() const { return max_event_.load(std::memory_order_relaxed); }
  LinkStats Stats() const;
  const std::string& endpoint() const { return options_.endpoint; }

  // Milliseconds on a monotonic clock (coarse: a few ms of resolution).
  static int64_t NowMs();

  // A frame is handed to the I/O thread once it holds this many bytes.
  static constexpr size_t kSealBytes = 256u << 10;

 private:
  enum class SlotState : uint8_t { kQueued, kSent, kAcked, kSettled };
  enum class State : uint8_t { kDisconnected, kHelloSent, kReady };

  // One event between Enqueue and its completion.
  struct Slot {
    int64_t deadline = 0;
    uint64_t frame_no = 0;
    uint32_t size = 0;
    uint8_t flags = 0;
    SlotState state = SlotState::kQueued;
    std::unique_ptr<std::vector<std::string>> routed;  // from an Ack trailer
    bool unresolved() const { return state == SlotState::kQueued || state == SlotState::kSent; }
  };
  struct StoredFrame {
    Frame frame;
    uint32_t unresolved = 0;  // events neither acknowledged nor settled
  };
  using Deadline = std::pair<int64_t, uint64_t>;  // (deadline, seq)

  // [I/O]
  void Run();
  void TakeOutbox();
  void Register(Frame frame);
  // [any] A frame for open_, reused from pool_ when one is there. Caller holds mu_.
  Frame TakePooledFrame();
  void HandleMonitor();
  void HandleIncoming();
  void HandleFrame(const uint8_t* data, size_t size);
  void SendPending();
  bool SendFrame(StoredFrame& sf);
  bool SendBytes(const uint8_t* data, size_t size);
  void SendHello();
  // Drops the connection and connects again (a hello went unanswered).
  void Reconnect();
  void ApplyAck(wire::Ack& ack);
  void ApplyDelivered(wire::Delivered& delivered);
  void ApplyNack(wire::Nack& nack);
  void ExpireDeadlines(int64_t now);
  int NextTimeoutMs(int64_t now);
  void Collect();
  void Publish();
  Slot* Find(uint64_t seq);
  bool Settled(uint64_t seq);
  void Resolve(Slot& s);
  void Settle(uint64_t seq, Slot& s, Outcome outcome, int32_t detail, bool outcomes = false);
  void Recycle(Frame frame);

  const LinkOptions options_;
  Notify notify_;
  void* ctx_ = nullptr;
  void* sock_ = nullptr;
  void* monitor_ = nullptr;
  int wake_fd_ = -1;   // eventfd (a pipe's read end where there is none)
  int wake_wfd_ = -1;  // where kicks write (the same eventfd, or the pipe's write end)
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> wake_pending_{false};

  // Counters, written by the I/O thread (in_flight*: also by the JS thread).
  std::atomic<uint64_t> in_flight_{0}, in_flight_bytes_{0};
  std::atomic<uint64_t> sent_{0}, acked_{0}, delivered_{0}, nacked_{0}, timed_out_{0};
  std::atomic<uint64_t> reconnects_{0}, resent_{0};
  std::atomic<bool> connected_{false};
  std::atomic<uint32_t> max_event_{wire::kDefaultMaxEvent};

  // JS thread state.
  uint64_t next_seq_ = 1;
  bool dirty_ = false;  // events queued since the last Kick

  // Shared state, under mu_.
  std::mutex mu_;
  Frame open_;                 // the frame the JS thread is filling
  std::vector<Frame> sealed_;  // full frames waiting for the I/O thread
  std::vector<Frame> pool_;    // emptied frames, for reuse
  CompletionBatch completions_;
  bool notify_pending_ = false;

  // I/O thread state.
  State state_ = State::kDisconnected;
  bool ever_ready_ = false;
  bool forkd_outcomes_ = false;  // the last welcome said delivered frames carry outcomes
  // Why the link is not ready, when forkd said or the handshake showed it
  // (empty otherwise): given to events that time out unsent. Cleared by a
  // welcome.
  std::string problem_;
  bool handshaken_ = false;  // the current connection completed its handshake
  int64_t hello_sent_ms_ = 0;  // when the last kHello went out (NowMs)
  bool hello_pending_ = false;  // the handshake completed, kHello not sent yet
  bool blocked_ = false;        // the last send would have blocked: wait for POLLOUT
  std::deque<Slot> slots_;      // slots_[i] has sequence number slots_base_ + i
  uint64_t slots_base_ = 1;
  std::deque<StoredFrame> frames_;  // frames_[i] has frame number frames_base_ + i
  uint64_t frames_base_ = 0;
  uint64_t send_cursor_ = 0;  // first frame number not yet sent on this connection
  // Deadlines: in arrival order while they do not decrease (the common case:
  // one timeout for every call), in a min-heap otherwise.
  std::deque<Deadline> deadline_fifo_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> deadline_heap_;
  std::vector<Frame> taking_;
  CompletionBatch local_;  // completions of this loop turn
  wire::Buffer scratch_;   // hello and partial resends
};

}  // namespace fork_router
