#include "wire/codec.h"

#include <algorithm>
#include <cstdio>

#include "wire/hex.h"

namespace forkd::wire {
namespace {

void PutHeader(Buffer* out, FrameType t) {
  out->Push(kProtocolVersion);
  out->Push(static_cast<uint8_t>(t));
}

// Control frames are small; their msgpack bodies get generous fixed limits.
constexpr Limits kControlLimits{8, 1u << 16, 1u << 16};

// Checks that a decoder was given a whole header of its own type: decoders
// take untrusted bytes and must not trust the caller to have peeked.
bool CheckHeader(const uint8_t* data, size_t size, FrameType want, const char* what,
                 std::string* error) {
  FrameType type;
  if (!PeekHeader(data, size, &type, error)) {
    *error = std::string(what) + ": " + *error;
    return false;
  }
  if (type != want) {
    *error = std::string(what) + ": frame type " + std::to_string(static_cast<int>(type)) +
             " is not a " + what + " frame";
    return false;
  }
  return true;
}

// The body must be exactly one msgpack value: bytes after it are an error.
bool CheckBody(const uint8_t* data, size_t size, const char* what, std::string* error) {
  size_t used = 0;
  CheckResult r = CheckValue(data, size, kControlLimits, &used);
  if (!r) {
    *error = std::string(what) + ": " + r.reason + " at byte " + std::to_string(r.offset);
    return false;
  }
  if (used != size) {
    *error = std::string(what) + ": " + std::to_string(size - used) +
             " trailing bytes after the body";
    return false;
  }
  return true;
}

bool ExpectMap(Reader& r, const char* what, uint32_t* n, std::string* error) {
  Value v = r.Next();
  if (v.kind != Kind::kMap) {
    *error = std::string(what) + ": body must be a map";
    return false;
  }
  *n = v.len;
  return true;
}

bool ReadUint(Reader& r, uint64_t* out) {
  Value v = r.Next();
  if (v.kind == Kind::kUint) {
    *out = v.u;
    return true;
  }
  return false;
}

void EncodeRanges(const std::vector<SeqRange>& ranges, Buffer* out) {
  uint8_t* p = out->Grow(4 + ranges.size() * 16);
  PutU32(p, static_cast<uint32_t>(ranges.size()));
  p += 4;
  for (const SeqRange& r : ranges) {
    PutU64(p, r.first);
    PutU64(p + 8, r.last);
    p += 16;
  }
  out->Commit(4 + ranges.size() * 16);
}

// Reads "u32 n, n x (u64, u64)"; returns bytes used or 0 on error.
size_t DecodeRanges(const uint8_t* p, size_t size, std::vector<SeqRange>* out, std::string* error,
                    const char* what) {
  if (size < 4) {
    *error = std::string(what) + ": truncated range count";
    return 0;
  }
  uint32_t n = GetU32(p);
  if ((size - 4) / 16 < n) {
    *error = std::string(what) + ": range count " + std::to_string(n) + " exceeds frame";
    return 0;
  }
  out->clear();
  out->reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    SeqRange r{GetU64(p + 4 + 16 * i), GetU64(p + 12 + 16 * i)};
    if (r.last < r.first) {
      *error = std::string(what) + ": range with last < first";
      return 0;
    }
    out->push_back(r);
  }
  return 4 + 16 * static_cast<size_t>(n);
}

}  // namespace

bool PeekHeader(const uint8_t* data, size_t size, FrameType* type, std::string* error) {
  if (size < kHeaderSize) {
    *error = "frame shorter than its 2-byte header";
    return false;
  }
  if (data[0] != kProtocolVersion) {
    *error = "unsupported protocol version " + std::to_string(data[0]) + " (this side speaks " +
             std::to_string(kProtocolVersion) + ")";
    return false;
  }
  if (data[1] < static_cast<uint8_t>(FrameType::kHello) ||
      data[1] > static_cast<uint8_t>(FrameType::kDelivered)) {
    *error = "unknown frame type " + std::to_string(data[1]);
    return false;
  }
  *type = static_cast<FrameType>(data[1]);
  return true;
}

