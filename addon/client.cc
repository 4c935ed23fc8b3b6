#include "client.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "errors.h"
#include "wire/random.h"

namespace fork_router {
namespace {

const char* AckName(AckLevel a) {
  switch (a) {
    case AckLevel::kNone:
      return "none";
    case AckLevel::kDelivered:
      return "delivered";
    default:
      return "accepted";
  }
}

napi_value NewString(napi_env env, std::string_view s) {
  napi_value v;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}

// receipt.outcomes (and a rejection's err.outcomes): every destination in
// `dests` (a JS array of names) delivered the event, except those `detail`
// names.
napi_value OutcomesObject(napi_env env, napi_value dests, const CompletionDetail* detail) {
  napi_value outcomes;
  napi_create_object(env, &outcomes);
  uint32_t n = 0;
  napi_get_array_length(env, dests, &n);
  napi_value delivered = NewString(env, wire::OutcomeName(wire::OutcomeKind::kDelivered));
  for (uint32_t i = 0; i < n; ++i) {
    napi_value name;
    napi_get_element(env, dests, i, &name);
    napi_set_property(env, outcomes, name, delivered);
  }
  if (detail != nullptr) {
    for (const wire::DestinationOutcome& o : detail->outcomes) {
      napi_set_property(env, outcomes, NewString(env, o.destination),
                        NewString(env, wire::OutcomeName(o.kind)));
    }
  }
  return outcomes;
}

}  // namespace

struct Client::TsfnState {
  Client* owner;
};

Napi::Function Client::Define(Napi::Env env) {
  return DefineClass(env, "Client",
                     {
                         InstanceMethod<&Client::Route>("route"),
                         InstanceMethod<&Client::RouteMany>("routeMany"),
                         InstanceMethod<&Client::RouteEncoded>("routeEncoded"),
                         InstanceMethod<&Client::RouteManyEncoded>("routeManyEncoded"),
                         InstanceMethod<&Client::Kick>("kick"),
                         InstanceMethod<&Client::Close>("close"),
                         InstanceMethod<&Client::Stats>("stats"),
                         InstanceMethod<&Client::PendingCount>("pending"),
                         InstanceMethod<&Client::SetDrainCallback>("setDrainCallback"),
                         InstanceAccessor<&Client::GetClientId>("clientId"),
                     });
}

Client::Client(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Client>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  LinkOptions options;
  options.endpoint = info[0].As<Napi::String>().Utf8Value();
  options.agent = info[1].As<Napi::String>().Utf8Value();
  max_in_flight_ = info[2].As<Napi::Number>().Uint32Value();
  max_in_flight_bytes_ = static_cast<uint64_t>(info[3].As<Napi::Number>().DoubleValue());

  wire::FillRandom(options.client_id, wire::kClientIdSize);
  // ZeroMQ reserves routing ids that start with a zero byte.
  if (options.client_id[0] == 0) options.client_id[0] = 1;
  wire::FillRandom(options.session, wire::kClientIdSize);
  // info[4]: undefined, or { serverKey, publicKey?, secretKey? } (Z85,
  // checked by the JS layer).
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Object curve = info[4].As<Napi::Object>();
    auto str = [&](const char* name) {
      Napi::Value v = curve.Get(name);
      return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
    };
    options.curve_server_key = str("serverKey");
    options.curve_public_key = str("publicKey");
    options.curve_secret_key = str("secretKey");
  }
  // info[5]: the receipt's keys and ack names, as JS strings.
  if (info.Length() > 5 && info[5].IsArray()) {
    napi_create_reference(env, info[5], 1, &receipt_keys_);
  }
  // info[6]: [makeReceipts, seqs, levels, lists] (see ReceiptRun), or absent.
  if (info.Length() > 6 && info[6].IsArray()) (void)BindReceiptRun(env, info[6]);
  id_prefix_ = wire::FormatEventId(options.client_id, 0);
  id_prefix_.pop_back();  // the "0"

  link_ = std::make_unique<Link>(options);
  tsfn_state_ = new TsfnState{this};
  tsfn_ = Tsfn::New(env, "fork-router", 0, 1, this, &Client::OnTsfnFinalize, tsfn_state_);
  tsfn_.Unref(env);  // idle clients keep nothing alive

  std::string error;
  if (!link_->Start([this] { tsfn_.NonBlockingCall(); }, &error)) {
    closed_ = true;
    ThrowForkError(env, kInvalidPayload, "createClient: endpoint " + options.endpoint + ": " + error);
    return;
  }
  napi_add_env_cleanup_hook(env, &Client::OnEnvCleanup, this);
  cleanup_hook_ = true;
}

Client::~Client() {
  link_->Stop();
  if (receipt_keys_ != nullptr) napi_delete_reference(env_, receipt_keys_);
  if (run_.factory != nullptr) napi_delete_reference(env_, run_.factory);
  if (run_.arrays != nullptr) napi_delete_reference(env_, run_.arrays);
  encoder_.Release(env_);
  if (cleanup_hook_) napi_remove_env_cleanup_hook(env_, &Client::OnEnvCleanup, this);
  if (tsfn_state_ != nullptr) {
    tsfn_state_->owner = nullptr;
    tsfn_state_ = nullptr;
    tsfn_.Abort();
  }
}

