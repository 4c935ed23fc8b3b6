// The frame decoders and the msgpack validator on bytes from anywhere, as
// forkd's ingest and the addon's I/O thread meet them: every decoder decodes
// or says why and never reads past the input (libFuzzer's copy of the input
// is exactly its size, so ASan sees a byte too far). Whatever CheckValue
// accepts, a Reader walks to exactly where CheckValue said it ends; whatever
// CheckEvent or CheckStoredEvent accepts is walked as their callers do.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "wire/codec.h"

namespace {

using namespace forkd::wire;

void WalkEvent(const EventView& v) {
  Reader d(v.dests, v.dests_size);
  const Value list = d.Next();
  for (uint32_t i = 0; list.kind == Kind::kArray && i < list.len; ++i) {
    fork_fuzz::Use(d.Next().str());
  }
  fork_fuzz::Require(d.pos() == v.dests + v.dests_size, "destinations end where CheckEvent said");
  fork_fuzz::Use(v.key);
  fork_fuzz::WalkValue(v.options, v.options_size);
  fork_fuzz::WalkValue(v.payload, v.payload_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  FrameType type;
  (void)PeekHeader(data, size, &type, &error);
  Hello hello;
  if (DecodeHello(data, size, &hello, &error)) {
    Buffer again;
    EncodeHello(hello, &again);
    Hello back;
    fork_fuzz::Require(DecodeHello(again.data(), again.size(), &back, &error),
                       "an encoded hello decodes");
    fork_fuzz::Require(back.agent == hello.agent, "hello round-trips");
  }
  Welcome welcome;
  (void)DecodeWelcome(data, size, &welcome, &error);
  Ack ack;
  (void)DecodeAck(data, size, &ack, &error);
  Nack nack;
  (void)DecodeNack(data, size, &nack, &error);
  Delivered delivered;
  (void)DecodeDelivered(data, size, &delivered, &error);

  // The reader ingest uses, entry by entry.
  RouteReader reader;
  if (reader.Open(data, size, &error)) {
    RouteEntry e;
    while (reader.Next(&e)) {
      EventView v;
      if (CheckEvent(e.event, e.size, Limits{}, &v, &error)) WalkEvent(v);
    }
  }

  std::vector<RouteEntry> entries;
  if (DecodeRoute(data, size, &entries, &error)) {
    for (const RouteEntry& e : entries) {
      EventView v;
      if (CheckEvent(e.event, e.size, Limits{}, &v, &error)) WalkEvent(v);
      if (CheckStoredEvent(e.event, e.size, &error)) fork_fuzz::WalkStoredEvent(e.event, e.size);
    }
  }

  // The input itself as one value, one event, one stored event.
  size_t used = 0;
  const Limits narrow{4, 64, 64};
  for (const Limits& limits : {Limits{}, narrow}) {
    if (CheckValue(data, size, limits, &used)) {
      fork_fuzz::Require(used <= size, "CheckValue consumes what it was given at most");
      Reader r(data, size);
      r.Skip();
      fork_fuzz::Require(r.pos() == data + used, "a Reader skips to where CheckValue stopped");
      fork_fuzz::WalkValue(data, used);
    }
  }
  EventView v;
  if (CheckEvent(data, size, Limits{}, &v, &error)) {
    WalkEvent(v);
    fork_fuzz::Require(CheckStoredEvent(data, size, &error), "a client's event is a stored event");
  }
  if (CheckStoredEvent(data, size, &error)) fork_fuzz::WalkStoredEvent(data, size);
  return 0;
}