void EncodeHello(const Hello& h, Buffer* out) {
  PutHeader(out, FrameType::kHello);
  Writer w(out);
  w.MapHeader(3 + (h.outcomes ? 1 : 0) + (h.has_session ? 1 : 0));
  w.Str("client");
  w.Bin(h.client_id, kClientIdSize);
  w.Str("protocol");
  w.Uint(h.protocol);
  w.Str("agent");
  w.Str(h.agent);
  if (h.outcomes) {
    w.Str("outcomes");
    w.Bool(true);
  }
  if (h.has_session) {
    w.Str("session");
    w.Bin(h.session, kClientIdSize);
  }
}

bool DecodeHello(const uint8_t* data, size_t size, Hello* out, std::string* error) {
  if (!CheckHeader(data, size, FrameType::kHello, "hello", error)) return false;
  data += kHeaderSize;
  size -= kHeaderSize;
  if (!CheckBody(data, size, "hello", error)) return false;
  Reader r(data, size);
  uint32_t n;
  if (!ExpectMap(r, "hello", &n, error)) return false;
  out->outcomes = false;  // absent: a client that reads no outcomes
  out->has_session = false;
  bool have_id = false;
  for (uint32_t i = 0; i < n; ++i) {
    Value k = r.Next();
    if (k.kind == Kind::kStr && k.str() == "client") {
      Value v = r.Next();
      if (v.kind != Kind::kBin || v.len != kClientIdSize) {
        *error = "hello: client id must be 16 bytes of bin";
        return false;
      }
      std::memcpy(out->client_id, v.ptr, kClientIdSize);
      have_id = true;
    } else if (k.kind == Kind::kStr && k.str() == "protocol") {
      uint64_t p;
      if (!ReadUint(r, &p)) {
        *error = "hello: protocol must be an unsigned integer";
        return false;
      }
      out->protocol = static_cast<uint32_t>(p);
    } else if (k.kind == Kind::kStr && k.str() == "agent") {
      Value v = r.Next();
      if (v.kind == Kind::kStr) out->agent.assign(v.str());
    } else if (k.kind == Kind::kStr && k.str() == "outcomes") {
      Value v = r.Next();
      if (v.kind != Kind::kBool) {
        *error = "hello: outcomes must be a boolean";
        return false;
      }
      out->outcomes = v.b;
    } else if (k.kind == Kind::kStr && k.str() == "session") {
      Value v = r.Next();
      if (v.kind != Kind::kBin || v.len != kClientIdSize) {
        *error = "hello: session must be 16 bytes of bin";
        return false;
      }
      std::memcpy(out->session, v.ptr, kClientIdSize);
      out->has_session = true;
    } else {
      r.Skip();  // unknown keys are for newer peers
    }
  }
  if (!have_id) {
    *error = "hello: missing client id";
    return false;
  }
  return true;
}

void EncodeWelcome(const Welcome& wl, Buffer* out) {
  PutHeader(out, FrameType::kWelcome);
  Writer w(out);
  w.MapHeader(wl.outcomes ? 6 : 5);
  w.Str("protocol");
  w.Uint(wl.protocol);
  w.Str("server");
  w.Str(wl.server);
  w.Str("max_frame");
  w.Uint(wl.max_frame);
  w.Str("max_event");
  w.Uint(wl.max_event);
  w.Str("destinations");
  w.ArrayHeader(static_cast<uint32_t>(wl.destinations.size()));
  for (const auto& d : wl.destinations) w.Str(d);
  if (wl.outcomes) {
    w.Str("outcomes");
    w.Bool(true);
  }
}