void Client::CallJsTrampoline(Napi::Env env, Napi::Function, Client* self, void*) {
  // env is null when the tsfn is torn down with calls still queued.
  if (env == nullptr || self == nullptr) return;
  self->DrainCompletions(env);
}

void Client::OnTsfnFinalize(Napi::Env, TsfnState* state, Client*) {
  if (state->owner != nullptr) state->owner->tsfn_state_ = nullptr;
  delete state;
}

void Client::OnEnvCleanup(void* arg) {
  // The environment is going away (process exit, worker end): stop the I/O
  // thread and close the socket. No JS can run here.
  auto* self = static_cast<Client*>(arg);
  self->cleanup_hook_ = false;
  self->closed_ = true;
  self->link_->Stop();
}

napi_value Client::Rejected(napi_env env, napi_value error) {
  napi_deferred d;
  napi_value promise;
  napi_create_promise(env, &d, &promise);
  napi_reject_deferred(env, d, error);
  return promise;
}

Napi::Value Client::Route(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (closed_) {
    return Napi::Value(env, Rejected(env, MakeForkError(env, kClosed, "the client is closed")));
  }
  const auto ack = static_cast<AckLevel>(info[4].As<Napi::Number>().Int32Value());
  const uint32_t timeout_ms = info[5].As<Napi::Number>().Uint32Value();
  if (link_->in_flight() >= max_in_flight_) {
    return Napi::Value(
        env, Rejected(env, MakeForkError(env, kBackpressure,
                                         "too many events in flight (maxInFlight " +
                                             std::to_string(max_in_flight_) +
                                             "): forkd is slow or not reachable at " +
                                             link_->endpoint())));
  }
  const uint32_t max_event = link_->max_event();
  encoder_.set_max_size(max_event);
  EncodeError err;
  if (!encoder_.EncodeEvent(env, info[0], info[1], info[2], info[3], &scratch_, &err)) {
    napi_value fields;
    napi_create_object(env, &fields);
    if (std::string_view(err.root) == "payload") {
      napi_set_named_property(env, fields, "path", NewString(env, err.path));
    } else if (std::string_view(err.root) == "options") {
      napi_set_named_property(env, fields, "option", NewString(env, err.path));
    }
    if (err.cause != nullptr) {
      napi_value cause;
      napi_get_reference_value(env, err.cause, &cause);
      napi_set_named_property(env, fields, "cause", cause);
      napi_delete_reference(env, err.cause);
    }
    return Napi::Value(env, Rejected(env, MakeForkError(env, err.code, err.message, fields)));
  }
  return Napi::Value(env, Queue(env, scratch_.data(), scratch_.size(), encoder_.meta_end(), ack, timeout_ms));
}

Napi::Value Client::RouteEncoded(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (closed_) {
    return Napi::Value(env, Rejected(env, MakeForkError(env, kClosed, "the client is closed")));
  }
  void* data = nullptr;
  size_t buffer_size = 0;
  napi_get_buffer_info(env, info[0], &data, &buffer_size);
  uint32_t size = 0, meta_end = 0, ack = 0, timeout_ms = 0;
  napi_get_value_uint32(env, info[1], &size);
  napi_get_value_uint32(env, info[2], &meta_end);
  napi_get_value_uint32(env, info[3], &ack);
  napi_get_value_uint32(env, info[4], &timeout_ms);
  // Past forkd's max_event (or anything odd): the C++ encoder redoes it and
  // words the error. The caller sees undefined.
  if (size > link_->max_event() || size > buffer_size || meta_end == 0 || meta_end > size) {
    return info.Env().Undefined();
  }
  if (link_->in_flight() >= max_in_flight_) {
    return Napi::Value(
        env, Rejected(env, MakeForkError(env, kBackpressure,
                                         "too many events in flight (maxInFlight " +
                                             std::to_string(max_in_flight_) +
                                             "): forkd is slow or not reachable at " +
                                             link_->endpoint())));
  }
  return Napi::Value(env, Queue(env, static_cast<const uint8_t*>(data), size, meta_end,
                                static_cast<AckLevel>(ack), timeout_ms));
}

napi_value Client::Queue(napi_env env, const uint8_t* event, size_t size, size_t meta_end,
                         AckLevel ack, uint32_t timeout_ms) {
  if (link_->in_flight_bytes() + size > max_in_flight_bytes_) {
    return Rejected(env, MakeForkError(env, kBackpressure,
                                       "too many bytes in flight (maxInFlightBytes " +
                                           std::to_string(max_in_flight_bytes_) +
                                           "): forkd is slow or not reachable at " +
                                           link_->endpoint()));
  }
  // Queued is all 'none' asks for: no promise, the caller gets the sequence
  // number and makes the receipt itself (a JS object literal costs a
  // fraction of one built here). The event is still tracked until acked.
  napi_deferred deferred = nullptr;
  napi_value result;
  if (ack != AckLevel::kNone) napi_create_promise(env, &deferred, &result);
  const uint64_t seq =
      link_->Enqueue(event, static_cast<uint32_t>(size),
                     ack == AckLevel::kDelivered ? wire::kFlagWantDelivered : 0,
                     Link::NowMs() + timeout_ms);
  Pending& p = pending_.emplace_back();
  p.deferred = deferred;
  p.timeout_ms = timeout_ms;
  p.ack = ack;
  p.meta.assign(reinterpret_cast<const char*>(event) + 1, meta_end - 1);
  if (pending_count_++ == 0) SetBusy(env, true);
  if (deferred == nullptr) napi_create_double(env, static_cast<double>(seq), &result);
  return result;
}

