// The `stream` sink: a destination served live over Server-Sent Events by
// the admin server at GET /streams/<name> (streams/hub.h). Its pipeline
// runs like any other (routes, transforms, aggregates); a flushed batch goes
// into the destination's hub, from which every subscriber reads. Each
// message is `id: <position>` (the log position its record came from) and
// `data: <the record as JSON>` with its `_fork_id`.
//
// Options: `buffer` (records kept in memory for subscribers; one further
// behind catches up from the log), `public: true` (served to anyone, with
// CORS, e.g. a ticker) or `token` (sent as `Authorization: Bearer` or
// `?token=`), `max_subscribers`.
#pragma once

#include <memory>
#include <vector>

#include "core/options.h"
#include "sinks/sink.h"

namespace forkd::sinks {

const std::vector<OptionSpec>& StreamSinkOptions();
bool CheckStreamOptions(const Options& o, std::string* error);
std::unique_ptr<Sink> CreateStreamSink(const SinkContext& ctx);

}  // namespace forkd::sinks
