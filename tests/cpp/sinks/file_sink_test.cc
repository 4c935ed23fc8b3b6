// The file sink: JSON Lines and CSV output, the committed length kept in the
// cursor state (output past it is cut on Open), failed flushes retried
// without duplicates, and rotation by size and by time.
#include "sinks/file/file_sink.h"

#include <sys/stat.h>

#include <cerrno>

#include "core/fs.h"
#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

using test::FaultGuard;
using test::JsonChecker;
using test::Pack;
using test::TempDir;
using test::U8;

constexpr int64_t kSecond = 1000000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
// 2026-11-21T17:05:00Z, in microseconds.
constexpr int64_t kT0 = 1795280700ll * kSecond;

void Put(FileSink& sink, int64_t recv_us, const std::string& id, const std::string& payload) {
  log::EntryHeader h;
  h.recv_us = recv_us;
  Record r;
  r.header = &h;
  r.event_id = id;
  r.payload = U8(payload);
  r.payload_size = payload.size();
  // As the pipeline does: what came before a new output unit is flushed
  // first, then the unit is started, then the record written into it.
  if (sink.NeedsRotate(r)) {
    REQUIRE(sink.Flush().ok());
    REQUIRE(sink.Rotate(r).ok());
  }
  sink.Write(r);
}

// {"v": "<text>"}
std::string Text(const std::string& text) {
  return Pack([&](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("v");
    w.Str(text);
  });
}

FileSink::Settings At(const std::string& path, FileSink::Format f = FileSink::Format::kJsonl) {
  FileSink::Settings s;
  s.path = path;
  s.format = f;
  return s;
}

std::vector<std::string> Lines(const std::string& text, const std::string& sep = "\n") {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(sep, i);
    REQUIRE(j != std::string::npos);  // every line is terminated
    out.push_back(text.substr(i, j - i));
    i = j + sep.size();
  }
  return out;
}

// Every line of every file in `dir` (sorted by name), in order.
std::vector<std::string> AllLines(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& name : test::ListDir(dir)) {
    for (auto& l : Lines(test::ReadFileOrDie(dir + "/" + name))) out.push_back(l);
  }
  return out;
}

// The JSONL line for a Text() payload.
std::string TextLine(const std::string& id, const std::string& text) {
  return "{\"_fork_id\":\"" + id + "\",\"v\":\"" + text + "\"}";
}

std::string Id(int i) {
  char b[16];
  std::snprintf(b, sizeof(b), "id-%02d", i);
  return b;
}

}  // namespace

TEST_CASE("JSON Lines: one object per line, the event id first", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("out/events.jsonl");
  FileSink sink(At(path));
  REQUIRE(sink.Open("").ok());
  CHECK(test::FileExists(dir.Join("out")));

  const std::string p1 = Pack([](wire::Writer& w) {
    w.MapHeader(5);
    w.Str("a");
    w.Uint(1);
    w.Str("s");
    w.Str("x\"y\n");
    w.Str("_fork_id");  // forkd's id wins; the payload's field is dropped
    w.Str("spoof");
    w.Str("n");
    w.Nil();
    w.Str("nested");
    w.MapHeader(1);
    w.Str("k");
    w.ArrayHeader(3);
    w.Uint(1);
    w.Double(2.5);
    w.Bool(true);
  });
  const std::string p2 = Pack([](wire::Writer& w) { w.MapHeader(0); });
  const std::string p3 = Pack([](wire::Writer& w) {
    w.MapHeader(2);
    w.Uint(7);
    w.Str("int key");
    w.Str("bin");
    w.Bin("hi!", 3);
  });
  Put(sink, kT0, "id-1", p1);
  Put(sink, kT0 + 1, "id-2", p2);
  Put(sink, kT0 + 2, "id-3", p3);
  const std::string want =
      "{\"_fork_id\":\"id-1\",\"a\":1,\"s\":\"x\\\"y\\n\",\"n\":null,\"nested\":{\"k\":[1,2.5,true]"
      "}}\n"
      "{\"_fork_id\":\"id-2\"}\n"
      "{\"_fork_id\":\"id-3\",\"7\":\"int key\",\"bin\":\"aGkh\"}\n";
  CHECK(sink.buffered_bytes() == want.size());
  // Nothing is written before Flush (the file may exist, empty).
  CHECK((!test::FileExists(path) || test::ReadFileOrDie(path).empty()));

  REQUIRE(sink.Flush().ok());
  CHECK(sink.buffered_bytes() == 0);
  CHECK(test::ReadFileOrDie(path) == want);
  for (const auto& line : Lines(want)) CHECK(JsonChecker::Valid(line));
  CHECK(sink.State() ==
        path + "\n" + std::to_string(want.size()) + "\n" + std::to_string(kT0) + "\n");

  // A second batch appends.
  Put(sink, kT0 + 3, "id-4", p2);
  REQUIRE(sink.Flush().ok());
  CHECK(test::ReadFileOrDie(path) == want + "{\"_fork_id\":\"id-4\"}\n");
  // An empty flush is fine.
  REQUIRE(sink.Flush().ok());
}

