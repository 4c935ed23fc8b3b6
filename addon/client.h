// A fork-router client: the JS-facing object (Client). It encodes each event
// on the JS thread and settles the promises when its Link (link.h), which
// owns the connection to forkd and the I/O thread, reports how events ended.
#pragma once

#include <napi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "encoder.h"
#include "link.h"
#include "wire/codec.h"

namespace fork_router {

enum class AckLevel : uint8_t { kNone = 0, kAccepted = 1, kDelivered = 2 };

// The JS object behind createClient(): encodes on the JS thread, settles
// promises when the Link reports. All methods run on the JS thread.
//
// Lifetime: while events are pending the object holds a strong reference to
// itself and refs its thread-safe function (keeping the event loop alive);
// idle, it holds neither, so the process can exit and the object can be
// collected. close(), garbage collection and environment teardown all stop
// the Link.
class Client : public Napi::ObjectWrap<Client> {
 public:
  static Napi::Function Define(Napi::Env env);

  // new Client(endpoint, agent, maxInFlight, maxInFlightBytes, curve?)
  // curve: { serverKey, publicKey?, secretKey? } (Z85), or undefined.
  explicit Client(const Napi::CallbackInfo& info);
  ~Client() override;

 private:
  static void CallJsTrampoline(Napi::Env env, Napi::Function fn, Client* self, void* data);
  using Tsfn = Napi::TypedThreadSafeFunction<Client, void, &Client::CallJsTrampoline>;
  struct TsfnState;

  static void OnTsfnFinalize(Napi::Env env, TsfnState* state, Client* self);
  static void OnEnvCleanup(void* arg);