bool DecodeWelcome(const uint8_t* data, size_t size, Welcome* out, std::string* error) {
  if (!CheckHeader(data, size, FrameType::kWelcome, "welcome", error)) return false;
  data += kHeaderSize;
  size -= kHeaderSize;
  if (!CheckBody(data, size, "welcome", error)) return false;
  Reader r(data, size);
  uint32_t n;
  if (!ExpectMap(r, "welcome", &n, error)) return false;
  out->outcomes = false;  // absent: a forkd that sends none
  for (uint32_t i = 0; i < n; ++i) {
    Value k = r.Next();
    std::string_view key = k.kind == Kind::kStr ? k.str() : std::string_view();
    Value v = r.Next();
    if (v.kind == Kind::kArray || v.kind == Kind::kMap) {
      if (key == "destinations" && v.kind == Kind::kArray) {
        out->destinations.clear();
        for (uint32_t j = 0; j < v.len; ++j) {
          Value d = r.Next();
          if (d.kind == Kind::kStr) {
            out->destinations.emplace_back(d.str());
          } else if (d.kind == Kind::kArray || d.kind == Kind::kMap) {
            *error = "welcome: destinations must be strings";
            return false;
          }
        }
        continue;
      }
      // Skip the container's entries.
      uint64_t pending = v.kind == Kind::kMap ? 2ull * v.len : v.len;
      while (pending--) r.Skip();
      continue;
    }
    if (key == "protocol" && v.kind == Kind::kUint) out->protocol = static_cast<uint32_t>(v.u);
    if (key == "server" && v.kind == Kind::kStr) out->server.assign(v.str());
    if (key == "max_frame" && v.kind == Kind::kUint) out->max_frame = static_cast<uint32_t>(v.u);
    if (key == "max_event" && v.kind == Kind::kUint) out->max_event = static_cast<uint32_t>(v.u);
    if (key == "outcomes") {
      if (v.kind != Kind::kBool) {
        *error = "welcome: outcomes must be a boolean";
        return false;
      }
      out->outcomes = v.b;
    }
  }
  return true;
}

void EncodeAck(const Ack& a, Buffer* out) {
  PutHeader(out, FrameType::kAck);
  EncodeRanges(a.ranges, out);
  if (a.routed.empty()) return;
  Writer w(out);
  w.ArrayHeader(static_cast<uint32_t>(a.routed.size()));
  for (const Routed& r : a.routed) {
    w.ArrayHeader(2);
    w.Uint(r.seq);
    w.ArrayHeader(static_cast<uint32_t>(r.destinations.size()));
    for (const auto& d : r.destinations) w.Str(d);
  }
}

bool DecodeAck(const uint8_t* data, size_t size, Ack* out, std::string* error) {
  if (!CheckHeader(data, size, FrameType::kAck, "ack", error)) return false;
  data += kHeaderSize;
  size -= kHeaderSize;
  size_t used = DecodeRanges(data, size, &out->ranges, error, "ack");
  if (used == 0) return false;
  out->routed.clear();
  if (used == size) return true;
  data += used;
  size -= used;
  if (!CheckBody(data, size, "ack routed trailer", error)) return false;
  Reader r(data, size);
  Value list = r.Next();
  if (list.kind != Kind::kArray) {
    *error = "ack: routed trailer must be an array";
    return false;
  }
  for (uint32_t i = 0; i < list.len; ++i) {
    Value pair = r.Next();
    Value seq = pair.kind == Kind::kArray && pair.len == 2 ? r.Next() : Value{};
    Value names = seq.kind == Kind::kUint ? r.Next() : Value{};
    if (names.kind != Kind::kArray) {
      *error = "ack: routed entry must be [seq, [names]]";
      return false;
    }
    Routed routed;
    routed.seq = seq.u;
    for (uint32_t j = 0; j < names.len; ++j) {
      Value d = r.Next();
      if (d.kind != Kind::kStr) {
        *error = "ack: routed destination names must be strings";
        return false;
      }
      routed.destinations.emplace_back(d.str());
    }
    out->routed.push_back(std::move(routed));
  }
  return true;
}

void EncodeNack(const Nack& n, Buffer* out) {
  PutHeader(out, FrameType::kNack);
  uint8_t* p = out->Grow(16);
  PutU64(p, n.range.first);
  PutU64(p + 8, n.range.last);
  out->Commit(16);
  Writer w(out);
  w.ArrayHeader(2);
  w.Str(n.code);
  w.Str(n.message);
}