TEST_CASE("CSV: a header from the first record and RFC 4180 quoting", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.csv");
  FileSink sink(At(path, FileSink::Format::kCsv));
  REQUIRE(sink.Open("").ok());
  const std::string p1 = Pack([](wire::Writer& w) {
    w.MapHeader(10);
    w.Str("a");
    w.Uint(1);
    w.Str("b");
    w.Str("x,y");
    w.Str("c");
    w.Str("say \"hi\"");
    w.Str("d");
    w.Str("line\nbreak");
    w.Str("e");
    w.Nil();
    w.Str("f");
    w.Bool(true);
    w.Str("_fork_id");
    w.Str("spoof");
    w.Str("g");
    w.MapHeader(1);
    w.Str("k");
    w.Uint(1);
    w.Str("h");
    w.Bin("hi!", 3);
    w.Str("t");
    w.Timestamp(1763747400, 0);
  });
  // Another order, a missing field, an unknown one.
  const std::string p2 = Pack([](wire::Writer& w) {
    w.MapHeader(3);
    w.Str("b");
    w.Str("only b");
    w.Str("zzz");
    w.Uint(5);
    w.Str("a");
    w.Double(-2.5);
  });
  Put(sink, kT0, "id-1", p1);
  Put(sink, kT0, "id-2", p2);
  REQUIRE(sink.Flush().ok());
  const std::string header = "_fork_id,a,b,c,d,e,f,g,h,t\r\n";
  const std::string rows =
      "id-1,1,\"x,y\",\"say \"\"hi\"\"\",\"line\nbreak\",,true,\"{\"\"k\"\":1}\",aGkh,"
      "2025-11-21T17:50:00.000Z\r\n"
      "id-2,-2.5,only b,,,,,,,\r\n";
  CHECK(test::ReadFileOrDie(path) == header + rows);

  // The next batch goes on in the same file: no second header.
  Put(sink, kT0, "id-3", p2);
  REQUIRE(sink.Flush().ok());
  CHECK(test::ReadFileOrDie(path) == header + rows + "id-3,-2.5,only b,,,,,,,\r\n");
  // The columns are part of the committed state (0x1f between names).
  CHECK_THAT(sink.State(), Catch::EndsWith("\na\x1f"
                                           "b\x1f"
                                           "c\x1f"
                                           "d\x1f"
                                           "e\x1f"
                                           "f\x1f"
                                           "g\x1f"
                                           "h\x1f"
                                           "t"));
}

TEST_CASE("CSV with configured columns quotes header names that need it", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.csv");
  FileSink::Settings s = At(path, FileSink::Format::kCsv);
  s.columns = {"user id", "a,b", "q\"x"};
  FileSink sink(s);
  REQUIRE(sink.Open("").ok());
  Put(sink, kT0, "id-1", Pack([](wire::Writer& w) {
        w.MapHeader(3);
        w.Str("q\"x");
        w.Int(-1);
        w.Str("ignored");
        w.Uint(2);
        w.Str("user id");
        w.Str("u1");
      }));
  REQUIRE(sink.Flush().ok());
  CHECK(test::ReadFileOrDie(path) ==
        "_fork_id,user id,\"a,b\",\"q\"\"x\"\r\n"
        "id-1,u1,,-1\r\n");
}

