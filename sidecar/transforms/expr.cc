#include "transforms/expr.h"

#include <re2/re2.h>

#include <charconv>
#include <cmath>
#include <cstring>

namespace forkd::transforms::expr {

// ---- values ----

Val FromRaw(RawValue v) {
  Val r;
  if (!v.found()) return r;
  wire::Reader rd(v.data, v.size);
  const wire::Value x = rd.Next();
  switch (x.kind) {
    case wire::Kind::kNil: r.t = Val::T::kNull; break;
    case wire::Kind::kBool: r.t = Val::T::kBool; r.b = x.b; break;
    case wire::Kind::kInt: r.t = Val::T::kInt; r.i = x.i; break;
    case wire::Kind::kUint:
      if (x.u <= static_cast<uint64_t>(INT64_MAX)) {
        r.t = Val::T::kInt;
        r.i = static_cast<int64_t>(x.u);
      } else {
        r.t = Val::T::kFloat;
        r.f = static_cast<double>(x.u);
      }
      break;
    case wire::Kind::kFloat: r.t = Val::T::kFloat; r.f = x.f; break;
    case wire::Kind::kStr: r.t = Val::T::kStr; r.s = x.str(); break;
    default: r.t = Val::T::kRaw; r.raw = v; break;
  }
  return r;
}

bool Truthy(const Val& v) {
  switch (v.t) {
    case Val::T::kMissing:
    case Val::T::kNull: return false;
    case Val::T::kBool: return v.b;
    case Val::T::kInt: return v.i != 0;
    case Val::T::kFloat: return v.f != 0 && !std::isnan(v.f);
    case Val::T::kStr: return !v.s.empty();
    case Val::T::kRaw: return true;
  }
  return false;
}

bool Equal(const Val& a, const Val& b) {
  const bool an = a.t == Val::T::kMissing || a.t == Val::T::kNull;
  const bool bn = b.t == Val::T::kMissing || b.t == Val::T::kNull;
  if (an || bn) return an && bn;
  if (a.is_number() && b.is_number()) {
    if (a.t == Val::T::kInt && b.t == Val::T::kInt) return a.i == b.i;
    return a.number() == b.number();
  }
  if (a.t != b.t) return false;
  switch (a.t) {
    case Val::T::kBool: return a.b == b.b;
    case Val::T::kStr: return a.s == b.s;
    case Val::T::kRaw:
      return a.raw.size == b.raw.size && std::memcmp(a.raw.data, b.raw.data, a.raw.size) == 0;
    default: return false;
  }
}

void Write(const Val& v, wire::Writer* w) {
  switch (v.t) {
    case Val::T::kMissing:
    case Val::T::kNull: w->Nil(); break;
    case Val::T::kBool: w->Bool(v.b); break;
    case Val::T::kInt: w->Int(v.i); break;
    case Val::T::kFloat: w->Double(v.f); break;
    case Val::T::kStr: w->Str(v.s); break;
    case Val::T::kRaw: w->Raw(v.raw.data, v.raw.size); break;
  }
}

namespace {

// -1, 0, 1, or 2 when the two cannot be ordered.
int Compare(const Val& a, const Val& b) {
  if (a.is_number() && b.is_number()) {
    if (a.t == Val::T::kInt && b.t == Val::T::kInt) return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
    const double x = a.number(), y = b.number();
    if (std::isnan(x) || std::isnan(y)) return 2;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.t == Val::T::kStr && b.t == Val::T::kStr) {
    const int c = a.s.compare(b.s);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  return 2;
}

Val Int(int64_t v) {
  Val r;
  r.t = Val::T::kInt;
  r.i = v;
  return r;
}
Val Float(double v) {
  Val r;
  r.t = Val::T::kFloat;
  r.f = v;
  return r;
}
Val Str(std::string_view s) {
  Val r;
  r.t = Val::T::kStr;
  r.s = s;
  return r;
}

}  // namespace

// ---- parser ----

class Parser {
 public:
  Parser(std::string_view src, Program* prog) : src_(src), p_(prog) {}

  bool Parse(std::string* error, size_t* column) {
    const int root = ParseExpr(0);
    if (root >= 0) {
      SkipSpace();
      if (pos_ < src_.size()) Fail(pos_, "unexpected '" + std::string(1, src_[pos_]) + "'");
    }
    if (!error_.empty()) {
      *error = error_;
      *column = error_at_;
      return false;
    }
    p_->root_ = root;
    return true;
  }

