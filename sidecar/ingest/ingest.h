// Ingest: the ZeroMQ ROUTER that clients talk to. It validates each event
// against the limits, appends it to the log, drives group commit, and acks
// each client by sequence ranges once its events are durable; for events that
// asked for ack level 'delivered' it also reports when every target
// destination is done with them, and — to clients that asked for outcomes —
// which destinations filtered, dead-lettered or shed them.
//
// A client id is bound to the first connection whose hello claims it:
// route frames are taken only from the connection whose hello was accepted,
// and a later hello claiming the id must come with the same session (a
// random secret of the client process) and, under CURVE, the same public
// key — see HandleHello. The ZAP handler (zap.h) numbers the connections.
//
// Files: ingest.cc (the socket, frames, group commit and acks), keys.cc
// (idempotency keys and recovery from the log), delivered.cc (the
// 'delivered' waiters and outcomes), seq_set.cc.
//
// Memory against hostile peers: events not yet durable are held up to
// limits.max_pending (past it the socket is not read until the commit in
// flight completes, and ZeroMQ pushes back on the senders); a route frame is
// read entry by entry, and refusals of neighbouring entries for the same
// reason go out as one nack; clients are forgotten when idle
// (limits.client_idle) or past limits.max_clients, only once nothing of
// theirs is in flight. docs/protocol.md, "Limits and hostile input".
//
// Threads: Run() is the ingest thread and owns the socket; Stop() may be
// called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "ingest/key_journal.h"
#include "log/log.h"
#include "pipeline/outcomes.h"
#include "pipeline/router.h"
#include "transforms/record.h"
#include "wire/codec.h"

namespace forkd::ingest {

class ZapHandler;
struct Peer;

struct IngestStats {
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> events{0};        // appended to the log
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> acked{0};
  std::atomic<uint64_t> nacked{0};
  std::atomic<uint64_t> duplicates{0};    // resends of events already taken
  std::atomic<uint64_t> delivered{0};     // 'delivered' notifications sent
  std::atomic<uint64_t> bad_frames{0};
  std::atomic<uint64_t> clients{0};       // remembered now
  std::atomic<uint64_t> forgotten_clients{0};  // idle, or past limits.max_clients
  std::atomic<uint64_t> read_pauses{0};   // reading stopped at limits.max_pending
  std::atomic<uint64_t> repeated_keys{0};  // events whose key a destination had already
  std::atomic<uint64_t> refused_hellos{0};  // hellos claiming a client id bound to another client
  std::atomic<uint64_t> refused_connections{0};  // CURVE keys not in curve.clients
  std::atomic<uint64_t> refused_frames{0};  // route frames of a connection without accepted hello
};

// Sorted, disjoint inclusive ranges of sequence numbers; usually one range.
class SeqSet {
 public:
  bool Contains(uint64_t seq) const;
  void Add(uint64_t seq);
  void Remove(uint64_t first, uint64_t last);
  const std::vector<wire::SeqRange>& ranges() const { return ranges_; }
  bool operator==(const SeqSet& o) const;

 private:
  std::vector<wire::SeqRange> ranges_;
};

class Ingest {
 public:
  // `delivered_next_lsn(name)`: every entry below the returned lsn routed to
  // that destination has been delivered (UINT64_MAX: it no longer exists).
  // `outcomes` (may be null, outlives this object): where the pipelines
  // record what they did not store of the events watched here.
  Ingest(std::shared_ptr<const Config> config, log::Log* log,
         std::function<uint64_t(std::string_view)> delivered_next_lsn,
         pipeline::Outcomes* outcomes = nullptr);
  ~Ingest();
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  // Rebuilds what duplicate detection needs — each client's sequence numbers
  // and the idempotency keys with the destinations their events were stored
  // for — from the key journal and the newest `dedupe.recover_bytes` of the
  // log, so a client resending after a forkd crash does not double events.
  // Call before Bind().
  [[nodiscard]] Status Recover();
  // Where forkd's own wire clients (ingest/inproc_client.h: HTTP ingest,
  // the sources) reach this socket, in context().
  static constexpr const char* kInprocEndpoint = "inproc://forkd-ingest";
  // Creates the socket and binds `listen` and kInprocEndpoint.
  [[nodiscard]] Status Bind();
  // The ZeroMQ context of the socket, after Bind(); it lives until this
  // object is destroyed.
  void* context() const { return ctx_; }
  // Serves until Stop(); then stops taking frames, commits and acks what it
  // has, and returns.
  void Run();
  // Thread-safe.
  void Stop();
  // Thread-safe: the ingest thread takes the new config (its destinations,
  // routes and templates) before the next frame it reads. Listen, limits
  // and dedupe settings keep their values from the start.
  void SetConfig(std::shared_ptr<const Config> config);
  // Matches per route, for metrics; thread-safe.
  struct RouteCount {
    size_t route;  // index in the config's routes
    bool shadow;
    uint64_t matched;
  };
  std::vector<RouteCount> RouteCounts() const;
  // Events accepted per destination since start; thread-safe.
  std::map<std::string, uint64_t> DestinationCounts() const;
  // Thread-safe: appends events already in their stored form ([dests, key,
  // options, payload], e.g. dead letters replayed) and waits until they are
  // durable, for at most `timeout_ms`.
  [[nodiscard]] Status Inject(std::vector<std::string> events, int64_t timeout_ms);
  // Thread-safe: destinations past their backlog quota with policy block.
  // Events routed to any of them are refused with FORK_BACKPRESSURE.
  void SetBlocked(std::vector<std::string> names);
  // After the pipelines drained: sends the 'delivered' notifications that are
  // now due, then closes the socket.
  void Finish();