TEST_CASE("Open(state) cuts off output written after the last commit", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.jsonl");
  std::string committed_state;
  std::string batch1, batch2;
  {
    FileSink sink(At(path));
    REQUIRE(sink.Open("").ok());
    for (int i = 0; i < 3; ++i) Put(sink, kT0 + i, Id(i), Text("one"));
    REQUIRE(sink.Flush().ok());
    committed_state = sink.State();  // the cursor commits this
    batch1 = test::ReadFileOrDie(path);
    // The next batch reaches the file, but forkd dies before the cursor.
    for (int i = 3; i < 6; ++i) Put(sink, kT0 + i, Id(i), Text("two"));
    REQUIRE(sink.Flush().ok());
    batch2 = test::ReadFileOrDie(path).substr(batch1.size());
    REQUIRE_FALSE(batch2.empty());
  }
  // Restart: the pipeline reopens the sink with the committed state and
  // delivers the second batch again.
  FileSink sink(At(path));
  REQUIRE(sink.Open(committed_state).ok());
  CHECK(test::ReadFileOrDie(path) == batch1);
  for (int i = 3; i < 6; ++i) Put(sink, kT0 + i, Id(i), Text("two"));
  REQUIRE(sink.Flush().ok());
  CHECK(test::ReadFileOrDie(path) == batch1 + batch2);  // each record once

  SECTION("a file shorter than the state says is kept as it is") {
    FileSink again(At(path));
    REQUIRE(::truncate(path.c_str(), 10) == 0);
    REQUIRE(again.Open(committed_state).ok());
    CHECK(test::FileSizeOf(path) == 10);
  }
  SECTION("a state whose file is gone starts a new file") {
    REQUIRE(::unlink(path.c_str()) == 0);
    FileSink again(At(path));
    REQUIRE(again.Open(committed_state).ok());
    Put(again, kT0 + 9, Id(9), Text("new"));
    REQUIRE(again.Flush().ok());
    CHECK(test::ReadFileOrDie(path) == TextLine(Id(9), "new") + "\n");
  }
}

TEST_CASE("Open(state) after a size rotation the cursor never saw: the rotated file is cut back to the committed bytes", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.jsonl");
  FileSink::Settings settings = At(path);
  settings.rotate_bytes = 100;
  std::string committed_state, batch1;
  {
    FileSink sink(settings);
    REQUIRE(sink.Open("").ok());
    for (int i = 0; i < 3; ++i) Put(sink, kT0 + i, Id(i), Text("one"));  // 3 lines, under 100 bytes
    REQUIRE(sink.Flush().ok());
    committed_state = sink.State();  // the cursor commits this
    batch1 = test::ReadFileOrDie(path);
    // The next records pass rotate_bytes: the file is renamed, a new one
    // begun and written; then the power goes before the cursor moves.
    for (int i = 3; i < 6; ++i) Put(sink, kT0 + i, Id(i), Text("two"));
    REQUIRE(sink.Flush().ok());
    REQUIRE(test::ListDir(dir.path()).size() == 2);
    REQUIRE(test::FileSizeOf(path) < batch1.size());
  }
  FileSink sink(settings);
  REQUIRE(sink.Open(committed_state).ok());
  // The rotated file holds the committed lines only, the active file nothing.
  std::vector<std::string> names = test::ListDir(dir.path());
  REQUIRE(names.size() == 2);
  const std::string rotated = dir.Join(names[0] == "events.jsonl" ? names[1] : names[0]);
  CHECK(test::ReadFileOrDie(rotated) == batch1);
  CHECK(test::FileSizeOf(path) == 0);
  // The pipeline delivers everything after the cursor again: each line once.
  for (int i = 3; i < 6; ++i) Put(sink, kT0 + i, Id(i), Text("two"));
  REQUIRE(sink.Flush().ok());
  std::vector<std::string> want;
  for (int i = 0; i < 6; ++i) want.push_back(TextLine(Id(i), i < 3 ? "one" : "two"));
  std::vector<std::string> got;
  for (const std::string& f : {rotated, path}) {
    for (auto& l : Lines(test::ReadFileOrDie(f))) got.push_back(l);
  }
  CHECK(got == want);
}