 private:
  using Op = Program::Op;
  static constexpr int kMaxDepth = 64;

  int Fail(size_t at, std::string why) {
    if (error_.empty()) {
      error_ = std::move(why);
      error_at_ = at;
    }
    return -1;
  }
  void SkipSpace() {
    while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' ||
                                  src_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(std::string_view tok) {
    SkipSpace();
    if (src_.substr(pos_, tok.size()) != tok) return false;
    // `in` and the like must not run into an identifier.
    if (IsIdentChar(tok.back()) && pos_ + tok.size() < src_.size() &&
        IsIdentChar(src_[pos_ + tok.size()])) {
      return false;
    }
    pos_ += tok.size();
    return true;
  }
  static bool IsIdentStart(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
  }
  static bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

  int Add(Program::Node n) {
    p_->nodes_.push_back(std::move(n));
    return static_cast<int>(p_->nodes_.size() - 1);
  }
  int Binary(Op op, int a, int b) {
    if (a < 0 || b < 0) return -1;
    Program::Node n{op};
    n.a = a;
    n.b = b;
    return Add(std::move(n));
  }

  // Precedence climbing: level 0 ||, 1 &&, 2 comparisons, 3 + -, 4 * / %.
  // Only a whole expression (the top, a parenthesis, an argument, a list
  // item) nests a level: counting each precedence level as well would stop
  // at about ten parentheses.
  int ParseExpr(int level) {
    if (level > 0) return ParseLevel(level);
    if (++depth_ > kMaxDepth) return Fail(pos_, "expression nested too deeply");
    int r = ParseLevel(level);
    --depth_;
    return r;
  }
  int ParseLevel(int level) {
    if (level == 5) return ParseUnary();
    int left = ParseExpr(level + 1);
    if (left < 0) return -1;
    while (true) {
      const size_t at = pos_;
      Op op;
      if (level == 0 && Eat("||")) {
        op = Op::kOr;
      } else if (level == 1 && Eat("&&")) {
        op = Op::kAnd;
      } else if (level == 2) {
        if (Eat("==")) op = Op::kEq;
        else if (Eat("!=")) op = Op::kNe;
        else if (Eat("<=")) op = Op::kLe;
        else if (Eat(">=")) op = Op::kGe;
        else if (Eat("<")) op = Op::kLt;
        else if (pos_ < src_.size() && src_[pos_] == '=') {
          return Fail(pos_, "'=' is not a comparison; use ==");
        }
        else if (Eat(">")) op = Op::kGt;
        else if (Eat("in")) {
          int list = ParseList();
          return Binary(Op::kIn, left, list);
        } else {
          return left;
        }
        // Comparisons do not chain: `a < b < c` is almost always a mistake.
        const int right = ParseExpr(level + 1);
        left = Binary(op, left, right);
        if (left < 0) return -1;
        SkipSpace();
        const size_t here = pos_;
        if (Eat("==") || Eat("!=") || Eat("<") || Eat(">") || Eat("in")) {
          return Fail(here, "comparisons do not chain; use && or parentheses");
        }
        return left;
      } else if (level == 3 && Eat("+")) {
        op = Op::kAdd;
      } else if (level == 3 && PeekMinus()) {
        op = Op::kSub;
      } else if (level == 4 && Eat("*")) {
        op = Op::kMul;
      } else if (level == 4 && Eat("/")) {
        op = Op::kDiv;
      } else if (level == 4 && Eat("%")) {
        op = Op::kMod;
      } else {
        (void)at;
        return left;
      }
      const int right = ParseExpr(level + 1);
      left = Binary(op, left, right);
      if (left < 0) return -1;
    }
  }
  bool PeekMinus() {
    SkipSpace();
    if (pos_ < src_.size() && src_[pos_] == '-') {
      ++pos_;
      return true;
    }
    return false;
  }

  int ParseUnary() {
    SkipSpace();
    if (pos_ < src_.size() && src_[pos_] == '!' &&
        !(pos_ + 1 < src_.size() && src_[pos_ + 1] == '=')) {
      ++pos_;
      if (++depth_ > kMaxDepth) return Fail(pos_, "expression nested too deeply");
      const int a = ParseUnary();
      --depth_;
      if (a < 0) return -1;
      Program::Node n{Op::kNot};
      n.a = a;
      return Add(std::move(n));
    }
    if (pos_ < src_.size() && src_[pos_] == '-') {
      ++pos_;
      if (++depth_ > kMaxDepth) return Fail(pos_, "expression nested too deeply");
      const int a = ParseUnary();
      --depth_;
      if (a < 0) return -1;
      Program::Node n{Op::kNeg};
      n.a = a;
      return Add(std::move(n));
    }
    return ParsePrimary();
  }

  int Const(Val v) {
    Program::Node n{Op::kConst};
    n.idx = static_cast<int>(p_->consts_.size());
    p_->consts_.push_back(v);
    return Add(std::move(n));
  }

  bool ParseString(std::string* out) {
    const char q = src_[pos_];
    const size_t start = pos_;
    ++pos_;
    while (pos_ < src_.size() && src_[pos_] != q) {
      char c = src_[pos_];
      if (c == '\\') {
        if (pos_ + 1 >= src_.size()) break;
        const char e = src_[++pos_];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case '0': c = '\0'; break;
          case '\\': case '"': case '\'': c = e; break;
          default:
            Fail(pos_ - 1, std::string("unknown escape \\") + e);
            return false;
        }
      }
      out->push_back(c);
      ++pos_;
    }
    if (pos_ >= src_.size()) {
      Fail(start, "unterminated string");
      return false;
    }
    ++pos_;
    return true;
  }

