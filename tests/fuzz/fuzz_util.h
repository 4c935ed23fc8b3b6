// Helpers shared by the fuzz targets: an invariant that aborts (a crash
// libFuzzer keeps), and walks over validated msgpack that touch every byte
// the way forkd's readers do, so a validator that lets too much through
// shows as an ASan report in the walk.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "wire/msgpack.h"

namespace fork_fuzz {

// Removes `dir` and everything in it when the fuzzer exits normally (the end
// of a timed run); after a crash it stays, with the state that crashed.
inline void RemoveAtExit(const std::string& dir) {
  static std::string* doomed = new std::string();
  *doomed = dir;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(*doomed, ec);
  });
}

inline void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

// Reads every byte of `s`, so a view past the input is an ASan report.
inline void Use(std::string_view s) {
  volatile uint8_t sink = 0;
  for (char c : s) sink = static_cast<uint8_t>(sink ^ static_cast<uint8_t>(c));
  (void)sink;
}

// Visits every value of one msgpack value that passed CheckValue, reading
// each string's bytes and decoding each timestamp.
inline void WalkValue(const uint8_t* data, size_t size) {
  forkd::wire::Reader r(data, size);
  uint64_t pending = 1;
  while (pending > 0) {
    --pending;
    const forkd::wire::Value v = r.Next();
    switch (v.kind) {
      case forkd::wire::Kind::kArray: pending += v.len; break;
      case forkd::wire::Kind::kMap: pending += 2ull * v.len; break;
      case forkd::wire::Kind::kExt: {
        int64_t s;
        uint32_t ns;
        (void)forkd::wire::DecodeTimestamp(v, &s, &ns);
        Use(v.str());
        break;
      }
      default: Use(v.str()); break;
    }
  }
  Require(r.pos() == data + size, "a walk ends where the value ends");
}

// Walks an event that passed CheckStoredEvent the way the pipeline selects
// one (destinations, each a name or [name, template...], the key, options
// skipped, then the payload), and ingest's recovery reads its keys.
inline void WalkStoredEvent(const uint8_t* data, size_t size) {
  forkd::wire::Reader rd(data, size);
  rd.Next();
  const forkd::wire::Value d = rd.Next();
  for (uint32_t i = 0; d.kind == forkd::wire::Kind::kArray && i < d.len; ++i) {
    const forkd::wire::Value s = rd.Next();
    if (s.kind == forkd::wire::Kind::kArray) {
      Use(rd.Next().str());
      for (uint32_t k = 1; k < s.len; ++k) Use(rd.Next().str());
    } else {
      Use(s.str());
    }
  }
  Use(rd.Next().str());
  const uint8_t* options = rd.pos();
  rd.Skip();
  WalkValue(options, static_cast<size_t>(rd.pos() - options));
  WalkValue(rd.pos(), size - static_cast<size_t>(rd.pos() - data));
}

}  // namespace fork_fuzz
