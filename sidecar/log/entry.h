// One logical entry of the log: an event with the metadata forkd adds.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "log/log_format.h"
#include "wire/protocol.h"

namespace forkd::log {

struct EntryHeader {
  uint64_t lsn = 0;      // position in the log, dense from 1
  int64_t recv_us = 0;   // wall time forkd received the event, microseconds
  uint8_t client_id[wire::kClientIdSize] = {};
  uint64_t seq = 0;      // the client's sequence number

  void EncodeTo(uint8_t* p) const {
    wire::PutU64(p, lsn);
    wire::PutU64(p + 8, static_cast<uint64_t>(recv_us));
    std::memcpy(p + 16, client_id, wire::kClientIdSize);
    wire::PutU64(p + 32, seq);
  }
  void DecodeFrom(const uint8_t* p) {
    lsn = wire::GetU64(p);
    recv_us = static_cast<int64_t>(wire::GetU64(p + 8));
    std::memcpy(client_id, p + 16, wire::kClientIdSize);
    seq = wire::GetU64(p + 32);
  }
};

// An entry as read back: the header and a view of the event bytes, valid
// until the next read.
struct Entry {
  EntryHeader header;
  const uint8_t* event = nullptr;
  size_t event_size = 0;
};

}  // namespace forkd::log
