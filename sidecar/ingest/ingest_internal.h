// Small helpers shared by the files of the ingest thread (ingest.cc, keys.cc,
// delivered.cc); not part of its interface.
#pragma once

#include <string_view>
#include <utility>
#include <vector>

#include "wire/codec.h"

namespace forkd::ingest::internal {

// Adds `seq` to a list of ranges collected in increasing order.
inline void AppendRange(std::vector<wire::SeqRange>* v, uint64_t seq) {
  if (!v->empty() && v->back().last + 1 == seq) {
    v->back().last = seq;
  } else {
    v->push_back({seq, seq});
  }
}

// Splits a key of Ingest::keys_ into (destination, idempotency key).
inline std::pair<std::string_view, std::string_view> SplitPair(std::string_view pair) {
  const size_t nul = pair.find('\0');
  return {pair.substr(0, nul), pair.substr(nul + 1)};
}

}  // namespace forkd::ingest::internal