TEST_CASE("Open(state) keeps a CSV file's columns and writes no second header", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.csv");
  std::string state, first;
  {
    FileSink sink(At(path, FileSink::Format::kCsv));
    REQUIRE(sink.Open("").ok());
    Put(sink, kT0, "id-1", Pack([](wire::Writer& w) {
          w.MapHeader(2);
          w.Str("a");
          w.Uint(1);
          w.Str("b");
          w.Uint(2);
        }));
    REQUIRE(sink.Flush().ok());
    state = sink.State();
    first = test::ReadFileOrDie(path);
    Put(sink, kT0, "id-2", Text("uncommitted"));
    REQUIRE(sink.Flush().ok());
  }
  FileSink sink(At(path, FileSink::Format::kCsv));
  REQUIRE(sink.Open(state).ok());
  // Fields in another order: placed by the committed columns.
  Put(sink, kT0, "id-2", Pack([](wire::Writer& w) {
        w.MapHeader(2);
        w.Str("b");
        w.Uint(20);
        w.Str("a");
        w.Uint(10);
      }));
  REQUIRE(sink.Flush().ok());
  CHECK(first == "_fork_id,a,b\r\nid-1,1,2\r\n");
  CHECK(test::ReadFileOrDie(path) == first + "id-2,10,20\r\n");
}

TEST_CASE("Discard drops the batch and goes back to the committed file", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.jsonl");
  FileSink sink(At(path));
  REQUIRE(sink.Open("").ok());
  Put(sink, kT0, Id(1), Text("kept"));
  REQUIRE(sink.Flush().ok());
  const std::string state = sink.State();
  Put(sink, kT0 + 1, Id(2), Text("dropped"));
  CHECK(sink.buffered_bytes() > 0);
  sink.Discard();
  CHECK(sink.buffered_bytes() == 0);
  CHECK(sink.State() == state);
  Put(sink, kT0 + 2, Id(3), Text("after"));
  REQUIRE(sink.Flush().ok());
  CHECK(test::ReadFileOrDie(path) ==
        TextLine(Id(1), "kept") + "\n" + TextLine(Id(3), "after") + "\n");
}

TEST_CASE("a failed write or sync is a retry that leaves no partial output", "[file_sink]") {
  FaultGuard guard;
  TempDir dir;
  const std::string path = dir.Join("events.jsonl");
  FileSink sink(At(path));
  REQUIRE(sink.Open("").ok());
  Put(sink, kT0, Id(1), Text("first"));
  REQUIRE(sink.Flush().ok());
  const std::string before = test::ReadFileOrDie(path);
  const std::string state = sink.State();

  for (const char* kind : {"write", "fsync"}) {
    INFO(kind);
    Put(sink, kT0 + 1, Id(2), Text("second"));
    const size_t buffered = sink.buffered_bytes();
    fs::InjectFault(kind, 1, ENOSPC, false);
    const Status s = sink.Flush();
    fs::ClearFaults();
    CHECK(s.IsRetry());
    CHECK_THAT(s.message(), Catch::Contains("no space left on device") && Catch::Contains(path));
    CHECK(test::ReadFileOrDie(path) == before);  // cut back
    CHECK(sink.buffered_bytes() == buffered);    // the batch is kept for the retry
    CHECK(sink.State() == state);
    sink.Discard();
  }
  // The retry of a kept batch writes it once.
  Put(sink, kT0 + 1, Id(2), Text("second"));
  fs::InjectFault("write", 1, ENOSPC, false);
  CHECK(sink.Flush().IsRetry());
  fs::ClearFaults();
  REQUIRE(sink.Flush().ok());
  CHECK(test::ReadFileOrDie(path) == before + TextLine(Id(2), "second") + "\n");
}