  int ParseNumber() {
    const size_t start = pos_;
    bool is_float = false;
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c >= '0' && c <= '9') {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
        ++pos_;
        if ((c == 'e' || c == 'E') && pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) {
          ++pos_;
        }
      } else {
        break;
      }
    }
    const char* b = src_.data() + start;
    const char* e = src_.data() + pos_;
    if (!is_float) {
      int64_t v;
      auto r = std::from_chars(b, e, v);
      if (r.ec == std::errc() && r.ptr == e) return Const(Int(v));
    }
    double d;
    auto r = std::from_chars(b, e, d);
    if (r.ec != std::errc() || r.ptr != e) return Fail(start, "malformed number");
    return Const(Float(d));
  }

  std::string_view Ident() {
    const size_t start = pos_;
    while (pos_ < src_.size() && IsIdentChar(src_[pos_])) ++pos_;
    return src_.substr(start, pos_ - start);
  }

  static bool FuncOp(std::string_view name, Op* op, int* arity) {
    struct F {
      std::string_view name;
      Op op;
      int arity;
    };
    static const F kFuncs[] = {
        {"exists", Op::kExists, 1},         {"startsWith", Op::kStartsWith, 2},
        {"endsWith", Op::kEndsWith, 2},     {"contains", Op::kContains, 2},
        {"lower", Op::kLower, 1},           {"upper", Op::kUpper, 1},
        {"matches", Op::kMatches, 2},       {"len", Op::kLen, 1},
    };
    for (const F& f : kFuncs) {
      if (f.name == name) {
        *op = f.op;
        *arity = f.arity;
        return true;
      }
    }
    return false;
  }

  // Parses the arguments after '(' of `name`; `receiver` is the first
  // argument in method form (or -1).
  int ParseCall(std::string_view name, size_t name_at, int receiver) {
    Op op;
    int arity;
    if (!FuncOp(name, &op, &arity)) {
      return Fail(name_at, "unknown function '" + std::string(name) +
                               "' (known: exists, startsWith, endsWith, contains, lower, upper, "
                               "matches, len)");
    }
    ++pos_;  // '('
    std::vector<int> args;
    std::vector<size_t> arg_at;
    if (receiver >= 0) {
      args.push_back(receiver);
      arg_at.push_back(name_at);
    }
    SkipSpace();
    if (!Eat(")")) {
      while (true) {
        SkipSpace();
        arg_at.push_back(pos_);
        const int a = ParseExpr(0);
        if (a < 0) return -1;
        args.push_back(a);
        if (Eat(",")) continue;
        if (Eat(")")) break;
        return Fail(pos_, "expected ',' or ')' in the arguments of " + std::string(name));
      }
    }
    if (static_cast<int>(args.size()) != arity) {
      return Fail(name_at, std::string(name) + " takes " + std::to_string(arity) +
                               (arity == 1 ? " argument" : " arguments") + ", not " +
                               std::to_string(args.size()));
    }
    Program::Node n{op};
    n.a = args[0];
    if (arity > 1) n.b = args[1];
    if (op == Op::kExists && p_->nodes_[static_cast<size_t>(args[0])].op != Op::kPath) {
      return Fail(arg_at[0], "exists() takes a field path");
    }
    if (op == Op::kMatches) {
      const Program::Node& pat = p_->nodes_[static_cast<size_t>(args[1])];
      if (pat.op != Op::kConst || p_->consts_[static_cast<size_t>(pat.idx)].t != Val::T::kStr) {
        return Fail(arg_at[1], "matches() takes a string literal pattern");
      }
      const std::string_view text = p_->consts_[static_cast<size_t>(pat.idx)].s;
      RE2::Options o;
      o.set_log_errors(false);
      auto re = std::make_unique<RE2>(re2::StringPiece(text.data(), text.size()), o);
      if (!re->ok()) return Fail(arg_at[1], "bad regular expression: " + re->error());
      n.idx = static_cast<int>(p_->regexes_.size());
      p_->regexes_.push_back(std::move(re));
    }
    return Add(std::move(n));
  }