  const IngestStats& stats() const { return stats_; }
  // Segments at or above this lsn must stay: the idempotency keys of their
  // events may not be in the key journal yet. Thread-safe.
  uint64_t retain_from_lsn() const { return retain_from_lsn_.load(std::memory_order_acquire); }

 private:
  static constexpr uint32_t kNoClient = UINT32_MAX;
  // One per routing id that said hello (or that Recover found in the log).
  // Forgotten, and its slot reused, once Forgettable() and idle.
  struct Client {
    std::string identity;
    bool hello = false;    // said hello to this forkd
    uint32_t waiting = 0;  // its entries in waiters_
    int64_t active_us = 0;  // MonoMicros of its last frame
    int64_t created_us = 0;  // MonoMicros of its first frame
    uint32_t lru_prev = kNoClient, lru_next = kNoClient;  // by active_us, oldest first
    SeqSet taken;    // appended to the log (durable or in flight)
    SeqSet durable;  // committed
    std::vector<wire::SeqRange> ack_out;  // being collected for one ack frame
    std::vector<wire::SeqRange> delivered_out;
    std::vector<wire::EventOutcomes> outcomes_out;  // the trailer of delivered_out's frame
    size_t outcomes_bytes = 0;                      // about what outcomes_out encodes to
    bool outcomes = false;  // reads outcomes trailers (its hello said so)
    std::map<uint64_t, uint64_t> routed;  // seq -> destination mask, for the ack's trailer
    // What the id is bound to, from its first accepted hello: the connection
    // that may send route frames (the latest accepted), the CURVE key and
    // the session every later hello must match.
    bool bound = false;
    uint64_t connection = 0;
    std::string key;      // Z85; empty without CURVE
    std::string session;  // 16 bytes; empty when the hello had none
    uint64_t dropped_connection = 0;  // the last connection whose route frames were dropped
  };
  struct PendingAck {
    uint32_t client;
    uint64_t seq;
    uint64_t lsn;
    uint64_t dest_mask;  // non-zero: the client waits for 'delivered'
    uint64_t part = 0;   // non-zero: its waiter is one of several (parts_left_)
  };
  // Due when every destination in its mask has delivered past `lsn`. The
  // event at `lsn` must be stored for all of them: a destination's delivered
  // position is only sure to move past entries that are its own.
  struct Waiter {
    uint64_t lsn;
    uint32_t client;
    uint64_t seq;
    uint64_t part = 0;  // non-zero: one of several waiters for this seq (parts_left_)
  };
  struct KeyEntry {
    uint64_t lsn;
    int64_t recv_us;
  };

