// The `stdout` sink: JSON Lines on forkd's standard output, for development
// and for piping into another tool.
#pragma once

#include "core/options.h"
#include "sinks/sink.h"

namespace forkd::sinks {

const std::vector<OptionSpec>& StdoutSinkOptions();
std::unique_ptr<Sink> CreateStdoutSink(const SinkContext& ctx);

}  // namespace forkd::sinks