  int ParsePrimary() {
    SkipSpace();
    if (pos_ >= src_.size()) return Fail(pos_, "expected a value, found the end");
    const char c = src_[pos_];
    if (c == '(') {
      ++pos_;
      const int e = ParseExpr(0);
      if (e < 0) return -1;
      if (!Eat(")")) return Fail(pos_, "expected ')'");
      return e;
    }
    if (c == '"' || c == '\'') {
      std::string s;
      if (!ParseString(&s)) return -1;
      p_->strings_.push_back(std::move(s));
      return Const(Str(p_->strings_.back()));
    }
    if ((c >= '0' && c <= '9') || (c == '.' && pos_ + 1 < src_.size() && src_[pos_ + 1] >= '0' &&
                                   src_[pos_ + 1] <= '9')) {
      return ParseNumber();
    }
    if (c == '[') return Fail(pos_, "a list [..] is only allowed after 'in'");
    if (!IsIdentStart(c)) return Fail(pos_, "unexpected '" + std::string(1, c) + "'");
    const size_t name_at = pos_;
    const std::string_view name = Ident();
    if (name == "true") return Const(Val::Bool(true));
    if (name == "false") return Const(Val::Bool(false));
    if (name == "null") return Const(Val::Null());
    if (name == "in") return Fail(name_at, "expected a value before 'in'");
    const size_t after = pos_;
    SkipSpace();
    if (pos_ < src_.size() && src_[pos_] == '(') return ParseCall(name, name_at, -1);
    pos_ = after;
    return ParsePathFrom(name, name_at);
  }

  // The rest of a path whose first name was read; handles method calls.
  int ParsePathFrom(std::string_view first, size_t start) {
    Path path;
    path.segs.push_back(PathSeg{std::string(first)});
    while (pos_ < src_.size()) {
      if (src_[pos_] == '.' && pos_ + 1 < src_.size() && IsIdentStart(src_[pos_ + 1])) {
        const size_t save = pos_;
        ++pos_;
        const size_t name_at = pos_;
        const std::string_view name = Ident();
        Op op;
        int arity;
        if (pos_ < src_.size() && src_[pos_] == '(' && FuncOp(name, &op, &arity)) {
          const int recv = PathNode(std::move(path), start, save);
          return ParseCall(name, name_at, recv);
        }
        path.segs.push_back(PathSeg{std::string(name)});
        continue;
      }
      if (src_[pos_] == '[') {
        const size_t open = pos_;
        ++pos_;
        SkipSpace();
        PathSeg seg;
        if (pos_ < src_.size() && (src_[pos_] == '"' || src_[pos_] == '\'')) {
          if (!ParseString(&seg.key)) return -1;
        } else {
          const size_t d = pos_;
          int64_t v = 0;
          while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') {
            if (v > (INT64_MAX - 9) / 10) return Fail(d, "array index too large");
            v = v * 10 + (src_[pos_] - '0');
            ++pos_;
          }
          if (pos_ == d) return Fail(d, "expected an array index or a quoted key after '['");
          seg.index = v;
        }
        SkipSpace();
        if (pos_ >= src_.size() || src_[pos_] != ']') return Fail(pos_, "expected ']'");
        ++pos_;
        (void)open;
        path.segs.push_back(std::move(seg));
        continue;
      }
      break;
    }
    return PathNode(std::move(path), start, pos_);
  }

  int PathNode(Path path, size_t from, size_t to) {
    path.text.assign(src_.substr(from, to - from));
    Program::Node n{Op::kPath};
    n.idx = static_cast<int>(p_->paths_.size());
    p_->paths_.push_back(std::move(path));
    return Add(std::move(n));
  }

  int ParseList() {
    SkipSpace();
    if (pos_ >= src_.size() || src_[pos_] != '[') {
      // `x in field`: the field holds an array.
      return ParseExpr(3);
    }
    ++pos_;
    Program::Node n{Op::kList};
    SkipSpace();
    if (!Eat("]")) {
      while (true) {
        const int item = ParseExpr(0);
        if (item < 0) return -1;
        n.items.push_back(item);
        if (Eat(",")) continue;
        if (Eat("]")) break;
        return Fail(pos_, "expected ',' or ']' in the list");
      }
    }
    return Add(std::move(n));
  }

  std::string_view src_;
  Program* p_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::string error_;
  size_t error_at_ = 0;
};