bool DecodeNack(const uint8_t* data, size_t size, Nack* out, std::string* error) {
  if (!CheckHeader(data, size, FrameType::kNack, "nack", error)) return false;
  data += kHeaderSize;
  size -= kHeaderSize;
  if (size < 16) {
    *error = "nack: truncated range";
    return false;
  }
  out->range = {GetU64(data), GetU64(data + 8)};
  if (out->range.last < out->range.first) {
    *error = "nack: range with last < first";
    return false;
  }
  data += 16;
  size -= 16;
  if (!CheckBody(data, size, "nack", error)) return false;
  Reader r(data, size);
  Value arr = r.Next();
  Value code = arr.kind == Kind::kArray && arr.len == 2 ? r.Next() : Value{};
  Value msg = code.kind == Kind::kStr ? r.Next() : Value{};
  if (msg.kind != Kind::kStr) {
    *error = "nack: body must be [code, message]";
    return false;
  }
  out->code.assign(code.str());
  out->message.assign(msg.str());
  return true;
}

const char* OutcomeName(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::kDelivered: return "delivered";
    case OutcomeKind::kFiltered: return "filtered";
    case OutcomeKind::kDeadLetter: return "dead_letter";
    case OutcomeKind::kShed: return "shed";
  }
  return "delivered";
}

std::string DescribeOutcome(const DestinationOutcome& o) {
  std::string s = "destination '" + o.destination + "' did not store the event (" +
                  OutcomeName(o.kind) + ")";
  if (!o.reason.empty()) s += ": " + o.reason;
  return s;
}

void EncodeDelivered(const Delivered& d, Buffer* out) {
  PutHeader(out, FrameType::kDelivered);
  EncodeRanges(d.ranges, out);
  if (d.outcomes.empty()) return;
  Writer w(out);
  w.ArrayHeader(static_cast<uint32_t>(d.outcomes.size()));
  for (const EventOutcomes& e : d.outcomes) {
    w.ArrayHeader(2);
    w.Uint(e.seq);
    w.ArrayHeader(static_cast<uint32_t>(e.outcomes.size()));
    for (const DestinationOutcome& o : e.outcomes) {
      w.ArrayHeader(3);
      w.Str(o.destination);
      w.Str(OutcomeName(o.kind));
      w.Str(o.reason);
    }
  }
}