TEST_CASE("fsync: false never syncs", "[file_sink]") {
  FaultGuard guard;
  TempDir dir;
  FileSink::Settings s = At(dir.Join("events.jsonl"));
  s.fsync = false;
  FileSink sink(s);
  REQUIRE(sink.Open("").ok());
  fs::InjectFault("fsync", 1, EIO, true);
  Put(sink, kT0, Id(1), Text("x"));
  CHECK(sink.Flush().ok());
}

TEST_CASE("rotation by size renames the active file beside it", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.jsonl");
  FileSink::Settings s = At(path);
  s.rotate_bytes = 150;
  const std::string text(30, 'x');
  const size_t line = TextLine(Id(0), text).size() + 1;
  REQUIRE(line * 2 < 150);
  REQUIRE(line * 3 >= 150);  // three records per file
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back(TextLine(Id(i), text));

  SECTION("in one batch") {
    FileSink sink(s);
    REQUIRE(sink.Open("").ok());
    for (int i = 0; i < 10; ++i) Put(sink, kT0 + i * kSecond, Id(i), Text(text));
    REQUIRE(sink.Flush().ok());
  }
  SECTION("a batch per record") {
    FileSink sink(s);
    REQUIRE(sink.Open("").ok());
    for (int i = 0; i < 10; ++i) {
      Put(sink, kT0 + i * kSecond, Id(i), Text(text));
      REQUIRE(sink.Flush().ok());
    }
  }
  SECTION("a restart between every record") {
    std::string state;
    for (int i = 0; i < 10; ++i) {
      FileSink sink(s);
      REQUIRE(sink.Open(state).ok());
      Put(sink, kT0 + i * kSecond, Id(i), Text(text));
      REQUIRE(sink.Flush().ok());
      state = sink.State();
    }
  }
  // Rotated files are named by their first record's time.
  CHECK(test::ListDir(dir.path()) == std::vector<std::string>{"events-2026-11-21T17-05-00Z.jsonl",
                                                              "events-2026-11-21T17-05-03Z.jsonl",
                                                              "events-2026-11-21T17-05-06Z.jsonl",
                                                              "events.jsonl"});
  CHECK(AllLines(dir.path()) == want);
  CHECK(Lines(test::ReadFileOrDie(path)) == std::vector<std::string>{want[9]});
}

TEST_CASE("rotation by size within one second loses nothing", "[file_sink]") {
  TempDir dir;
  const std::string text(30, 'x');
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back(TextLine(Id(i), text));

  SECTION("beside the active file") {
    FileSink::Settings s = At(dir.Join("events.jsonl"));
    s.rotate_bytes = 150;
    FileSink sink(s);
    REQUIRE(sink.Open("").ok());
    for (int i = 0; i < 10; ++i) {
      Put(sink, kT0, Id(i), Text(text));
      if (i % 4 == 3) REQUIRE(sink.Flush().ok());
    }
    REQUIRE(sink.Flush().ok());
    // Taken names get _1, _2 ..., which sort after the first: every record
    // once, in order, and no file far past the size.
    const auto files = test::ListDir(dir.path());
    CHECK(files == std::vector<std::string>{"events-2026-11-21T17-05-00Z.jsonl",
                                            "events-2026-11-21T17-05-00Z_1.jsonl",
                                            "events-2026-11-21T17-05-00Z_2.jsonl", "events.jsonl"});
    CHECK(AllLines(dir.path()) == want);
    for (const auto& f : files) CHECK(test::FileSizeOf(dir.Join(f)) < 150 + 60);
  }
  SECTION("in a directory, CSV") {
    FileSink::Settings s = At(dir.Join("out/"), FileSink::Format::kCsv);
    s.rotate_bytes = 100;
    FileSink sink(s);
    REQUIRE(sink.Open("").ok());
    for (int i = 0; i < 10; ++i) Put(sink, kT0, Id(i), Text(text));
    REQUIRE(sink.Flush().ok());
    const auto files = test::ListDir(dir.Join("out"));
    CHECK(files ==
          std::vector<std::string>{"2026-11-21T17-05-00Z.csv", "2026-11-21T17-05-00Z_1.csv",
                                   "2026-11-21T17-05-00Z_2.csv", "2026-11-21T17-05-00Z_3.csv"});
    size_t rows = 0;
    for (const auto& f : files) {
      const auto lines = Lines(test::ReadFileOrDie(dir.Join("out/" + f)), "\r\n");
      REQUIRE_FALSE(lines.empty());
      CHECK(lines[0] == "_fork_id,v");  // one header, first, in each file
      for (size_t i = 1; i < lines.size(); ++i) {
        CHECK(lines[i] != "_fork_id,v");
        ++rows;
      }
      CHECK(test::FileSizeOf(dir.Join("out/" + f)) < 100 + 60);
    }
    CHECK(rows == 10);
  }
}

