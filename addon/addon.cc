// The fork_router native module: what js/index.cjs builds the public API on.
//
//   init(makeError)            registers the ForkError factory (once per environment)
//   Client                     see client.h
//   encodeForTest(payload, destinations, key, options) -> Buffer
//                              the msgpack event route() would send
//   encodedSize(...)           the same, returning only the size (benchmarks)
#include <napi.h>

#include "client.h"
#include "encoder.h"
#include "errors.h"
#include "wire/protocol.h"

namespace fork_router {
namespace {

napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t != napi_function) {
    napi_throw_type_error(env, nullptr, "init(makeError): makeError must be a function");
    return nullptr;
  }
  if (InstallErrorFactory(env, argv[0]) != napi_ok) {
    napi_throw_error(env, nullptr, "init: cannot store the error factory");
  }
  return nullptr;
}

// One encoder and buffer per JS thread (each worker has its own).
struct TestEncoder {
  Encoder encoder;
  wire::Buffer buffer;
};
thread_local TestEncoder test_encoder;

// Encodes argv[0..3]; throws the ForkError on failure and returns false.
bool EncodeArgs(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  for (size_t i = argc; i < 4; ++i) argv[i] = undefined;
  EncodeError err;
  if (test_encoder.encoder.EncodeEvent(env, argv[0], argv[1], argv[2], argv[3],
                                       &test_encoder.buffer, &err)) {
    return true;
  }
  napi_value fields;
  napi_create_object(env, &fields);
  napi_value path;
  napi_create_string_utf8(env, err.path.data(), err.path.size(), &path);
  napi_set_named_property(env, fields, std::string_view(err.root) == "payload" ? "path" : "option",
                          path);
  if (err.cause != nullptr) {
    napi_value cause;
    napi_get_reference_value(env, err.cause, &cause);
    napi_set_named_property(env, fields, "cause", cause);
    napi_delete_reference(env, err.cause);
  }
  ThrowForkError(env, err.code, err.message, fields);
  return false;
}

napi_value EncodeForTest(napi_env env, napi_callback_info info) {
  if (!EncodeArgs(env, info)) return nullptr;
  napi_value result;
  napi_create_buffer_copy(env, test_encoder.buffer.size(), test_encoder.buffer.data(), nullptr,
                          &result);
  return result;
}

napi_value EncodedSize(napi_env env, napi_callback_info info) {
  if (!EncodeArgs(env, info)) return nullptr;
  napi_value result;
  napi_create_uint32(env, static_cast<uint32_t>(test_encoder.buffer.size()), &result);
  return result;
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  napi_property_descriptor fns[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encodeForTest", nullptr, EncodeForTest, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encodedSize", nullptr, EncodedSize, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  exports.Set("Client", Client::Define(env));
  exports.Set("protocolVersion", Napi::Number::New(env, wire::kProtocolVersion));
  exports.Set("maxEventBytes", Napi::Number::New(env, wire::kDefaultMaxEvent));
  exports.Set("maxDepth", Napi::Number::New(env, wire::kMaxDepth));
  return exports;
}

}  // namespace
}  // namespace fork_router

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return fork_router::Module(env, exports);
}

NODE_API_MODULE(fork_router, InitModule)