  void ApplyConfig();
  // watches_ for config_'s destinations.
  void IndexWatches();
  // Watches (or, with `unwatch`, stops watching) `lsn` at the destinations
  // of `mask`.
  void WatchOutcomes(uint64_t mask, uint64_t lsn, bool unwatch = false);
  void ApplyBlocked();
  // Decides the event's destinations (the caller's, plus routes). Returns a
  // nack code or nullptr; fills *mask and, when routes changed the list,
  // *event with the event to store.
  const char* Resolve(const wire::EventView& ev, const wire::RouteEntry& e, uint32_t client,
                      uint64_t* mask, bool* rewritten, std::string* error);
  // Writes into event_buf_ the event to store for the targets of decision_
  // in `keep` (a destination mask): [dests', key, options, payload].
  void StoreFor(const wire::EventView& ev, const wire::RouteEntry& e, uint64_t keep);
  void HandleMessage(const uint8_t* id, size_t id_size, const uint8_t* data, size_t size,
                     const Peer& peer);
  void HandleHello(uint32_t client, const Peer& peer, const uint8_t* data, size_t size);
  // Whether `client` may send route frames on `peer`'s connection: the one
  // whose hello was accepted last. Counts and logs the frames it may not.
  bool TakesRoutes(uint32_t client, const Peer& peer);
  void HandleRoute(uint32_t client, const Peer& peer, const uint8_t* data, size_t size);
  void HandleCompletion();
  void MaybeCommit(bool force);
  void CheckDelivered();
  void Nack(uint32_t client, uint64_t first, uint64_t last, const char* code,
            const std::string& message);
  void Send(const std::string& identity, const wire::Buffer& frame);
  // Sends `ranges` as an ack, or as a delivered frame with the client's
  // outcomes_out as its trailer, and clears them.
  void SendRanges(uint32_t client, std::vector<wire::SeqRange>* ranges, bool delivered);
  // The client of this routing id, created if new (kNoClient: the table is
  // full of clients with events in flight).
  uint32_t ClientFor(const uint8_t* id, size_t size);
  // The client of this routing id, or kNoClient.
  uint32_t FindClient(const uint8_t* id, size_t size);
  // Nothing of the client's is in flight or owed: every event it sent is
  // durable and acked, and none waits for 'delivered'. Forgetting it then
  // loses nothing but the memory of its sequence numbers, which only a
  // resend of an event already acked would need.
  bool Forgettable(const Client& c) const;
  void Forget(uint32_t client);
  // Forgets the clients idle past limits.client_idle; at most once a second.
  void ForgetIdleClients(int64_t now_us);
  void Touch(uint32_t client, int64_t now_us);
  void LruUnlink(uint32_t client);
  void LruPushBack(uint32_t client);
  // Forgets the least recently active client that is Forgettable(), to make
  // room for a new one; false when none of the oldest few is.
  bool EvictOne(int64_t now_us);
  // Sends a nack to a routing id that may have no client.
  void NackTo(std::string_view identity, uint64_t first, uint64_t last, const char* code,
              const std::string& message);
  // Refuses entry `seq` of the frame being read: joins the refusal being
  // collected when it is the next seq for the same reason, else sends that
  // one and starts another. *message is taken.
  void Refuse(uint32_t client, uint64_t seq, const char* code, std::string* message);
  void FlushRefusal();
  // Bytes of events not yet durable that ingest holds: the batch being
  // committed and the one being collected, with their pending acks.
  size_t HeldBytes() const {
    return in_flight_held_ + log_->pending_bytes() + pending_acks_.size() * sizeof(PendingAck);
  }
  // Remembers that the event with this key at `lsn` was stored for `dest`
  // ("": every destination), evicting past max_keys.
  void RememberKey(std::string_view dest, std::string_view key, uint64_t lsn, int64_t recv_us);
  // Forgets the keys older than the window.
  void ExpireKeys(int64_t now_us);
  // The lsn of an earlier event with this key stored for `dest`, or 0.
  // Call ExpireKeys first.
  uint64_t LookupKey(std::string_view dest, std::string_view key);
  // The key of keys_ for (dest, key), in key_scratch_.
  const std::string& PairKey(std::string_view dest, std::string_view key);
  void EraseKey(std::unordered_map<std::string, KeyEntry>::iterator it);
  int64_t PollTimeoutMs() const;

  std::shared_ptr<const Config> config_;
  log::Log* log_;
  std::function<uint64_t(std::string_view)> delivered_next_lsn_;
  pipeline::Outcomes* outcomes_;
  std::vector<pipeline::OutcomeWatch*> watches_;  // by config_ index; empty without outcomes_
  std::vector<wire::DestinationOutcome> noted_outcomes_;   // reused by CheckDelivered
  std::unique_ptr<pipeline::Router> router_;
  mutable std::mutex config_mu_;
  std::shared_ptr<const Config> next_config_;  // guarded by config_mu_
  std::atomic<bool> config_pending_{false};
  std::vector<std::string> blocked_names_;  // guarded by config_mu_
  std::atomic<bool> blocked_pending_{false};
  uint64_t blocked_mask_ = 0;
  struct Injection {
    std::vector<std::string> events;
    std::promise<Status> done;
    uint64_t first_lsn = 0;
    uint64_t last_lsn = 0;
  };
  void TakeInjections();
  std::mutex inject_mu_;
  std::vector<std::unique_ptr<Injection>> inject_queue_;   // guarded by inject_mu_
  std::atomic<bool> inject_pending_{false};
  std::vector<std::unique_ptr<Injection>> injected_;      // ingest thread: in the log, not durable
  uint64_t inject_seq_ = 0;
  std::atomic<uint64_t> routed_to_[64] = {};  // events accepted, by config index               // ingest thread: by config index
  std::vector<std::shared_ptr<const Config>> retired_configs_;  // routes' counters stay readable
  transforms::Doc route_doc_;
  transforms::Arena route_scratch_;
  pipeline::Router::Decision decision_;
  std::vector<uint32_t> named_;
  std::vector<uint32_t> targets_;
  wire::Buffer event_buf_;  // a routed event, rewritten
  void* ctx_ = nullptr;
  std::unique_ptr<ZapHandler> zap_;  // stopped before ctx_ terminates
  void* socket_ = nullptr;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};

