// ForkError on the native side: the error codes, and the one way native code
// creates a ForkError — through the factory js/index.cjs registers with
// init(), so every error a caller sees is the same JS class with a `code`.
//
// Everything here runs on the JS thread only.
#pragma once

#include <node_api.h>

#include <string_view>

namespace fork_router {

// The codes a ForkError carries (the same strings forkd sends in kNack).
inline constexpr const char* kInvalidPayload = "FORK_INVALID_PAYLOAD";
inline constexpr const char* kUnknownDestination = "FORK_UNKNOWN_DESTINATION";
inline constexpr const char* kTimeout = "FORK_TIMEOUT";
inline constexpr const char* kUnavailable = "FORK_UNAVAILABLE";
inline constexpr const char* kBackpressure = "FORK_BACKPRESSURE";
inline constexpr const char* kTooLarge = "FORK_TOO_LARGE";
inline constexpr const char* kRejected = "FORK_REJECTED";
inline constexpr const char* kClosed = "FORK_CLOSED";

// Stores `factory`, a JS function (code, message, fields?) -> ForkError, as
// this environment's error factory. Called once by init().
[[nodiscard]] napi_status InstallErrorFactory(napi_env env, napi_value factory);

// Creates a ForkError with `code` and `message`; `fields` (an object or
// nullptr) is copied onto it (path, destination, id ...). If no factory was
// installed, falls back to a plain Error with a `code` property.
napi_value MakeForkError(napi_env env, const char* code, std::string_view message,
                         napi_value fields = nullptr);

// Throws what MakeForkError creates.
void ThrowForkError(napi_env env, const char* code, std::string_view message,
                    napi_value fields = nullptr);

}  // namespace fork_router