TEST_CASE("rotation by time into a directory: one file per window, renamed when complete",
          "[file_sink]") {
  TempDir dir;
  FileSink::Settings s = At(dir.Join("out/"));
  s.rotate_ms = 3600 * 1000;
  std::string state;
  const std::string part20 = dir.Join("out/.2026-11-21T20-00-00Z.jsonl.part");
  {
    FileSink sink(s);
    REQUIRE(sink.Open("").ok());
    Put(sink, kT0, Id(1), Text("17:05"));
    Put(sink, kT0 + 10 * kMinute, Id(2), Text("17:15"));
    Put(sink, kT0 + kHour, Id(3), Text("18:05"));
    REQUIRE(sink.Flush().ok());
    Put(sink, kT0 + 3 * kHour, Id(4), Text("20:05"));
    REQUIRE(sink.Flush().ok());
    state = sink.State();
  }
  // Finished windows under their names; the open one under a hidden
  // temporary name, so a reader of *.jsonl never sees it half written.
  CHECK(test::ListDir(dir.Join("out")) ==
        std::vector<std::string>{".2026-11-21T20-00-00Z.jsonl.part", "2026-11-21T17-00-00Z.jsonl",
                                 "2026-11-21T18-00-00Z.jsonl"});
  CHECK(Lines(test::ReadFileOrDie(dir.Join("out/2026-11-21T17-00-00Z.jsonl"))) ==
        std::vector<std::string>{TextLine(Id(1), "17:05"), TextLine(Id(2), "17:15")});
  CHECK(Lines(test::ReadFileOrDie(dir.Join("out/2026-11-21T18-00-00Z.jsonl"))) ==
        std::vector<std::string>{TextLine(Id(3), "18:05")});
  CHECK_THAT(state, Catch::StartsWith(part20 + "\n"));

  // A restart within the window appends to its part file.
  FileSink sink(s);
  REQUIRE(sink.Open(state).ok());
  Put(sink, kT0 + 3 * kHour + 25 * kMinute, Id(5), Text("20:30"));
  REQUIRE(sink.Flush().ok());
  CHECK(Lines(test::ReadFileOrDie(part20)) ==
        std::vector<std::string>{TextLine(Id(4), "20:05"), TextLine(Id(5), "20:30")});
  CHECK(test::ListDir(dir.Join("out")).size() == 3);

  // Idle within the window: nothing changes. Past its end: renamed, and the
  // state says there is no open file.
  bool changed = true;
  REQUIRE(sink.Idle(kT0 + 3 * kHour + 50 * kMinute, &changed).ok());  // 20:55
  CHECK_FALSE(changed);
  REQUIRE(sink.Idle(kT0 + 4 * kHour, &changed).ok());  // 21:05
  CHECK(changed);
  CHECK(test::ListDir(dir.Join("out")) ==
        std::vector<std::string>{"2026-11-21T17-00-00Z.jsonl", "2026-11-21T18-00-00Z.jsonl",
                                 "2026-11-21T20-00-00Z.jsonl"});
  CHECK(Lines(test::ReadFileOrDie(dir.Join("out/2026-11-21T20-00-00Z.jsonl"))) ==
        std::vector<std::string>{TextLine(Id(4), "20:05"), TextLine(Id(5), "20:30")});
  CHECK_THAT(sink.State(), Catch::StartsWith("\n"));
  // A late record for a finished window goes to a file of its own, never
  // into the finished one.
  Put(sink, kT0 + 3 * kHour + 50 * kMinute, Id(6), Text("20:55"));
  REQUIRE(sink.Flush().ok());
  REQUIRE(sink.Idle(kT0 + 5 * kHour, &changed).ok());
  CHECK(Lines(test::ReadFileOrDie(dir.Join("out/2026-11-21T20-00-00Z_1.jsonl"))) ==
        std::vector<std::string>{TextLine(Id(6), "20:55")});
  // A restart with the state of a window that was finished meanwhile.
  FileSink again(s);
  REQUIRE(again.Open(state).ok());
  CHECK(Lines(test::ReadFileOrDie(dir.Join("out/2026-11-21T20-00-00Z.jsonl"))).size() == 2);
}