Napi::Value Client::RouteMany(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (closed_) {
    return Napi::Value(env, Rejected(env, MakeForkError(env, kClosed, "the client is closed")));
  }
  napi_value payloads = info[0];
  napi_value keys = info[2].IsArray() ? static_cast<napi_value>(info[2]) : nullptr;
  const auto ack = static_cast<AckLevel>(info[4].As<Napi::Number>().Int32Value());
  const uint32_t timeout_ms = info[5].As<Napi::Number>().Uint32Value();
  uint32_t n = 0;
  napi_get_array_length(env, payloads, &n);
  // Every event encoded first: one that cannot be sends none.
  encoder_.set_max_size(link_->max_event());
  many_.clear();
  many_ends_.clear();
  many_meta_.clear();
  for (uint32_t i = 0; i < n; ++i) {
    napi_value payload, key = nullptr;
    napi_get_element(env, payloads, i, &payload);
    if (keys != nullptr) napi_get_element(env, keys, i, &key);
    EncodeError err;
    if (!encoder_.EncodeEvent(env, payload, info[1], key != nullptr ? key : static_cast<napi_value>(info[2]),
                              info[3], &scratch_, &err)) {
      napi_value fields;
      napi_create_object(env, &fields);
      napi_value index;
      napi_create_uint32(env, i, &index);
      napi_set_named_property(env, fields, "index", index);
      // "payload.items[3]: ..." becomes "payloads[7].items[3]: ...".
      std::string message = err.message;
      const std::string at = "payloads[" + std::to_string(i) + "]";
      if (std::string_view(err.root) == "payload") {
        napi_set_named_property(env, fields, "path", NewString(env, err.path));
        if (message.rfind("payload", 0) == 0) {
          message.replace(0, 7, at);
        } else {
          message = at + ": " + message;
        }
      } else {
        if (std::string_view(err.root) == "options") {
          napi_set_named_property(env, fields, "option", NewString(env, err.path));
        }
        message = at + ": " + message;
      }
      if (err.cause != nullptr) {
        napi_value cause;
        napi_get_reference_value(env, err.cause, &cause);
        napi_set_named_property(env, fields, "cause", cause);
        napi_delete_reference(env, err.cause);
      }
      return Napi::Value(env, Rejected(env, MakeForkError(env, err.code, "routeMany: " + message, fields)));
    }
    many_.Append(scratch_.data(), scratch_.size());
    many_ends_.push_back(static_cast<uint32_t>(many_.size()));
    many_meta_.push_back(static_cast<uint32_t>(encoder_.meta_end()));
  }
  napi_value promise = QueueMany(env, many_.data(), many_.size(), n, many_ends_.data(), many_meta_.data(),
                                 ack, timeout_ms);
  if (many_.capacity() > (4u << 20)) many_ = wire::Buffer();  // a huge call keeps no huge buffer
  return Napi::Value(env, promise);
}

Napi::Value Client::RouteManyEncoded(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (closed_) {
    return Napi::Value(env, Rejected(env, MakeForkError(env, kClosed, "the client is closed")));
  }
  void* data = nullptr;
  size_t buffer_size = 0;
  napi_get_buffer_info(env, info[0], &data, &buffer_size);
  uint32_t n = 0, ack = 0, timeout_ms = 0;
  napi_get_value_uint32(env, info[1], &n);
  void* ends = nullptr;
  void* metas = nullptr;
  size_t ends_len = 0, metas_len = 0;
  napi_typedarray_type type;
  napi_get_typedarray_info(env, info[2], &type, &ends_len, &ends, nullptr, nullptr);
  napi_get_typedarray_info(env, info[3], &type, &metas_len, &metas, nullptr, nullptr);
  napi_get_value_uint32(env, info[4], &ack);
  napi_get_value_uint32(env, info[5], &timeout_ms);
  const auto* end = static_cast<const uint32_t*>(ends);
  const auto* meta = static_cast<const uint32_t*>(metas);
  if (n > ends_len || n > metas_len) return info.Env().Undefined();
  // Any event past forkd's max_event (or anything odd): the C++ path redoes
  // the call and words the error.
  uint32_t begin = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (end[i] <= begin || end[i] > buffer_size || end[i] - begin > link_->max_event() || meta[i] == 0 ||
        meta[i] > end[i] - begin) {
      return info.Env().Undefined();
    }
    begin = end[i];
  }
  return Napi::Value(env, QueueMany(env, static_cast<const uint8_t*>(data), n == 0 ? 0 : end[n - 1], n,
                                    end, meta, static_cast<AckLevel>(ack), timeout_ms));
}

