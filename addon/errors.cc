#include "errors.h"

namespace fork_router {
namespace {

// Per-environment state (Node may load the addon in several worker threads).
struct ErrorFactory {
  napi_ref factory = nullptr;
};

void DeleteFactory(napi_env env, void* data, void* /*hint*/) {
  auto* f = static_cast<ErrorFactory*>(data);
  if (f->factory != nullptr) napi_delete_reference(env, f->factory);
  delete f;
}

napi_value Str(napi_env env, std::string_view s) {
  napi_value v = nullptr;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}

}  // namespace

napi_status InstallErrorFactory(napi_env env, napi_value factory) {
  void* data = nullptr;
  napi_status st = napi_get_instance_data(env, &data);
  if (st != napi_ok) return st;
  auto* f = static_cast<ErrorFactory*>(data);
  if (f == nullptr) {
    f = new ErrorFactory();
    st = napi_set_instance_data(env, f, DeleteFactory, nullptr);
    if (st != napi_ok) {
      delete f;
      return st;
    }
  }
  if (f->factory != nullptr) napi_delete_reference(env, f->factory);
  f->factory = nullptr;
  return napi_create_reference(env, factory, 1, &f->factory);
}

napi_value MakeForkError(napi_env env, const char* code, std::string_view message,
                         napi_value fields) {
  napi_value code_v = Str(env, code);
  napi_value msg_v = Str(env, message);
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  auto* f = static_cast<ErrorFactory*>(data);
  napi_value fn = nullptr;
  if (f != nullptr && f->factory != nullptr) napi_get_reference_value(env, f->factory, &fn);
  napi_value result = nullptr;
  if (fn != nullptr) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    if (fields == nullptr) fields = undefined;
    napi_value argv[3] = {code_v, msg_v, fields};
    if (napi_call_function(env, undefined, fn, 3, argv, &result) == napi_ok) return result;
    // The factory threw: fall back to a plain Error rather than lose the cause.
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  napi_create_error(env, code_v, msg_v, &result);
  if (fields != nullptr) {
    napi_valuetype t;
    napi_typeof(env, fields, &t);
    if (t == napi_object) {
      napi_value keys;
      uint32_t n = 0;
      napi_get_property_names(env, fields, &keys);
      napi_get_array_length(env, keys, &n);
      for (uint32_t i = 0; i < n; ++i) {
        napi_value k, v;
        napi_get_element(env, keys, i, &k);
        napi_get_property(env, fields, k, &v);
        napi_set_property(env, result, k, v);
      }
    }
  }
  napi_set_named_property(env, result, "code", code_v);
  return result;
}

void ThrowForkError(napi_env env, const char* code, std::string_view message, napi_value fields) {
  napi_throw(env, MakeForkError(env, code, message, fields));
}

}  // namespace fork_router
