// The expression language of `when:` conditions, `filter` and computed
// values. An expression is compiled once, when the config loads, into a
// small tree that is evaluated against a record's fields in place: nothing
// is decoded that the expression does not read.
//
//   expr     := or
//   or       := and ('||' and)*
//   and      := cmp ('&&' cmp)*
//   cmp      := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum | 'in' list)?
//   sum      := product (('+'|'-') product)*
//   product  := unary (('*'|'/'|'%') unary)*
//   unary    := ('!'|'-') unary | primary
//   primary  := number | string | true | false | null | '(' expr ')'
//             | func '(' args ')' | path ('.' func '(' args ')')?
//   path     := name ('.' name | '[' digits ']' | '[' string ']')*
//   list     := '[' (expr (',' expr)*)? ']'  |  an expression giving an array
//   func     := exists | startsWith | endsWith | contains | lower | upper
//             | matches | len
//
// Strings are "double" or 'single' quoted with \-escapes. Method form is
// the same call: `email.endsWith("@x.com")` is `endsWith(email, "@x.com")`.
//
// Semantics (the tests hold a reference evaluator to exactly these):
// - A missing field reads as null. `exists(path)` tells them apart.
// - `==`/`!=`: numbers compare by value (1 == 1.0); strings, booleans and
//   null with their own kind; arrays and maps by their encoding; values of
//   different kinds are unequal.
// - `< <= > >=` order two numbers or two strings (bytewise); anything else
//   is false.
// - `&&`, `||`, `!` work on truthiness and give booleans: null, false, 0,
//   NaN and "" are false; everything else is true.
// - `+ - *` on two integers give an integer (a float on overflow), on
//   numbers a float; `+` on two strings joins them; `/` always gives a
//   float; `%` on integers is the C remainder, on floats fmod; division by
//   zero and any other mix give null.
// - `x in [a, b]` is `x == a || x == b`; `in` also takes a field holding an
//   array.
// - startsWith/endsWith/contains/matches are false unless given strings;
//   lower/upper (ASCII) give null for non-strings; len gives the bytes of a
//   string or the entries of an array or map, else null. `matches` takes a
//   literal RE2 pattern (linear time; unanchored unless it says ^ or $).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "transforms/record.h"

namespace re2 {
class RE2;
}

namespace forkd::transforms::expr {

struct Val {
  enum class T : uint8_t { kMissing, kNull, kBool, kInt, kFloat, kStr, kRaw };
  T t = T::kMissing;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string_view s;  // kStr
  RawValue raw;        // kRaw: an array, map, bin or ext, encoded

  static Val Bool(bool v) {
    Val r;
    r.t = T::kBool;
    r.b = v;
    return r;
  }
  static Val Null() {
    Val r;
    r.t = T::kNull;
    return r;
  }
  bool is_number() const { return t == T::kInt || t == T::kFloat; }
  double number() const { return t == T::kInt ? static_cast<double>(i) : f; }
};

// The value of msgpack bytes.
Val FromRaw(RawValue v);
bool Truthy(const Val& v);
bool Equal(const Val& a, const Val& b);
// Writes `v` as one msgpack value (missing and null as nil).
void Write(const Val& v, wire::Writer* w);

class Program {
 public:
  Program();
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Compiles `src`. On failure *error says what was expected and *column
  // (0-based, into src) where.
  [[nodiscard]] static bool Compile(std::string_view src, Program* out, std::string* error,
                                    size_t* column);

  // Evaluates against `doc`. Strings made on the way (lower, +) live in
  // `scratch`. Thread-safe: a Program is immutable once compiled.
  Val Eval(const Doc& doc, Arena* scratch) const;
  bool Test(const Doc& doc, Arena* scratch) const { return Truthy(Eval(doc, scratch)); }

  const std::string& source() const { return source_; }
  // The field paths the expression reads.
  const std::deque<Path>& paths() const { return paths_; }

 private:
  friend class Parser;
  enum class Op : uint8_t {
    kConst, kPath, kList, kNot, kNeg, kAnd, kOr, kEq, kNe, kLt, kLe, kGt, kGe, kIn,
    kAdd, kSub, kMul, kDiv, kMod, kExists, kStartsWith, kEndsWith, kContains, kLower,
    kUpper, kMatches, kLen,
  };
  struct Node {
    Op op;
    int a = -1;    // first operand (node index)
    int b = -1;    // second operand
    int idx = -1;  // kConst: consts_, kPath: paths_, kMatches: regexes_
    std::vector<int> items;  // kList
  };
  Val EvalNode(int n, const Doc& doc, Arena* scratch) const;

  std::string source_;
  std::vector<Node> nodes_;
  int root_ = -1;
  std::deque<std::string> strings_;  // backing for string constants (stable)
  std::vector<Val> consts_;
  std::deque<Path> paths_;
  std::vector<std::unique_ptr<re2::RE2>> regexes_;
};

}  // namespace forkd::transforms::expr