napi_value Client::QueueMany(napi_env env, const uint8_t* data, size_t bytes, uint32_t n,
                             const uint32_t* ends, const uint32_t* metas, AckLevel ack,
                             uint32_t timeout_ms) {
  if (link_->in_flight() + n > max_in_flight_) {
    return Rejected(env, MakeForkError(env, kBackpressure,
                                       "routeMany of " + std::to_string(n) +
                                           " events: too many events in flight (maxInFlight " +
                                           std::to_string(max_in_flight_) + ", " +
                                           std::to_string(link_->in_flight()) +
                                           " in flight): forkd is slow or not reachable at " +
                                           link_->endpoint()));
  }
  if (link_->in_flight_bytes() + bytes > max_in_flight_bytes_) {
    return Rejected(env, MakeForkError(env, kBackpressure,
                                       "routeMany of " + std::to_string(n) + " events (" +
                                           std::to_string(bytes) +
                                           " bytes): too many bytes in flight (maxInFlightBytes " +
                                           std::to_string(max_in_flight_bytes_) +
                                           "): forkd is slow or not reachable at " +
                                           link_->endpoint()));
  }
  napi_deferred deferred;
  napi_value promise, results;
  napi_create_promise(env, &deferred, &promise);
  napi_create_array_with_length(env, n, &results);
  if (n == 0) {
    napi_resolve_deferred(env, deferred, results);
    return promise;
  }
  uint32_t id = next_group_++;
  if (next_group_ == 0) next_group_ = 1;
  Group* g = nullptr;
  if (ack != AckLevel::kNone) {
    g = &groups_[id];
    g->deferred = deferred;
    napi_create_reference(env, results, 1, &g->results);
    g->size = g->remaining = n;
  }
  const uint8_t flags = ack == AckLevel::kDelivered ? wire::kFlagWantDelivered : 0;
  const int64_t deadline = Link::NowMs() + timeout_ms;
  ReceiptStrings rs;  // ack 'none': receipts made here, their keys made once
  uint32_t begin = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t* event = data + begin;
    const uint64_t seq = link_->Enqueue(event, ends[i] - begin, flags, deadline);
    Pending& p = pending_.emplace_back();
    p.timeout_ms = timeout_ms;
    p.ack = ack;
    p.meta.assign(reinterpret_cast<const char*>(event) + 1, metas[i] - 1);
    if (pending_count_++ == 0) SetBusy(env, true);
    if (g != nullptr) {
      p.group = id;
      p.index = i;
    } else {
      // ack 'none': queued is all it asks for; each event is still tracked.
      napi_set_element(env, results, i, MakeReceipt(env, seq, p, AckLevel::kNone, nullptr, false, &rs));
    }
    begin = ends[i];
  }
  if (g == nullptr) napi_resolve_deferred(env, deferred, results);
  return promise;
}

void Client::Settle(napi_env env, Pending& p, napi_value value, bool ok) {
  if (p.group != 0) {
    SettleGroupMember(env, p, value, ok);
  } else if (p.deferred != nullptr) {
    if (ok) {
      napi_resolve_deferred(env, p.deferred, value);
    } else {
      napi_reject_deferred(env, p.deferred, value);
    }
  }
  p.deferred = nullptr;
  p.group = 0;
}

void Client::SettleGroupMember(napi_env env, const Pending& p, napi_value value, bool ok) {
  auto it = groups_.find(p.group);
  if (it == groups_.end()) return;
  Group& g = it->second;
  napi_value results;
  napi_get_reference_value(env, g.results, &results);
  napi_set_element(env, results, p.index, value);
  if (!ok && g.first_error == nullptr) {
    napi_create_reference(env, value, 1, &g.first_error);
    g.first_failed = p.index;
  }
  if (--g.remaining != 0) return;
  if (g.first_error == nullptr) {
    napi_resolve_deferred(env, g.deferred, results);
  } else {
    // The first failure, naming its place, with what became of every event.
    napi_value first, error, index, message;
    napi_get_reference_value(env, g.first_error, &first);
    napi_create_object(env, &error);
    napi_value fields;
    napi_create_object(env, &fields);
    napi_create_uint32(env, g.first_failed, &index);
    napi_set_named_property(env, fields, "index", index);
    napi_set_named_property(env, fields, "results", results);
    napi_set_named_property(env, fields, "cause", first);
    napi_value code_value;
    napi_get_named_property(env, first, "code", &code_value);
    napi_get_named_property(env, first, "message", &message);
    size_t len = 0;
    napi_get_value_string_utf8(env, message, nullptr, 0, &len);
    std::string text(len, '\0');
    napi_get_value_string_utf8(env, message, text.data(), len + 1, &len);
    size_t code_len = 0;
    napi_get_value_string_utf8(env, code_value, nullptr, 0, &code_len);
    std::string code(code_len, '\0');
    napi_get_value_string_utf8(env, code_value, code.data(), code_len + 1, &code_len);
    uint32_t failed = 0;
    for (uint32_t i = 0; i < g.size; ++i) {
      napi_value r;
      napi_get_element(env, results, i, &r);
      bool is_error = false;
      napi_is_error(env, r, &is_error);
      failed += is_error ? 1 : 0;
    }
    const std::string summary = "routeMany: " + std::to_string(failed) + " of " + std::to_string(g.size) +
                                " events failed; payloads[" + std::to_string(g.first_failed) + "]: " + text;
    napi_reject_deferred(env, g.deferred, MakeForkError(env, code.c_str(), summary, fields));
    napi_delete_reference(env, g.first_error);
  }
  napi_delete_reference(env, g.results);
  groups_.erase(it);
}