  // Found by a string_view of the routing id: a lookup per frame allocates nothing.
  struct IdHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, uint32_t, IdHash, std::equal_to<>> client_index_;
  std::vector<Client> clients_;         // by index; forgotten ones are empty and in free_clients_
  std::vector<uint32_t> free_clients_;
  uint32_t lru_head_ = kNoClient, lru_tail_ = kNoClient;
  size_t client_count_ = 0;
  int64_t last_idle_sweep_us_ = 0;
  int64_t last_evict_warning_us_ = 0;
  size_t in_flight_held_ = 0;  // HeldBytes() of the batch being committed
  size_t commit_bytes_ = 0;    // commit without waiting past this many pending bytes
  bool reading_paused_ = false;
  // The refusal being collected while a route frame is read.
  struct Refusal {
    uint32_t client = kNoClient;  // kNoClient: none
    uint64_t first = 0, last = 0;
    const char* code = nullptr;
    std::string message;
  };
  Refusal refusal_;
  size_t refusals_in_frame_ = 0;
  std::vector<PendingAck> pending_acks_;    // in the batch being collected
  std::vector<PendingAck> in_flight_acks_;  // in the batch being committed
  int64_t pending_since_us_ = 0;
  std::map<uint64_t, std::deque<Waiter>> waiters_;  // by destination set
  size_t waiter_count_ = 0;
  // 'delivered' of an event whose key some destinations had already waits
  // for the earlier events (one waiter per lsn) and for itself: sent when
  // the last of its parts is due. Part id -> parts not yet due.
  std::unordered_map<uint64_t, uint32_t> parts_left_;
  uint64_t next_part_ = 1;
  std::vector<std::pair<uint64_t, uint64_t>> earlier_;  // (lsn, destination mask), reused
  // Counts one part of `part` as due; true when it was the last.
  bool PartDue(uint64_t part);
  // A part whose event failed: its count and the outcomes held for it go.
  void ForgetPart(uint64_t part);
  // Outcomes of the parts already due, until the last part settles the call.
  std::unordered_map<uint64_t, std::vector<wire::DestinationOutcome>> part_outcomes_;

  // Acks owed for repeats of events not yet durable: sent once lsn is.
  std::vector<PendingAck> deferred_acks_;
  // Idempotency keys per (key, destination): the map's key is the
  // destination's name, a NUL and the idempotency key (names hold no NUL).
  // An empty name stands for every destination: keys read from a version 1
  // key journal, which did not record destinations. dedupe.max_keys bounds
  // the number of entries, i.e. of (key, destination) pairs.
  std::unordered_map<std::string, KeyEntry> keys_;
  std::deque<std::pair<int64_t, std::string>> key_order_;  // (recv_us, pair), oldest first
  size_t all_dest_keys_ = 0;  // entries of keys_ with the empty name
  std::string key_scratch_;   // PairKey's result, reused so a lookup does not allocate
  struct JournalEntry {
    std::string pair;  // as in keys_
    uint64_t lsn;
    int64_t recv_us;
  };
  std::unique_ptr<KeyJournal> journal_;
  std::deque<JournalEntry> journal_pending_;  // keys of events not yet committed
  uint64_t completed_next_lsn_ = 1;            // every commit below it was handled
  int64_t last_journal_sync_us_ = 0;
  std::atomic<uint64_t> retain_from_lsn_{0};
  void SyncJournal(bool force);
  uint64_t s_journal_keys_ = 0;

  wire::Buffer out_;                       // reused for outgoing frames
  std::vector<uint32_t> touched_;          // clients with acks to send
  wire::Limits limits_;
  IngestStats stats_;
};

}  // namespace forkd::ingest