TEST_CASE("rotation by time beside the active file", "[file_sink]") {
  TempDir dir;
  const std::string path = dir.Join("events.csv");
  FileSink::Settings s = At(path, FileSink::Format::kCsv);
  s.rotate_ms = 3600 * 1000;
  FileSink sink(s);
  REQUIRE(sink.Open("").ok());
  Put(sink, kT0, Id(1), Text("a"));
  Put(sink, kT0 + 5 * kMinute, Id(2), Text("b"));
  REQUIRE(sink.Flush().ok());
  Put(sink, kT0 + 56 * kMinute, Id(3), Text("c"));  // 18:01
  REQUIRE(sink.Flush().ok());
  CHECK(test::ListDir(dir.path()) ==
        std::vector<std::string>{"events-2026-11-21T17-00-00Z.csv", "events.csv"});
  CHECK(test::ReadFileOrDie(dir.Join("events-2026-11-21T17-00-00Z.csv")) ==
        "_fork_id,v\r\n" + Id(1) + ",a\r\n" + Id(2) + ",b\r\n");
  CHECK(test::ReadFileOrDie(path) == "_fork_id,v\r\n" + Id(3) + ",c\r\n");
  CHECK(sink.State() == path + "\n" + std::to_string(test::FileSizeOf(path)) + "\n" +
                            std::to_string(kT0 - 5 * kMinute + kHour) + "\nv");

  // A clock that goes back also starts a new file.
  Put(sink, kT0 - 6 * kMinute, Id(4), Text("d"));  // 16:59
  REQUIRE(sink.Flush().ok());
  CHECK(test::ListDir(dir.path()) == std::vector<std::string>{"events-2026-11-21T17-00-00Z.csv",
                                                              "events-2026-11-21T18-00-00Z.csv",
                                                              "events.csv"});
  CHECK(test::ReadFileOrDie(path) == "_fork_id,v\r\n" + Id(4) + ",d\r\n");
}

}  // namespace forkd::sinks