Napi::Value Client::Kick(const Napi::CallbackInfo& info) {
  if (!closed_) link_->Kick();
  return info.Env().Undefined();
}

std::string Client::EventId(uint64_t seq, const Pending& p) const {
  wire::Reader r(reinterpret_cast<const uint8_t*>(p.meta.data()), p.meta.size());
  r.Skip();  // destinations
  wire::Value key = r.Next();
  if (key.kind == wire::Kind::kStr) return std::string(key.str());
  char digits[24];
  auto res = std::to_chars(digits, digits + sizeof digits, seq);
  std::string id = id_prefix_;
  id.append(digits, static_cast<size_t>(res.ptr - digits));
  return id;
}

bool Client::LoadReceiptStrings(napi_env env, ReceiptStrings* rs) {
  if (receipt_keys_ == nullptr) return false;
  napi_value keys;
  if (napi_get_reference_value(env, receipt_keys_, &keys) != napi_ok || keys == nullptr) return false;
  napi_value* slots[] = {&rs->id, &rs->ack, &rs->destinations, &rs->acks[0], &rs->acks[1], &rs->acks[2]};
  for (uint32_t i = 0; i < 6; ++i) {
    if (napi_get_element(env, keys, i, slots[i]) != napi_ok) return false;
  }
  rs->meta.clear();
  rs->names.clear();
  rs->loaded = true;
  return true;
}

bool Client::BindReceiptRun(napi_env env, napi_value spec) {
  napi_value fn, arrays[3];
  napi_valuetype type;
  if (napi_get_element(env, spec, 0, &fn) != napi_ok || napi_typeof(env, fn, &type) != napi_ok ||
      type != napi_function) {
    return false;
  }
  const napi_typedarray_type want[3] = {napi_float64_array, napi_uint8_array, napi_uint16_array};
  void* data[3] = {};
  size_t length[3] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    bool is_typed = false;
    napi_typedarray_type t;
    napi_value buffer;
    size_t offset;
    if (napi_get_element(env, spec, i + 1, &arrays[i]) != napi_ok ||
        napi_is_typedarray(env, arrays[i], &is_typed) != napi_ok || !is_typed ||
        napi_get_typedarray_info(env, arrays[i], &t, &length[i], &data[i], &buffer, &offset) !=
            napi_ok ||
        t != want[i]) {
      return false;
    }
  }
  run_.capacity = static_cast<uint32_t>(std::min({length[0], length[1], length[2], size_t{65535}}));
  if (run_.capacity == 0) return false;
  run_.seqs = static_cast<double*>(data[0]);
  run_.levels = static_cast<uint8_t*>(data[1]);
  run_.lists = static_cast<uint16_t*>(data[2]);
  napi_create_reference(env, fn, 1, &run_.factory);
  napi_create_reference(env, spec, 1, &run_.arrays);
  run_.members.reserve(run_.capacity);
  return true;
}

bool Client::AddToRun(napi_env env, uint64_t seq, Pending& p, AckLevel reached,
                      const CompletionDetail* detail, bool outcomes) {
  if (run_.factory == nullptr || outcomes || p.group != 0 || p.deferred == nullptr) return false;
  const std::vector<std::string>* routed =
      detail != nullptr && detail->has_routed ? &detail->routed : nullptr;
  // meta: the destinations (an array of names; a templated one is itself
  // an array), then the key, nil when there is none.
  const auto* begin = reinterpret_cast<const uint8_t*>(p.meta.data());
  wire::Reader r(begin, p.meta.size());
  const wire::Value d = r.Next();
  const uint32_t n = d.kind == wire::Kind::kArray ? d.len : 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (routed == nullptr && r.Peek().kind != wire::Kind::kStr) return false;
    r.Skip();
  }
  const size_t dest_size = static_cast<size_t>(r.pos() - begin);
  if (dest_size >= p.meta.size()) return false;
  const wire::Value key = r.Next();
  if (key.kind != wire::Kind::kNil && key.kind != wire::Kind::kStr) return false;
  if (run_.members.size() == run_.capacity) FlushRun(env);
  // The run's lists, each made once for consecutive receipts that share it:
  // the caller's (matched by their bytes) or forkd's routed one (matched by
  // its names; its `metas` entry is empty, which no msgpack value is).
  if (routed != nullptr) {
    if (run_.names.empty() || !run_.metas.back().empty() || run_.names.back() != *routed) {
      run_.metas.emplace_back();
      run_.names.push_back(*routed);
    }
  } else {
    const std::string_view dest_bytes(p.meta.data(), dest_size);
    if (run_.metas.empty() || run_.metas.back() != dest_bytes) {
      run_.metas.emplace_back(dest_bytes);
      std::vector<std::string>& names = run_.names.emplace_back();
      wire::Reader nr(begin, dest_size);
      nr.Next();
      for (uint32_t i = 0; i < n; ++i) names.emplace_back(nr.Next().str());
    }
  }
  const size_t at = run_.members.size();
  run_.seqs[at] = static_cast<double>(seq);
  run_.levels[at] = static_cast<uint8_t>(reached);
  run_.lists[at] = static_cast<uint16_t>(run_.metas.size() - 1);
  if (key.kind == wire::Kind::kStr) run_.keys.emplace_back(static_cast<uint32_t>(at), key.str());
  run_.members.push_back(&p);
  run_.details.push_back(detail);
  return true;
}