namespace {

// The trailer names only what was not plainly delivered: "delivered" there is
// an error, as is any word this side does not know.
bool ParseOutcome(std::string_view s, OutcomeKind* out) {
  for (OutcomeKind k : {OutcomeKind::kFiltered, OutcomeKind::kDeadLetter, OutcomeKind::kShed}) {
    if (s == OutcomeName(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

bool DecodeOutcomes(const uint8_t* data, size_t size, const std::vector<SeqRange>& ranges,
                    std::vector<EventOutcomes>* out, std::string* error) {
  if (!CheckBody(data, size, "delivered outcomes trailer", error)) return false;
  Reader r(data, size);
  const Value list = r.Next();
  if (list.kind != Kind::kArray) {
    *error = "delivered: outcomes trailer must be an array";
    return false;
  }
  // Each seq must be one the ranges settle: sorted copies make that a binary
  // search, whatever order the ranges came in.
  std::vector<SeqRange> sorted(ranges);
  std::sort(sorted.begin(), sorted.end(),
            [](const SeqRange& a, const SeqRange& b) { return a.first < b.first; });
  auto settled = [&](uint64_t seq) {
    auto it = std::upper_bound(sorted.begin(), sorted.end(), seq,
                               [](uint64_t s, const SeqRange& x) { return s < x.first; });
    return it != sorted.begin() && std::prev(it)->last >= seq;
  };
  out->reserve(list.len);
  for (uint32_t i = 0; i < list.len; ++i) {
    const std::string at = "delivered: outcomes[" + std::to_string(i) + "]";
    const Value pair = r.Next();
    const Value seq = pair.kind == Kind::kArray && pair.len == 2 ? r.Next() : Value{};
    const Value dests = seq.kind == Kind::kUint ? r.Next() : Value{};
    if (dests.kind != Kind::kArray) {
      *error = at + " must be [seq, [[destination, outcome, reason]...]]";
      return false;
    }
    if (!out->empty() && seq.u <= out->back().seq) {
      *error = at + ": seq " + std::to_string(seq.u) + " does not follow seq " +
               std::to_string(out->back().seq) + " (they must increase)";
      return false;
    }
    if (!settled(seq.u)) {
      *error = at + ": seq " + std::to_string(seq.u) + " is in none of the frame's ranges";
      return false;
    }
    if (dests.len == 0 || dests.len > kMaxOutcomesPerEvent) {
      *error = at + ": names " + std::to_string(dests.len) + " destinations (1 to " +
               std::to_string(kMaxOutcomesPerEvent) + ")";
      return false;
    }
    EventOutcomes& e = out->emplace_back();
    e.seq = seq.u;
    for (uint32_t j = 0; j < dests.len; ++j) {
      const std::string where = at + "[" + std::to_string(j) + "]";
      const Value t = r.Next();
      const Value name = t.kind == Kind::kArray && t.len == 3 ? r.Next() : Value{};
      const Value word = name.kind == Kind::kStr ? r.Next() : Value{};
      const Value reason = word.kind == Kind::kStr ? r.Next() : Value{};
      if (reason.kind != Kind::kStr) {
        *error = where + " must be [destination, outcome, reason], all strings";
        return false;
      }
      DestinationOutcome o;
      if (name.len == 0) {
        *error = where + ": empty destination name";
        return false;
      }
      if (!ParseOutcome(word.str(), &o.kind)) {
        *error = where + ": unknown outcome '" + std::string(word.str()) +
                 "' (filtered, dead_letter or shed)";
        return false;
      }
      o.destination.assign(name.str());
      for (const DestinationOutcome& seen : e.outcomes) {
        if (seen.destination == o.destination) {
          *error = where + ": destination '" + o.destination + "' named twice";
          return false;
        }
      }
      o.reason.assign(reason.str());
      e.outcomes.push_back(std::move(o));
    }
  }
  return true;
}

}  // namespace

bool DecodeDelivered(const uint8_t* data, size_t size, Delivered* out, std::string* error) {
  if (!CheckHeader(data, size, FrameType::kDelivered, "delivered", error)) return false;
  data += kHeaderSize;
  size -= kHeaderSize;
  const size_t used = DecodeRanges(data, size, &out->ranges, error, "delivered");
  if (used == 0) return false;
  out->outcomes.clear();
  if (used == size) return true;
  return DecodeOutcomes(data + used, size - used, out->ranges, &out->outcomes, error);
}

void WriteRouteHeader(uint8_t* frame, uint64_t first_seq, uint32_t count) {
  frame[0] = kProtocolVersion;
  frame[1] = static_cast<uint8_t>(FrameType::kRoute);
  PutU64(frame + 2, first_seq);
  PutU32(frame + 10, count);
}

void AppendRouteEntry(Buffer* frame, uint8_t flags, const uint8_t* event, uint32_t size) {
  uint8_t* p = frame->Grow(kRouteEntryHeaderSize + size);
  p[0] = flags;
  PutU32(p + 1, size);
  std::memcpy(p + kRouteEntryHeaderSize, event, size);
  frame->Commit(kRouteEntryHeaderSize + size);
}

bool RouteReader::Open(const uint8_t* data, size_t size, std::string* error) {
  data_ = data;
  size_ = size;
  off_ = kRouteHeaderSize;
  first_ = 0;
  count_ = 0;
  next_ = 0;
  if (size < kRouteHeaderSize) {
    *error = "route: frame shorter than its 14-byte header";
    return false;
  }
  if (!CheckHeader(data, size, FrameType::kRoute, "route", error)) return false;
  const uint64_t first = GetU64(data + 2);
  const uint32_t count = GetU32(data + 10);
  if (first == 0) {
    *error = "route: sequence numbers start at 1";
    return false;
  }
  if (count == 0) {
    *error = "route: empty batch";
    return false;
  }
  if (count - 1 > UINT64_MAX - first) {
    *error = "route: " + std::to_string(count) + " sequence numbers from " +
             std::to_string(first) + " run past 2^64-1";
    return false;
  }
  if (count > (size - kRouteHeaderSize) / kRouteEntryHeaderSize) {
    *error = "route: count " + std::to_string(count) + " exceeds what the frame can hold";
    return false;
  }
  // One pass over the lengths only: Next() then trusts them.
  size_t off = kRouteHeaderSize;
  for (uint32_t i = 0; i < count; ++i) {
    if (size - off < kRouteEntryHeaderSize) {
      *error = "route: entry " + std::to_string(i) + " truncated";
      return false;
    }
    const uint32_t len = GetU32(data + off + 1);
    off += kRouteEntryHeaderSize;
    if (len > size - off) {
      *error = "route: entry " + std::to_string(i) + " claims " + std::to_string(len) +
               " bytes, " + std::to_string(size - off) + " remain";
      return false;
    }
    off += len;
  }
  if (off != size) {
    *error = "route: " + std::to_string(size - off) + " trailing bytes after the last entry";
    return false;
  }
  first_ = first;
  count_ = count;
  return true;
}

bool RouteReader::Next(RouteEntry* out) {
  if (next_ >= count_) return false;
  const uint32_t len = GetU32(data_ + off_ + 1);
  *out = RouteEntry{first_ + next_, data_[off_], data_ + off_ + kRouteEntryHeaderSize, len};
  off_ += kRouteEntryHeaderSize + len;
  ++next_;
  return true;
}

bool DecodeRoute(const uint8_t* data, size_t size, std::vector<RouteEntry>* out,
                 std::string* error) {
  RouteReader reader;
  if (!reader.Open(data, size, error)) return false;
  // No reserve(count): a frame of empty entries claims a count of a fifth of
  // its size, which would be reserved before anything is known of them.
  out->clear();
  RouteEntry e;
  while (reader.Next(&e)) out->push_back(e);
  return true;
}

bool CheckEvent(const uint8_t* data, size_t size, const Limits& limits, EventView* out,
                std::string* error) {
  size_t used = 0;
  CheckResult r = CheckValue(data, size, limits, &used);
  if (!r) {
    *error = std::string("event: ") + r.reason + " at byte " + std::to_string(r.offset);
    return false;
  }
  if (used != size) {
    *error = "event: " + std::to_string(size - used) + " trailing bytes after the event";
    return false;
  }
  Reader rd(data, size);
  Value top = rd.Next();
  if (top.kind != Kind::kArray || top.len != kEventArity) {
    *error = "event: must be the array [destinations, key, options, payload]";
    return false;
  }
  // destinations
  out->dests = rd.pos();
  Value d = rd.Next();
  if (d.kind == Kind::kNil) {
    out->has_dests = false;
    out->dest_count = 0;
  } else if (d.kind == Kind::kArray) {
    out->has_dests = true;
    out->dest_count = d.len;
    for (uint32_t i = 0; i < d.len; ++i) {
      Value name = rd.Next();
      if (name.kind != Kind::kStr || name.len == 0) {
        *error = "event: destinations[" + std::to_string(i) + "] must be a non-empty string";
        return false;
      }
    }
    if (d.len == 0) {
      *error = "event: destinations must not be an empty array";
      return false;
    }
  } else {
    *error = "event: destinations must be nil or an array of strings";
    return false;
  }
  out->dests_size = static_cast<size_t>(rd.pos() - out->dests);
  // key
  Value k = rd.Next();
  if (k.kind == Kind::kStr) {
    out->has_key = true;
    out->key = k.str();
  } else if (k.kind == Kind::kNil) {
    out->has_key = false;
    out->key = {};
  } else {
    *error = "event: key must be nil or a string";
    return false;
  }
  // options
  out->options = rd.pos();
  Value o = rd.Peek();
  if (o.kind != Kind::kNil && o.kind != Kind::kMap) {
    *error = "event: options must be nil or a map";
    return false;
  }
  rd.Skip();
  out->options_size = static_cast<size_t>(rd.pos() - out->options);
  // payload
  out->payload = rd.pos();
  Value p = rd.Peek();
  if (p.kind != Kind::kMap) {
    *error = "event: payload must be a map (an object)";
    return false;
  }
  // The last of the array's four values, which CheckValue found to end
  // exactly at `size`: it runs to the end, and is not walked a second time.
  out->payload_size = size - static_cast<size_t>(out->payload - data);
  return true;
}

bool CheckStoredEvent(const uint8_t* data, size_t size, std::string* error) {
  // Limits only as wide as the bytes: an event stored under generous limits
  // that were later narrowed is still whole.
  constexpr Limits kStored{kMaxCheckDepth, UINT32_MAX, UINT32_MAX};
  size_t used = 0;
  CheckResult r = CheckValue(data, size, kStored, &used);
  if (!r) {
    *error = std::string("stored event: ") + r.reason + " at byte " + std::to_string(r.offset);
    return false;
  }
  if (used != size) {
    *error = "stored event: " + std::to_string(size - used) + " trailing bytes after the event";
    return false;
  }
  Reader rd(data, size);
  const Value top = rd.Next();
  if (top.kind != Kind::kArray || top.len != kEventArity) {
    *error = "stored event: must be the array [destinations, key, options, payload]";
    return false;
  }
  const Value d = rd.Next();
  if (d.kind == Kind::kArray) {
    for (uint32_t i = 0; i < d.len; ++i) {
      const Value s = rd.Next();
      bool ok = s.kind == Kind::kNil || (s.kind == Kind::kStr && s.len > 0);
      if (s.kind == Kind::kArray && s.len > 0) {
        ok = true;
        for (uint32_t k = 0; k < s.len; ++k) {
          const Value n = rd.Next();
          if (n.kind != Kind::kStr || n.len == 0) {
            ok = false;
            break;
          }
        }
      }
      if (!ok) {
        *error = "stored event: destinations[" + std::to_string(i) +
                 "] must be a name, nil or [name, template...]";
        return false;
      }
    }
  } else if (d.kind != Kind::kNil) {
    *error = "stored event: destinations must be nil or an array";
    return false;
  }
  const Value k = rd.Next();
  if (k.kind != Kind::kStr && k.kind != Kind::kNil) {
    *error = "stored event: key must be nil or a string";
    return false;
  }
  const Value o = rd.Peek();
  if (o.kind != Kind::kNil && o.kind != Kind::kMap) {
    *error = "stored event: options must be nil or a map";
    return false;
  }
  rd.Skip();
  if (rd.Peek().kind != Kind::kMap) {
    *error = "stored event: payload must be a map";
    return false;
  }
  return true;
}

size_t FormatEventIdTo(const uint8_t* client_id, uint64_t seq, char* out) {
  HexTo(client_id, kClientIdSize, out);
  char* p = out + 2 * kClientIdSize;
  *p++ = '-';
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + seq % 10);
    seq /= 10;
  } while (seq != 0);
  while (n > 0) *p++ = digits[--n];
  return static_cast<size_t>(p - out);
}

bool ParseEventId(std::string_view id, uint8_t* client_id, uint64_t* seq) {
  constexpr size_t kHexSize = kClientIdSize * 2;
  if (id.size() < kHexSize + 2 || id.size() > kMaxEventIdSize || id[kHexSize] != '-') return false;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < kClientIdSize; ++i) {
    const int hi = hex(id[2 * i]), lo = hex(id[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    client_id[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  uint64_t n = 0;
  for (size_t i = kHexSize + 1; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9') return false;
    const uint64_t d = static_cast<uint64_t>(id[i] - '0');
    if (n > (UINT64_MAX - d) / 10) return false;
    n = n * 10 + d;
  }
  *seq = n;
  return true;
}

std::string FormatEventId(const uint8_t* client_id, uint64_t seq) {
  char buf[kMaxEventIdSize];
  return std::string(buf, FormatEventIdTo(client_id, seq, buf));
}

}  // namespace forkd::wire