namespace forkd::sinks {

// A crash after a flush, before the cursor commit: the restart cuts the file
// back to the committed state and the replay writes each record once — also
// when the crashed batch started a new file, because a rotation is committed
// (with the position of the record that starts the new file) before anything
// is written into the new file.
TEST_CASE("a crash after a rotating flush, before the cursor commit, duplicates nothing",
          "[file_sink]") {
  TempDir dir;
  FileSink::Settings s = At(dir.Join("events.jsonl"));
  s.rotate_bytes = 150;
  const std::string text(30, 'x');
  const std::string payload = Text(text);
  log::EntryHeader h;
  auto record = [&](int i) {
    h.recv_us = kT0 + i * kSecond;
    Record r;
    r.header = &h;
    static std::string id;
    id = Id(i);
    r.event_id = id;
    r.payload = U8(payload);
    r.payload_size = payload.size();
    return r;
  };
  // The pipeline's commit points: (next record to deliver, sink state).
  int committed_next = 0;
  std::string committed_state;
  auto deliver = [&](FileSink& sink, int from, int to, bool crash_before_commit) {
    for (int i = from; i < to; ++i) {
      Record r = record(i);
      if (sink.NeedsRotate(r)) {
        REQUIRE(sink.Flush().ok());
        committed_next = i;
        committed_state = sink.State();
        REQUIRE(sink.Rotate(r).ok());
        committed_state = sink.State();
      }
      sink.Write(r);
    }
    REQUIRE(sink.Flush().ok());
    if (!crash_before_commit) {
      committed_next = to;
      committed_state = sink.State();
    }
  };
  {
    FileSink sink(s);
    REQUIRE(sink.Open("").ok());
    deliver(sink, 0, 3, false);
    deliver(sink, 3, 6, /*crash_before_commit=*/true);  // rotates, then the process dies
  }
  FileSink sink(s);
  REQUIRE(sink.Open(committed_state).ok());
  deliver(sink, committed_next, 6, false);
  std::vector<std::string> want;
  for (int i = 0; i < 6; ++i) want.push_back(TextLine(Id(i), text));
  std::vector<std::string> got = AllLines(dir.path());
  std::sort(got.begin(), got.end());
  CHECK(got == want);
}

TEST_CASE("file_mode: octal read/write bits, never writable by others", "[file_sink]") {
  mode_t m = 0;
  std::string error;
  for (const auto& [text, mode] : std::vector<std::pair<std::string, mode_t>>{
           {"0640", 0640}, {"0600", 0600}, {"640", 0640}, {"0660", 0660}, {"0644", 0644}}) {
    INFO(text);
    REQUIRE(ParseFileMode(text, &m, &error));
    CHECK(m == mode);
  }
  for (const char* bad : {"", "640 ", "0o640", "0750", "1640", "06400", "rw-r-----", "0888"}) {
    INFO(bad);
    CHECK_FALSE(ParseFileMode(bad, &m, &error));
    CHECK_THAT(error, Catch::StartsWith("expected an octal mode"));
  }
  CHECK_FALSE(ParseFileMode("0666", &m, &error));
  CHECK_THAT(error, Catch::Contains("any user of the machine"));
  CHECK_FALSE(ParseFileMode("0440", &m, &error));
  CHECK_THAT(error, Catch::Contains("the owner needs 6"));
  CHECK(DirModeFor(0640) == 0750);
  CHECK(DirModeFor(0600) == 0700);
  CHECK(DirModeFor(0644) == 0755);
  CHECK(DirModeFor(0660) == 0770);
}

TEST_CASE("files and directories it creates get file_mode, not the umask's", "[file_sink]") {
  // Without a umask, the modes seen are the sink's alone.
  struct NoUmask {
    mode_t old = ::umask(0);
    ~NoUmask() { ::umask(old); }
  } no_umask;
  TempDir dir;
  auto mode_of = [](const std::string& p) {
    struct stat st;
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  SECTION("the default: 0640 files in 0750 directories") {
    FileSink sink(At(dir.Join("a/b/events.jsonl")));
    REQUIRE(sink.Open("").ok());
    Put(sink, kT0, "id-1", Text("x"));
    REQUIRE(sink.Flush().ok());
    CHECK(mode_of(dir.Join("a")) == 0750);
    CHECK(mode_of(dir.Join("a/b")) == 0750);
    CHECK(mode_of(dir.Join("a/b/events.jsonl")) == 0640);
  }
  SECTION("0600: owner only, rotated and chunked files too") {
    FileSink::Settings st = At(dir.Join("out/"));
    st.rotate_ms = 3600 * 1000;
    st.file_mode = 0600;
    FileSink sink(st);
    REQUIRE(sink.Open("").ok());
    Put(sink, kT0, "id-1", Text("x"));
    REQUIRE(sink.Flush().ok());
    Put(sink, kT0 + kHour, "id-2", Text("y"));
    REQUIRE(sink.Flush().ok());
    CHECK(mode_of(dir.Join("out")) == 0700);
    const auto names = test::ListDir(dir.Join("out"));
    REQUIRE(names.size() == 2);  // a finished window and the part file of the next
    for (const auto& n : names) {
      INFO(n);
      CHECK(mode_of(dir.Join("out/" + n)) == 0600);
    }
  }
}

}  // namespace forkd::sinks
