// Shapes one destination's records: the per-call options (timestamp,
// aggregate window, transform templates), the route's templates, then the
// destination's own chain. Shared by the pipeline and by the dry runs of
// `forkd explain` and `forkd test`, so what they show is what runs.
//
// Threads: one Shaper per pipeline thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "transforms/aggregate.h"
#include "transforms/record.h"
#include "transforms/transform.h"

namespace forkd::pipeline {

class Shaper {
 public:
  Shaper(const transforms::Chain& chain,
         const std::map<std::string, transforms::Chain, std::less<>>& templates);
  Shaper(const Shaper&) = delete;
  Shaper& operator=(const Shaper&) = delete;

  // The parts of a stored event ([dests, key, options, payload]).
  struct EventParts {
    const uint8_t* options = nullptr;  // msgpack map or nil, or null
    const uint8_t* route_t = nullptr;  // this destination's [name, template...] entry, or null
    uint32_t route_t_count = 0;
    size_t bound = 0;                  // bytes readable from options / route_t
    const uint8_t* payload = nullptr;
    size_t payload_size = 0;
    int64_t recv_us = 0;
    std::string_view event_id;
  };
  enum class Result { kWrite, kAbsorbed, kDropped, kDeadLetter };

  // kWrite: *out is the record to write (the payload itself when nothing
  // applies; otherwise valid until the next call). kAbsorbed: folded into the
  // aggregate. kDeadLetter: *reason says why.
  Result Shape(const EventParts& e, std::string* reason, const uint8_t** out, size_t* out_size);
  // Runs an aggregate row through the steps after the aggregate.
  Result ShapeRow(std::string_view id, const wire::Buffer& row, int64_t now_us,
                  std::string* reason, const uint8_t** out, size_t* out_size);

  transforms::Aggregator* aggregator() { return aggregator_.get(); }

 private:
  Result Finish(transforms::Outcome o, transforms::StepContext* ctx, std::string* reason,
                const uint8_t** out, size_t* out_size);

  const transforms::Chain& chain_;
  const std::map<std::string, transforms::Chain, std::less<>>& templates_;
  std::unique_ptr<transforms::Aggregator> aggregator_;
  std::shared_ptr<const transforms::Step> timestamp_step_;  // per-call `timestamp: true`
  transforms::Doc doc_;
  transforms::Arena scratch_;
  wire::Buffer out_;
};

}  // namespace forkd::pipeline