Program::Program() = default;
Program::~Program() = default;

bool Program::Compile(std::string_view src, Program* out, std::string* error, size_t* column) {
  out->source_.assign(src);
  Parser p(out->source_, out);
  return p.Parse(error, column);
}

// ---- evaluation ----

namespace {

Val Arith(char op, const Val& a, const Val& b, Arena* scratch) {
  if (op == '+' && a.t == Val::T::kStr && b.t == Val::T::kStr) {
    uint8_t* p = scratch->Alloc(a.s.size() + b.s.size());
    std::memcpy(p, a.s.data(), a.s.size());
    std::memcpy(p + a.s.size(), b.s.data(), b.s.size());
    return Str(std::string_view(reinterpret_cast<const char*>(p), a.s.size() + b.s.size()));
  }
  if (!a.is_number() || !b.is_number()) return Val::Null();
  const bool ints = a.t == Val::T::kInt && b.t == Val::T::kInt;
  int64_t r;
  switch (op) {
    case '+':
      if (ints && !__builtin_add_overflow(a.i, b.i, &r)) return Int(r);
      return Float(a.number() + b.number());
    case '-':
      if (ints && !__builtin_sub_overflow(a.i, b.i, &r)) return Int(r);
      return Float(a.number() - b.number());
    case '*':
      if (ints && !__builtin_mul_overflow(a.i, b.i, &r)) return Int(r);
      return Float(a.number() * b.number());
    case '/':
      if (b.number() == 0) return Val::Null();
      return Float(a.number() / b.number());
    case '%':
      if (ints) {
        if (b.i == 0) return Val::Null();
        if (b.i == -1) return Int(0);  // INT64_MIN % -1 traps
        return Int(a.i % b.i);
      }
      if (b.number() == 0) return Val::Null();
      return Float(std::fmod(a.number(), b.number()));
  }
  return Val::Null();
}

std::string_view CaseMap(std::string_view s, bool upper, Arena* scratch) {
  uint8_t* p = scratch->Alloc(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    p[i] = static_cast<uint8_t>(c);
  }
  return {reinterpret_cast<const char*>(p), s.size()};
}

}  // namespace

Val Program::Eval(const Doc& doc, Arena* scratch) const {
  if (root_ < 0) return Val::Null();
  return EvalNode(root_, doc, scratch);
}