void Client::FlushRun(napi_env env) {
  if (run_.members.empty()) return;
  const uint32_t n = static_cast<uint32_t>(run_.members.size());
  napi_value fn, global, lists, receipts = nullptr;
  napi_get_reference_value(env, run_.factory, &fn);
  napi_get_global(env, &global);
  napi_create_array_with_length(env, run_.names.size(), &lists);
  for (size_t l = 0; l < run_.names.size(); ++l) {
    napi_value list;
    napi_create_array_with_length(env, run_.names[l].size(), &list);
    for (size_t i = 0; i < run_.names[l].size(); ++i) {
      napi_set_element(env, list, static_cast<uint32_t>(i), NewString(env, run_.names[l][i]));
    }
    napi_set_element(env, lists, static_cast<uint32_t>(l), list);
  }
  // The idempotency keys, which are those receipts' ids: an array with a
  // key at each keyed member's place, or undefined when none has one.
  napi_value args[3];
  napi_create_uint32(env, n, &args[0]);
  args[1] = lists;
  if (run_.keys.empty()) {
    napi_get_undefined(env, &args[2]);
  } else {
    napi_create_array_with_length(env, n, &args[2]);
    for (const auto& [at, key] : run_.keys) napi_set_element(env, args[2], at, NewString(env, key));
  }
  bool made = napi_call_function(env, global, fn, 3, args, &receipts) == napi_ok;
  if (!made) {
    // Never expected; the receipts are then made here, as before.
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  for (uint32_t i = 0; i < n; ++i) {
    Pending& p = *run_.members[i];
    napi_value receipt = nullptr;
    if (!made || napi_get_element(env, receipts, i, &receipt) != napi_ok) {
      const auto reached = static_cast<AckLevel>(run_.levels[i]);
      receipt = MakeReceipt(env, static_cast<uint64_t>(run_.seqs[i]), p, reached, run_.details[i],
                            false, &receipt_strings_);
    }
    Settle(env, p, receipt, true);
    p.meta.clear();
  }
  run_.members.clear();
  run_.details.clear();
  run_.metas.clear();
  run_.names.clear();
  run_.keys.clear();
}

napi_value Client::Destinations(napi_env env, const Pending& p, const CompletionDetail* detail,
                                ReceiptStrings* rs) {
  napi_value dests;
  const std::vector<std::string>* routed =
      detail != nullptr && detail->has_routed ? &detail->routed : nullptr;
  if (routed == nullptr && rs != nullptr) {
    // Each receipt gets its own array; the names in it are made once for a
    // run of events to the same destinations.
    // meta: the destinations, then the key (which differs from event to
    // event); the names are the destinations'.
    const auto* begin = reinterpret_cast<const uint8_t*>(p.meta.data());
    wire::Reader r(begin, p.meta.size());
    const wire::Value d = r.Next();
    const uint32_t n = d.kind == wire::Kind::kArray ? d.len : 0;
    for (uint32_t i = 0; i < n; ++i) r.Next();
    // Never equal to the empty meta LoadReceiptStrings leaves: a msgpack
    // value is at least a byte.
    const std::string_view dest_bytes(p.meta.data(), static_cast<size_t>(r.pos() - begin));
    if (rs->meta != dest_bytes) {
      rs->meta.assign(dest_bytes);
      rs->names.clear();
      wire::Reader names(begin, p.meta.size());
      names.Next();
      for (uint32_t i = 0; i < n; ++i) rs->names.push_back(NewString(env, names.Next().str()));
    }
    napi_create_array_with_length(env, rs->names.size(), &dests);
    for (size_t i = 0; i < rs->names.size(); ++i) {
      napi_set_element(env, dests, static_cast<uint32_t>(i), rs->names[i]);
    }
    return dests;
  }
  wire::Reader r(reinterpret_cast<const uint8_t*>(p.meta.data()), p.meta.size());
  wire::Value d = r.Next();
  if (routed != nullptr) {
    // forkd's routes chose or added destinations: its list is the truth.
    napi_create_array_with_length(env, routed->size(), &dests);
    for (size_t i = 0; i < routed->size(); ++i) {
      napi_set_element(env, dests, static_cast<uint32_t>(i), NewString(env, (*routed)[i]));
    }
  } else if (d.kind == wire::Kind::kArray) {
    napi_create_array_with_length(env, d.len, &dests);
    for (uint32_t i = 0; i < d.len; ++i) {
      wire::Value name = r.Next();
      napi_set_element(env, dests, i, NewString(env, name.str()));
    }
  } else {
    napi_create_array(env, &dests);
  }
  return dests;
}

napi_value Client::MakeReceipt(napi_env env, uint64_t seq, const Pending& p, AckLevel reached,
                               const CompletionDetail* detail, bool outcomes, ReceiptStrings* rs) {
  napi_value receipt;
  napi_create_object(env, &receipt);
  const std::string id = EventId(seq, p);
  napi_value dests;
  if (rs != nullptr && (rs->loaded || LoadReceiptStrings(env, rs))) {
    napi_set_property(env, receipt, rs->id, NewString(env, id));
    napi_set_property(env, receipt, rs->ack, rs->acks[static_cast<int>(reached)]);
    dests = Destinations(env, p, detail, rs);
    napi_set_property(env, receipt, rs->destinations, dests);
  } else {
    napi_set_named_property(env, receipt, "id", NewString(env, id));
    napi_set_named_property(env, receipt, "ack", NewString(env, AckName(reached)));
    dests = Destinations(env, p, detail);
    napi_set_named_property(env, receipt, "destinations", dests);
  }
  if (outcomes) {
    napi_set_named_property(env, receipt, "outcomes", OutcomesObject(env, dests, detail));
  }
  return receipt;
}

napi_value Client::MakeSettleError(napi_env env, uint64_t seq, const Pending& p,
                                   const Completion& c, const CompletionBatch& batch) {
  const std::string timeout = std::to_string(p.timeout_ms);
  const char* code = kTimeout;
  std::string message;
  switch (c.outcome) {
    case Outcome::kRejected: {
      const CompletionDetail& d = batch.details[static_cast<size_t>(c.detail)];
      code = nullptr;
      for (const char* known : {kInvalidPayload, kUnknownDestination, kTooLarge, kRejected,
                                kBackpressure, kUnavailable, kTimeout}) {
        if (d.code == known) code = known;
      }
      if (code == nullptr) code = kRejected;
      message = d.message.empty() ? std::string("forkd rejected the event") : d.message;
      break;
    }
    case Outcome::kDeliveryTimedOut:
      message = "forkd accepted the event, but not every destination confirmed delivery within " +
                timeout + " ms";
      break;
    case Outcome::kUnavailable:
      code = kUnavailable;
      message = "forkd is not reachable at " + link_->endpoint() + " (no connection within " +
                timeout + " ms)";
      if (c.detail >= 0) message += ": " + batch.details[static_cast<size_t>(c.detail)].message;
      break;
    default:
      message = "forkd did not acknowledge the event within " + timeout + " ms";
      break;
  }
  napi_value fields;
  napi_create_object(env, &fields);
  napi_set_named_property(env, fields, "id", NewString(env, EventId(seq, p)));
  if (c.outcomes && c.detail >= 0) {
    // A destination did not store the event: name the first, say why, and
    // what became of it everywhere.
    const CompletionDetail& detail = batch.details[static_cast<size_t>(c.detail)];
    for (const wire::DestinationOutcome& o : detail.outcomes) {
      if (o.kind == wire::OutcomeKind::kFiltered) continue;
      napi_set_named_property(env, fields, "destination", NewString(env, o.destination));
      const std::string reason = o.reason.empty() ? wire::OutcomeName(o.kind) : o.reason;
      napi_set_named_property(env, fields, "reason", NewString(env, reason));
      break;
    }
    napi_set_named_property(env, fields, "outcomes",
                            OutcomesObject(env, Destinations(env, p, &detail), &detail));
  }
  // Name the destination an unknown-destination rejection is about.
  wire::Reader r(reinterpret_cast<const uint8_t*>(p.meta.data()), p.meta.size());
  wire::Value d = r.Next();
  if (d.kind == wire::Kind::kArray && code == kUnknownDestination) {
    // Prefer a name the message quotes ("unknown destination 'x' (configured:
    // ...)"), then any name it mentions, then the first.
    std::string_view first, quoted, mentioned;
    for (uint32_t i = 0; i < d.len; ++i) {
      std::string_view name = r.Next().str();
      if (i == 0) first = name;
      if (quoted.empty() && message.find("'" + std::string(name) + "'") != std::string::npos) {
        quoted = name;
      }
      if (mentioned.empty() && message.find(name) != std::string::npos) mentioned = name;
    }
    const std::string_view named = !quoted.empty() ? quoted : mentioned;
    napi_set_named_property(env, fields, "destination",
                            NewString(env, named.empty() ? first : named));
  }
  return MakeForkError(env, code, message, fields);
}

void Client::DrainCompletions(napi_env env) {
  link_->TakeCompletions(&batch_);
  if (batch_.empty()) return;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  receipt_strings_.loaded = false;  // its values live in this scope only
  for (const Completion& c : batch_.items) {
    if (c.seq < pending_base_ || c.seq - pending_base_ >= pending_.size()) continue;
    Pending& p = pending_[c.seq - pending_base_];
    if (p.done) continue;
    p.done = true;
    --pending_count_;
    if (p.deferred == nullptr && p.group == 0) continue;  // ack 'none': resolved when queued
    if (c.outcome == Outcome::kAccepted || c.outcome == Outcome::kDelivered) {
      const CompletionDetail* detail =
          c.detail >= 0 ? &batch_.details[static_cast<size_t>(c.detail)] : nullptr;
      const AckLevel reached =
          c.outcome == Outcome::kDelivered ? AckLevel::kDelivered : AckLevel::kAccepted;
      if (AddToRun(env, c.seq, p, reached, detail, c.outcomes)) continue;
      FlushRun(env);  // promises settle in the order their events completed
      Settle(env, p, MakeReceipt(env, c.seq, p, reached, detail, c.outcomes, &receipt_strings_),
             true);
    } else {
      FlushRun(env);
      Settle(env, p, MakeSettleError(env, c.seq, p, c, batch_), false);
    }
    p.meta.clear();
  }
  FlushRun(env);
  while (!pending_.empty() && pending_.front().done) {
    pending_.pop_front();
    ++pending_base_;
  }
  batch_.clear();
  receipt_strings_.loaded = false;
  if (pending_count_ == 0) {
    SetBusy(env, false);
    if (!on_drain_.IsEmpty()) on_drain_.Call({});
  }
  napi_close_handle_scope(env, scope);
}

void Client::SetBusy(napi_env env, bool busy) {
  if (busy == busy_) return;
  busy_ = busy;
  if (busy) {
    if (tsfn_state_ != nullptr) tsfn_.Ref(env);
    Ref();
  } else {
    if (tsfn_state_ != nullptr) tsfn_.Unref(env);
    Unref();
  }
}

void Client::Shutdown(napi_env env) {
  closed_ = true;
  link_->Stop();
  DrainCompletions(env);  // what the I/O thread settled last
  for (size_t i = 0; i < pending_.size(); ++i) {
    Pending& p = pending_[i];
    if (p.done) continue;
    p.done = true;
    if (p.deferred == nullptr && p.group == 0) continue;
    napi_value fields;
    napi_create_object(env, &fields);
    napi_set_named_property(env, fields, "id", NewString(env, EventId(pending_base_ + i, p)));
    Settle(env, p,
           MakeForkError(env, kClosed, "the client was closed before forkd acknowledged the event",
                         fields),
           false);
  }
  pending_base_ += pending_.size();
  pending_.clear();
  pending_count_ = 0;
  SetBusy(env, false);
  if (cleanup_hook_) {
    napi_remove_env_cleanup_hook(env, &Client::OnEnvCleanup, this);
    cleanup_hook_ = false;
  }
  if (tsfn_state_ != nullptr) {
    tsfn_state_->owner = nullptr;
    tsfn_state_ = nullptr;
    tsfn_.Abort();
  }
  on_drain_.Reset();
}

Napi::Value Client::Close(const Napi::CallbackInfo& info) {
  if (!shut_down_) {
    shut_down_ = true;
    Shutdown(info.Env());
  }
  return info.Env().Undefined();
}

Napi::Value Client::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const LinkStats s = link_->Stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("sent", Napi::Number::New(env, static_cast<double>(s.sent)));
  o.Set("acked", Napi::Number::New(env, static_cast<double>(s.acked)));
  o.Set("delivered", Napi::Number::New(env, static_cast<double>(s.delivered)));
  o.Set("nacked", Napi::Number::New(env, static_cast<double>(s.nacked)));
  o.Set("timedOut", Napi::Number::New(env, static_cast<double>(s.timed_out)));
  o.Set("inFlight", Napi::Number::New(env, static_cast<double>(s.in_flight)));
  o.Set("inFlightBytes", Napi::Number::New(env, static_cast<double>(s.in_flight_bytes)));
  o.Set("connected", Napi::Boolean::New(env, s.connected && !closed_));
  o.Set("reconnects", Napi::Number::New(env, static_cast<double>(s.reconnects)));
  o.Set("resent", Napi::Number::New(env, static_cast<double>(s.resent)));
  return o;
}

Napi::Value Client::PendingCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pending_count_));
}

Napi::Value Client::SetDrainCallback(const Napi::CallbackInfo& info) {
  if (info[0].IsFunction()) {
    on_drain_ = Napi::Persistent(info[0].As<Napi::Function>());
  } else {
    on_drain_.Reset();
  }
  return info.Env().Undefined();
}

Napi::Value Client::GetClientId(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), id_prefix_.substr(0, wire::kClientIdSize * 2));
}

}  // namespace fork_router
