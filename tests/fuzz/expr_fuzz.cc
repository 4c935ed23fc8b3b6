// The expression language of `when:`, `filter` and computed values: any
// source compiles or says what was expected and at which column (inside the
// source); what compiles evaluates against a record without a crash, and
// evaluates the same twice. The input is the expression, optionally followed
// by a NUL and the record as msgpack (checked as ingest checks a payload; a
// fixed purchase event otherwise), so the fuzzer explores both.
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "transforms/expr.h"
#include "transforms/record.h"
#include "wire/msgpack.h"

namespace {

using namespace forkd;

std::string PurchaseEvent() {
  wire::Buffer b;
  wire::Writer w(&b);
  w.MapHeader(9);
  w.Str("event");
  w.Str("purchase");
  w.Str("orderId");
  w.Str("o-17");
  w.Str("amount");
  w.Double(1250.5);
  w.Str("currency");
  w.Str("EUR");
  w.Str("items");
  w.ArrayHeader(2);
  for (int i = 0; i < 2; ++i) {
    w.MapHeader(3);
    w.Str("sku");
    w.Str(i ? "b-2" : "a-1");
    w.Str("qty");
    w.Int(i + 1);
    w.Str("price");
    w.Int(-3);
  }
  w.Str("ts");
  w.Timestamp(1700000000, 5);
  w.Str("user");
  w.MapHeader(2);
  w.Str("email");
  w.Str("sue@example.com");
  w.Str("tags");
  w.ArrayHeader(0);
  w.Str("ok");
  w.Bool(true);
  w.Str("note");
  w.Nil();
  return std::string(b.view());
}

void Same(const transforms::expr::Val& a, const transforms::expr::Val& b) {
  fork_fuzz::Require(a.t == b.t, "evaluation is deterministic");
  fork_fuzz::Use(a.s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string purchase = PurchaseEvent();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view src = in.substr(0, nul);
  std::string record = purchase;
  if (nul != std::string_view::npos) {
    size_t used = 0;
    const std::string_view rest = in.substr(nul + 1);
    if (wire::CheckValue(reinterpret_cast<const uint8_t*>(rest.data()), rest.size(), wire::Limits{},
                         &used) &&
        used == rest.size()) {
      record.assign(rest);
    }
  }

  transforms::expr::Program program;
  std::string error;
  size_t column = 0;
  if (!transforms::expr::Program::Compile(src, &program, &error, &column)) {
    fork_fuzz::Require(!error.empty(), "a compile error says what was expected");
    fork_fuzz::Require(column <= src.size(), "a compile error points inside the source");
    return 0;
  }
  transforms::Doc doc;
  doc.Load(reinterpret_cast<const uint8_t*>(record.data()), record.size());
  transforms::Arena scratch;
  const transforms::expr::Val v = program.Eval(doc, &scratch);
  const transforms::expr::Val again = program.Eval(doc, &scratch);
  Same(v, again);
  wire::Buffer out;
  wire::Writer w(&out);
  transforms::expr::Write(v, &w);
  size_t used = 0;
  fork_fuzz::Require(wire::CheckValue(out.data(), out.size(), wire::Limits{128, UINT32_MAX, UINT32_MAX}, &used) &&
                         used == out.size(),
                     "a value written is one well-formed msgpack value");
  (void)program.Test(doc, &scratch);
  return 0;
}