Val Program::EvalNode(int idx, const Doc& doc, Arena* scratch) const {
  const Node& n = nodes_[static_cast<size_t>(idx)];
  switch (n.op) {
    case Op::kConst: return consts_[static_cast<size_t>(n.idx)];
    case Op::kPath: return FromRaw(doc.Lookup(paths_[static_cast<size_t>(n.idx)]));
    case Op::kList: return Val::Null();  // only read through kIn
    case Op::kNot: return Val::Bool(!Truthy(EvalNode(n.a, doc, scratch)));
    case Op::kNeg: {
      const Val a = EvalNode(n.a, doc, scratch);
      if (a.t == Val::T::kInt) return a.i == INT64_MIN ? Float(-static_cast<double>(a.i)) : Int(-a.i);
      if (a.t == Val::T::kFloat) return Float(-a.f);
      return Val::Null();
    }
    case Op::kAnd:
      return Val::Bool(Truthy(EvalNode(n.a, doc, scratch)) && Truthy(EvalNode(n.b, doc, scratch)));
    case Op::kOr:
      return Val::Bool(Truthy(EvalNode(n.a, doc, scratch)) || Truthy(EvalNode(n.b, doc, scratch)));
    case Op::kEq: return Val::Bool(Equal(EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch)));
    case Op::kNe:
      return Val::Bool(!Equal(EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch)));
    case Op::kLt: return Val::Bool(Compare(EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch)) == -1);
    case Op::kLe: {
      const int c = Compare(EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch));
      return Val::Bool(c == -1 || c == 0);
    }
    case Op::kGt: return Val::Bool(Compare(EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch)) == 1);
    case Op::kGe: {
      const int c = Compare(EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch));
      return Val::Bool(c == 1 || c == 0);
    }
    case Op::kIn: {
      const Val x = EvalNode(n.a, doc, scratch);
      const Node& list = nodes_[static_cast<size_t>(n.b)];
      if (list.op == Op::kList) {
        for (int item : list.items) {
          if (Equal(x, EvalNode(item, doc, scratch))) return Val::Bool(true);
        }
        return Val::Bool(false);
      }
      const Val arr = EvalNode(n.b, doc, scratch);
      if (arr.t != Val::T::kRaw) return Val::Bool(false);
      wire::Reader rd(arr.raw.data, arr.raw.size);
      const wire::Value h = rd.Next();
      if (h.kind != wire::Kind::kArray) return Val::Bool(false);
      for (uint32_t i = 0; i < h.len; ++i) {
        const uint8_t* p = rd.pos();
        rd.Skip();
        if (Equal(x, FromRaw(RawValue{p, static_cast<uint32_t>(rd.pos() - p)}))) {
          return Val::Bool(true);
        }
      }
      return Val::Bool(false);
    }
    case Op::kAdd: return Arith('+', EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch), scratch);
    case Op::kSub: return Arith('-', EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch), scratch);
    case Op::kMul: return Arith('*', EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch), scratch);
    case Op::kDiv: return Arith('/', EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch), scratch);
    case Op::kMod: return Arith('%', EvalNode(n.a, doc, scratch), EvalNode(n.b, doc, scratch), scratch);
    case Op::kExists:
      return Val::Bool(
          doc.Lookup(paths_[static_cast<size_t>(nodes_[static_cast<size_t>(n.a)].idx)]).found());
    case Op::kStartsWith:
    case Op::kEndsWith:
    case Op::kContains: {
      const Val s = EvalNode(n.a, doc, scratch);
      const Val t = EvalNode(n.b, doc, scratch);
      if (s.t != Val::T::kStr || t.t != Val::T::kStr) return Val::Bool(false);
      if (n.op == Op::kStartsWith) return Val::Bool(s.s.substr(0, t.s.size()) == t.s);
      if (n.op == Op::kEndsWith) {
        return Val::Bool(s.s.size() >= t.s.size() && s.s.substr(s.s.size() - t.s.size()) == t.s);
      }
      return Val::Bool(s.s.find(t.s) != std::string_view::npos);
    }
    case Op::kLower:
    case Op::kUpper: {
      const Val s = EvalNode(n.a, doc, scratch);
      if (s.t != Val::T::kStr) return Val::Null();
      return Str(CaseMap(s.s, n.op == Op::kUpper, scratch));
    }
    case Op::kMatches: {
      const Val s = EvalNode(n.a, doc, scratch);
      if (s.t != Val::T::kStr) return Val::Bool(false);
      return Val::Bool(RE2::PartialMatch(re2::StringPiece(s.s.data(), s.s.size()),
                                         *regexes_[static_cast<size_t>(n.idx)]));
    }
    case Op::kLen: {
      const Val s = EvalNode(n.a, doc, scratch);
      if (s.t == Val::T::kStr) return Int(static_cast<int64_t>(s.s.size()));
      if (s.t == Val::T::kRaw) {
        wire::Reader rd(s.raw.data, s.raw.size);
        const wire::Value h = rd.Next();
        if (h.kind == wire::Kind::kArray || h.kind == wire::Kind::kMap) return Int(h.len);
      }
      return Val::Null();
    }
  }
  return Val::Null();
}

}  // namespace forkd::transforms::expr