  // route(payload, destinations, idempotencyKey, options, ack, timeoutMs) -> Promise<Receipt>,
  // or for ack 'none' the event's sequence number once queued (the JS layer
  // makes its receipt); a rejected promise either way when it cannot go.
  Napi::Value Route(const Napi::CallbackInfo& info);
  // routeMany(payloads, destinations, keys, options, ack, timeoutMs) ->
  // Promise<Receipt[]>: every payload encoded before any is queued, so an
  // invalid one rejects the call with nothing sent; one promise for all.
  // `keys`: an array of idempotency keys, one per payload, or undefined.
  Napi::Value RouteMany(const Napi::CallbackInfo& info);
  // routeEncoded(buffer, size, metaEnd, ack, timeoutMs) -> as route(), or
  // undefined: queues the event js/encoder.cjs wrote into buffer[0, size)
  // (metaEnd: where its destinations and key end). Undefined when the C++
  // encoder must redo it (past forkd's max_event), to word the error.
  Napi::Value RouteEncoded(const Napi::CallbackInfo& info);
  // routeManyEncoded(buffer, n, ends, metaEnds, ack, timeoutMs) -> Promise<Receipt[]>
  // or undefined: the n events js/encoder.cjs wrote back to back (ends[i]:
  // where event i ends; metaEnds[i]: where its destinations and key end,
  // from its start). Undefined when the C++ path must redo the call.
  Napi::Value RouteManyEncoded(const Napi::CallbackInfo& info);
  // Queues n encoded events as one routeMany call; returns its promise.
  napi_value QueueMany(napi_env env, const uint8_t* data, size_t bytes, uint32_t n,
                       const uint32_t* ends, const uint32_t* metas, AckLevel ack, uint32_t timeout_ms);
  // Queues one encoded event and returns its promise (or a rejected one);
  // for ack 'none', its sequence number.
  napi_value Queue(napi_env env, const uint8_t* event, size_t size, size_t meta_end, AckLevel ack,
                   uint32_t timeout_ms);
  Napi::Value Kick(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value PendingCount(const Napi::CallbackInfo& info);
  Napi::Value SetDrainCallback(const Napi::CallbackInfo& info);
  Napi::Value GetClientId(const Napi::CallbackInfo& info);

  // An event between route() and its settlement.
  struct Pending {
    napi_deferred deferred = nullptr;  // nullptr for ack 'none' (resolved at once)
    uint32_t timeout_ms = 0;
    AckLevel ack = AckLevel::kAccepted;
    bool done = false;
    std::string meta;  // msgpack destinations then key, copied from the event
    uint32_t group = 0;  // the routeMany call it belongs to (groups_), or 0
    uint32_t index = 0;  // its place in that call's payloads
  };

  // One routeMany call: its promise settles when the last of its events does,
  // with every receipt, or with the first failure (carrying every result).
  struct Group {
    napi_deferred deferred = nullptr;
    napi_ref results = nullptr;  // JS array: a Receipt or a ForkError per payload
    napi_ref first_error = nullptr;
    uint32_t first_failed = 0;
    uint32_t size = 0;
    uint32_t remaining = 0;
  };

  // For one pass of settling (DrainCompletions): a receipt's property keys
  // as JS spelled them (internalized strings, so V8 sets each without
  // looking it up in its string table), the ack names, and the names of the
  // last destinations seen; made once a pass instead of once a receipt.
  struct ReceiptStrings {
    bool loaded = false;
    napi_value id = nullptr, ack = nullptr, destinations = nullptr;
    napi_value acks[3] = {};  // by AckLevel
    std::string meta;         // `names` are this meta's destinations
    std::vector<napi_value> names;
  };
  // Fills `rs` from the keys the JS layer gave the constructor; false
  // without them (receipts are then made by name).
  bool LoadReceiptStrings(napi_env env, ReceiptStrings* rs);

  // Receipts made by the JS layer, a run of them per call. A receipt
  // without outcomes (the common kind) is an object literal there; made here
  // through Node-API, property by property, it cost more than the rest of
  // settling. The run's sequence numbers, ack levels and destination lists
  // go over in typed arrays the JS layer owns; makeReceipts(n, lists, keys)
  // returns the n receipts, and each promise is resolved with its own.
  struct ReceiptRun {
    napi_ref factory = nullptr;  // makeReceipts(n, lists, keys) -> Receipt[]
    napi_ref arrays = nullptr;   // keeps the typed arrays below alive
    double* seqs = nullptr;      // Float64Array
    uint8_t* levels = nullptr;   // Uint8Array: AckLevel
    uint16_t* lists = nullptr;   // Uint16Array: index into `names`
    uint32_t capacity = 0;
    std::vector<Pending*> members;        // the run so far, in completion order
    std::vector<const CompletionDetail*> details;  // each member's (forkd's routed list), or null
    std::vector<std::string> metas;       // each list's destinations (msgpack; empty: routed)
    std::vector<std::vector<std::string>> names;  // each list's destination names
    std::vector<std::pair<uint32_t, std::string>> keys;  // (member, idempotency key)
  };
  // Binds the JS side's [makeReceipts, seqs, levels, lists] (constructor arg 6).
  bool BindReceiptRun(napi_env env, napi_value spec);
  // Adds p's receipt to the run (flushing a full one); false when p's
  // receipt is not the common kind and must be made by MakeReceipt.
  bool AddToRun(napi_env env, uint64_t seq, Pending& p, AckLevel reached,
                const CompletionDetail* detail, bool outcomes);
  // Makes the run's receipts in JS and settles each member with its own.
  void FlushRun(napi_env env);

  napi_value Rejected(napi_env env, napi_value error);
  // The event's destinations as a JS array: forkd's routed list when the
  // detail has one, else the caller's.
  napi_value Destinations(napi_env env, const Pending& p, const CompletionDetail* detail,
                          ReceiptStrings* rs = nullptr);
  // `detail` may be null; with `outcomes`, the receipt says per destination
  // what became of the event. `rs`: the pass's strings, or null.
  napi_value MakeReceipt(napi_env env, uint64_t seq, const Pending& p, AckLevel reached,
                         const CompletionDetail* detail, bool outcomes,
                         ReceiptStrings* rs = nullptr);
  napi_value MakeSettleError(napi_env env, uint64_t seq, const Pending& p, const Completion& c,
                             const CompletionBatch& batch);
  void DrainCompletions(napi_env env);
  // Settles p with `value` (a receipt, or an error when !ok): its own
  // promise, or its place in its routeMany group.
  void Settle(napi_env env, Pending& p, napi_value value, bool ok);
  void SettleGroupMember(napi_env env, const Pending& p, napi_value value, bool ok);
  void SetBusy(napi_env env, bool busy);
  void Shutdown(napi_env env);
  std::string EventId(uint64_t seq, const Pending& p) const;

  std::unique_ptr<Link> link_;
  Tsfn tsfn_;
  TsfnState* tsfn_state_ = nullptr;  // nullptr once the tsfn is finalized
  napi_env env_ = nullptr;
  bool cleanup_hook_ = false;
  bool closed_ = false;
  bool shut_down_ = false;
  bool busy_ = false;
  std::string id_prefix_;  // FormatEventId(client id, seq) without the seq
  uint32_t max_in_flight_ = 100000;
  uint64_t max_in_flight_bytes_ = 64ull << 20;

  Encoder encoder_;
  wire::Buffer scratch_;
  std::deque<Pending> pending_;  // pending_[i] has sequence number pending_base_ + i
  std::unordered_map<uint32_t, Group> groups_;
  uint32_t next_group_ = 1;
  wire::Buffer many_;              // routeMany: every event encoded, back to back
  std::vector<uint32_t> many_ends_;  // where each ends in many_, and its meta's end
  std::vector<uint32_t> many_meta_;
  uint64_t pending_base_ = 1;
  uint64_t pending_count_ = 0;  // entries not done
  CompletionBatch batch_;
  Napi::FunctionReference on_drain_;
  // ["id", "ack", "destinations", "none", "accepted", "delivered"] from JS.
  napi_ref receipt_keys_ = nullptr;
  ReceiptStrings receipt_strings_;
  ReceiptRun run_;
};

}  // namespace fork_router
