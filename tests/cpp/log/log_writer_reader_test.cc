// LogWriter framing and LogReader recovery, LevelDB style: frame records, then
// poke the bytes (truncate, flip, zero, shrink a length) and check that every
// error path is reached and that damage is never returned as a record.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "core/crc32c.h"
#include "log/log_format.h"
#include "log/log_reader.h"
#include "log/log_writer.h"
#include "test_util.h"

namespace forkd::log {
namespace {

using test::CollectingReporter;
using test::TempDir;

// The framed bytes of `records`, written by one LogWriter from `offset`.
// starts[i]: offset of record i's first physical record; ends[i]: just past
// its last one.
struct Framed {
  std::string bytes;
  std::vector<uint64_t> starts;
  std::vector<uint64_t> ends;
};

Framed Frame(const std::vector<std::string>& records, uint64_t offset = 0) {
  LogWriter w(offset);
  wire::Buffer b;
  Framed f;
  for (const auto& r : records) {
    uint64_t pos = offset + b.size();
    const uint64_t left = kBlockSize - pos % kBlockSize;
    if (left < kHeaderSize) pos += left;
    f.starts.push_back(pos);
    w.AddRecord(reinterpret_cast<const uint8_t*>(r.data()), r.size(), nullptr, 0, &b);
    f.ends.push_back(offset + b.size());
    REQUIRE(w.offset() == offset + b.size());
  }
  f.bytes.assign(b.view());
  return f;
}

// A physical record as found in the bytes.
struct Phys {
  uint64_t offset;
  uint8_t type;
  size_t length;
  bool crc_ok;
};

// Walks the blocks of a cleanly written log; fails the test on anything but
// zero padding between records.
std::vector<Phys> ParsePhysical(const std::string& bytes) {
  std::vector<Phys> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t left = kBlockSize - pos % kBlockSize;
    if (left < kHeaderSize) {
      for (size_t i = pos; i < std::min(bytes.size(), pos + left); ++i) REQUIRE(bytes[i] == 0);
      pos += left;
      continue;
    }
    REQUIRE(pos + kHeaderSize <= bytes.size());
    const auto* h = reinterpret_cast<const uint8_t*>(bytes.data() + pos);
    uint32_t masked;
    std::memcpy(&masked, h, 4);
    const size_t len = h[4] | (h[5] << 8);
    const uint8_t type = h[6];
    REQUIRE(pos + kHeaderSize + len <= bytes.size());
    const uint32_t crc = crc32c::Extend(crc32c::Value(&type, 1), h + kHeaderSize, len);
    out.push_back({pos, type, len, crc32c::Unmask(masked) == crc});
    pos += kHeaderSize + len;
  }
  return out;
}

// One physical record with a correct checksum, for hand-built logs.
std::string PhysRecord(uint8_t type, const std::string& data) {
  std::string r(kHeaderSize, '\0');
  const uint32_t crc =
      crc32c::Mask(crc32c::Extend(crc32c::Value(&type, 1), data.data(), data.size()));
  std::memcpy(r.data(), &crc, 4);
  r[4] = static_cast<char>(data.size() & 0xff);
  r[5] = static_cast<char>(data.size() >> 8);
  r[6] = static_cast<char>(type);
  return r + data;
}

// A segment file in its own temp directory.
class SegmentFile {
 public:
  explicit SegmentFile(const std::string& bytes) : path_(dir_.Join("segment.log")) {
    test::WriteFileOrDie(path_, bytes);
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd_ >= 0);
  }
  ~SegmentFile() { ::close(fd_); }
  int fd() const { return fd_; }
  void Truncate(uint64_t n) { REQUIRE(::ftruncate(fd_, static_cast<off_t>(n)) == 0); }
  uint8_t ByteAt(uint64_t off) {
    uint8_t b;
    REQUIRE(::pread(fd_, &b, 1, static_cast<off_t>(off)) == 1);
    return b;
  }
  void SetByte(uint64_t off, uint8_t b) {
    REQUIRE(::pwrite(fd_, &b, 1, static_cast<off_t>(off)) == 1);
  }
  void Overwrite(uint64_t off, const std::string& bytes) {
    REQUIRE(::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(off)) ==
            static_cast<ssize_t>(bytes.size()));
  }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
};

struct ReadBack {
  std::vector<std::string> records;
  std::vector<uint64_t> offsets;  // last_record_offset() of each
  CollectingReporter reporter;
  Status io;
  uint64_t position = 0;
};

// Reads every record of `fd` up to `limit` with a fresh reader.
void ReadAll(int fd, uint64_t limit, ReadBack* out, uint64_t from = 0) {
  LogReader reader(fd, from, &out->reporter);
  std::string_view rec;
  while (reader.ReadRecord(limit, &rec, &out->io) == LogReader::Result::kRecord) {
    out->records.emplace_back(rec);
    out->offsets.push_back(reader.last_record_offset());
    REQUIRE(out->records.size() < 100000);  // a reader that never ends is a bug
  }
  out->position = reader.position();
}

std::vector<std::string> Prefix(const std::vector<std::string>& v, size_t n) {
  return std::vector<std::string>(v.begin(), v.begin() + static_cast<long>(n));
}

// Distinct records: the record's index is in its first bytes, the rest
// pseudo-random, so no two records are equal and none is a prefix of another.
std::vector<std::string> MakeRecords(const std::vector<size_t>& sizes, uint64_t seed = 7) {
  test::Rng rng(seed);
  std::vector<std::string> out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string r = rng.Bytes(sizes[i]);
    for (size_t k = 0; k < std::min<size_t>(r.size(), 4); ++k)
      r[k] = static_cast<char>(i >> (8 * k));
    out.push_back(std::move(r));
  }
  return out;
}

// Index of the record whose physical bytes (from its start, or from the end
// of the previous record for padding) contain `off`.
size_t RecordAt(const Framed& f, uint64_t off) {
  for (size_t i = 0; i < f.ends.size(); ++i) {
    if (off < f.ends[i]) return i;
  }
  FAIL("offset past the log");
  return 0;
}

}  // namespace

TEST_CASE("LogWriter and LogReader round-trip records of many sizes", "[log][reader]") {
  const std::vector<size_t> sizes = {0,
                                     1,
                                     7,
                                     100,
                                     kBlockSize - 2 * kHeaderSize,
                                     kBlockSize - kHeaderSize - 1,
                                     kBlockSize - kHeaderSize,
                                     kBlockSize - kHeaderSize + 1,
                                     kBlockSize,
                                     kBlockSize + 1,
                                     2 * kBlockSize - 1,
                                     3 * kBlockSize + 17,
                                     100000,
                                     0,
                                     5,
                                     65535,
                                     65536,
                                     65537};
  const auto records = MakeRecords(sizes);
  const Framed f = Frame(records);
  SegmentFile file(f.bytes);

  ReadBack rb;
  ReadAll(file.fd(), f.bytes.size(), &rb);
  CHECK(rb.io.ok());
  CHECK(rb.reporter.drops.empty());
  REQUIRE(rb.records.size() == records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    INFO("record " << i << " of " << records[i].size() << " bytes");
    CHECK(rb.records[i] == records[i]);
    CHECK(rb.offsets[i] == f.starts[i]);
  }
  CHECK(rb.position == f.bytes.size());

  // Every physical record is well formed and the fragments of each entry are
  // FULL, or FIRST MIDDLE* LAST with a block boundary before each continuation.
  const auto phys = ParsePhysical(f.bytes);
  size_t p = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    INFO("record " << i);
    REQUIRE(p < phys.size());
    REQUIRE(phys[p].offset == f.starts[i]);
    size_t total = 0;
    if (phys[p].type == kFullType) {
      total = phys[p].length;
      CHECK(phys[p].crc_ok);
      ++p;
    } else {
      REQUIRE(phys[p].type == kFirstType);
      total += phys[p].length;
      // A FIRST runs to its block's end.
      CHECK(phys[p].offset + kHeaderSize + phys[p].length ==
            (phys[p].offset / kBlockSize + 1) * kBlockSize);
      ++p;
      while (p < phys.size() && phys[p].type == kMiddleType) {
        CHECK(phys[p].offset % kBlockSize == 0);
        CHECK(phys[p].length == kBlockSize - kHeaderSize);
        CHECK(phys[p].crc_ok);
        total += phys[p].length;
        ++p;
      }
      REQUIRE(p < phys.size());
      REQUIRE(phys[p].type == kLastType);
      CHECK(phys[p].offset % kBlockSize == 0);
      CHECK(phys[p].crc_ok);
      total += phys[p].length;
      ++p;
    }
    CHECK(total == records[i].size());
  }
  CHECK(p == phys.size());
}

TEST_CASE("LogWriter splits entries into FIRST, MIDDLE and LAST at block boundaries",
          "[log][writer]") {
  SECTION("an entry that exactly fills a block is one FULL record, no padding after it") {
    const Framed f = Frame(MakeRecords({kBlockSize - kHeaderSize, 3}));
    const auto phys = ParsePhysical(f.bytes);
    REQUIRE(phys.size() == 2);
    CHECK(phys[0].type == kFullType);
    CHECK(phys[0].length == kBlockSize - kHeaderSize);
    CHECK(phys[1].offset == kBlockSize);
    CHECK(phys[1].type == kFullType);
  }
  SECTION("one byte more makes FIRST + LAST") {
    const Framed f = Frame(MakeRecords({kBlockSize - kHeaderSize + 1}));
    const auto phys = ParsePhysical(f.bytes);
    REQUIRE(phys.size() == 2);
    CHECK(phys[0].type == kFirstType);
    CHECK(phys[0].length == kBlockSize - kHeaderSize);
    CHECK(phys[1].type == kLastType);
    CHECK(phys[1].offset == kBlockSize);
    CHECK(phys[1].length == 1);
  }
  SECTION("three blocks' worth is FIRST, MIDDLE, MIDDLE, LAST") {
    const Framed f = Frame(MakeRecords({3 * kBlockSize}));
    const auto phys = ParsePhysical(f.bytes);
    REQUIRE(phys.size() == 4);
    CHECK(phys[0].type == kFirstType);
    CHECK(phys[1].type == kMiddleType);
    CHECK(phys[2].type == kMiddleType);
    CHECK(phys[3].type == kLastType);
    CHECK(phys[3].length == 3 * kBlockSize - 3 * (kBlockSize - kHeaderSize));
  }
  SECTION("a writer started near a block's end splits at that boundary") {
    const Framed f = Frame(MakeRecords({20}), kBlockSize - 10);
    REQUIRE(f.bytes.size() == kHeaderSize + 3 + kHeaderSize + 17);
    // Offsets in the slice are relative to kBlockSize - 10.
    CHECK(static_cast<uint8_t>(f.bytes[6]) == kFirstType);
    CHECK(static_cast<uint8_t>(f.bytes[4]) == 3);
    CHECK(static_cast<uint8_t>(f.bytes[10 + 6]) == kLastType);
    CHECK(static_cast<uint8_t>(f.bytes[10 + 4]) == 17);
  }
  SECTION("a writer started in a block's trailer pads it with zeros first") {
    for (size_t t = 1; t < kHeaderSize; ++t) {
      INFO("trailer of " << t << " bytes");
      const Framed f = Frame(MakeRecords({5}), kBlockSize - t);
      REQUIRE(f.bytes.size() == t + kHeaderSize + 5);
      CHECK(f.bytes.substr(0, t) == std::string(t, '\0'));
      CHECK(static_cast<uint8_t>(f.bytes[t + 6]) == kFullType);
      CHECK(f.starts[0] == kBlockSize);
    }
  }
}

TEST_CASE("block trailers: every gap of 0 to 10 bytes at a block's end", "[log][writer][reader]") {
  for (size_t gap = 0; gap <= 10; ++gap) {
    INFO("the first entry ends " << gap << " bytes before the block's end");
    const auto records = MakeRecords({kBlockSize - kHeaderSize - gap, 6, 40000});
    const Framed f = Frame(records);
    const auto phys = ParsePhysical(f.bytes);
    REQUIRE(phys.size() >= 3);
    CHECK(phys[0].offset + kHeaderSize + phys[0].length == kBlockSize - gap);
    if (gap < kHeaderSize) {
      // Too small for a header: zero padding, the next record starts the next block.
      CHECK(f.bytes.substr(kBlockSize - gap, gap) == std::string(gap, '\0'));
      CHECK(phys[1].offset == kBlockSize);
      CHECK(phys[1].type == kFullType);
    } else if (gap == kHeaderSize) {
      // Room for a header only: an empty FIRST, the data in the next block.
      CHECK(phys[1].offset == kBlockSize - gap);
      CHECK(phys[1].type == kFirstType);
      CHECK(phys[1].length == 0);
      CHECK(phys[2].offset == kBlockSize);
      CHECK(phys[2].type == kLastType);
    } else {
      CHECK(phys[1].offset == kBlockSize - gap);
    }
    SegmentFile file(f.bytes);
    ReadBack rb;
    ReadAll(file.fd(), f.bytes.size(), &rb);
    CHECK(rb.io.ok());
    CHECK(rb.reporter.drops.empty());
    CHECK(rb.records == records);
    CHECK(rb.offsets == f.starts);
  }
}

TEST_CASE("a writer resumed at a segment's length continues the same framing", "[log][writer]") {
  const auto records = MakeRecords({100, kBlockSize - 50, 3, 70000, 20, kBlockSize - 120, 9});
  const Framed whole = Frame(records);
  for (size_t split = 0; split <= records.size(); ++split) {
    INFO("split after " << split << " records");
    const std::vector<std::string> a(records.begin(), records.begin() + static_cast<long>(split));
    const std::vector<std::string> b(records.begin() + static_cast<long>(split), records.end());
    const Framed fa = Frame(a);
    const Framed fb = Frame(b, fa.bytes.size());
    CHECK(fa.bytes + fb.bytes == whole.bytes);
  }
}

TEST_CASE("AddRecord frames the concatenation of its two parts", "[log][writer]") {
  test::Rng rng(11);
  const std::string data = rng.Bytes(kBlockSize + 100);
  LogWriter w0;
  wire::Buffer expected;
  w0.AddRecord(test::U8(data), data.size(), nullptr, 0, &expected);
  for (size_t split : {size_t{0}, size_t{1}, size_t{40}, kBlockSize - 8, kBlockSize - 7,
                       kBlockSize - 6, kBlockSize, data.size() - 1, data.size()}) {
    INFO("split at " << split);
    LogWriter w;
    wire::Buffer out;
    w.AddRecord(test::U8(data), split, test::U8(data) + split, data.size() - split, &out);
    CHECK(out.view() == expected.view());
  }
}

TEST_CASE("truncating a small log at every byte reads as a clean end", "[log][reader]") {
  const auto records = MakeRecords({0, 1, 30, 7, 64, 12});
  const Framed f = Frame(records);
  SegmentFile file(f.bytes);
  // Shrink one byte at a time, from the whole log to nothing.
  for (uint64_t len = f.bytes.size() + 1; len-- > 0;) {
    file.Truncate(len);
    size_t whole = 0;
    while (whole < records.size() && f.ends[whole] <= len) ++whole;
    INFO("log cut to " << len << " bytes");
    ReadBack rb;
    ReadAll(file.fd(), len, &rb);
    CHECK(rb.io.ok());
    CHECK(rb.reporter.drops.empty());
    CHECK(rb.records == Prefix(records, whole));
    CHECK(rb.position == (whole == 0 ? 0 : f.ends[whole - 1]));
    // A reader told the file is longer than it is sees the same clean end.
    ReadBack longer;
    ReadAll(file.fd(), f.bytes.size(), &longer);
    CHECK(longer.reporter.drops.empty());
    CHECK(longer.records == Prefix(records, whole));
  }
}

TEST_CASE("truncating inside an entry that spans blocks reads as a clean end", "[log][reader]") {
  // Small entries, then one that starts 100 bytes before the first block's
  // end and runs FIRST (block 0), MIDDLE (block 1), LAST (block 2).
  std::vector<size_t> sizes = {10, 20, 30};
  const size_t used = (kHeaderSize + 10) + (kHeaderSize + 20) + (kHeaderSize + 30);
  sizes.push_back(kBlockSize - 100 - used - kHeaderSize);
  sizes.push_back((100 - kHeaderSize) + (kBlockSize - kHeaderSize) + 50);
  const auto records = MakeRecords(sizes);
  const Framed f = Frame(records);
  const uint64_t last_start = f.starts.back();
  REQUIRE(last_start == kBlockSize - 100);
  REQUIRE(f.ends[f.ends.size() - 2] == last_start);
  REQUIRE(f.bytes.size() == 2 * kBlockSize + kHeaderSize + 50);
  const auto all_but_last = Prefix(records, records.size() - 1);

  SECTION("every cut of the last entry, on disk") {
    SegmentFile file(f.bytes);
    for (uint64_t len = f.bytes.size(); len-- > last_start;) {
      file.Truncate(len);
      INFO("log cut to " << len << " bytes");
      ReadBack rb;
      ReadAll(file.fd(), len, &rb);
      // CHECK is costly in a 33 000-step loop: test, and report only failures.
      if (!rb.io.ok() || !rb.reporter.drops.empty() || rb.records != all_but_last ||
          rb.position != last_start) {
        CHECK(rb.io.ok());
        CHECK(rb.reporter.Describe() == "");
        CHECK(rb.records.size() == all_but_last.size());
        CHECK(rb.position == last_start);
        FAIL("a torn tail was not a clean end");
      }
    }
    file.Truncate(f.bytes.size());  // restore
  }
  SECTION("a reader stopped inside the entry resumes at its start") {
    SegmentFile file(f.bytes);
    std::vector<uint64_t> cuts;
    for (uint64_t c = last_start; c < f.bytes.size(); c += 61) cuts.push_back(c);
    for (uint64_t b : {kBlockSize, 2 * kBlockSize}) {
      for (uint64_t c = b - 10; c < b + 10; ++c) cuts.push_back(c);
    }
    for (uint64_t cut : cuts) {
      INFO("limit " << cut);
      LogReader reader(file.fd(), 0, nullptr);
      std::string_view rec;
      Status io;
      std::vector<std::string> got;
      while (reader.ReadRecord(cut, &rec, &io) == LogReader::Result::kRecord) got.emplace_back(rec);
      REQUIRE(got == all_but_last);
      REQUIRE(reader.position() == last_start);
      REQUIRE(reader.ReadRecord(f.bytes.size(), &rec, &io) == LogReader::Result::kRecord);
      REQUIRE(rec == records.back());
      REQUIRE(reader.ReadRecord(f.bytes.size(), &rec, &io) == LogReader::Result::kEnd);
      REQUIRE(io.ok());
    }
  }
}

TEST_CASE("a reader following a growing log returns each entry once, whole", "[log][reader]") {
  const auto records = MakeRecords({5, 300, kBlockSize - 400, 2000, 3, kBlockSize + 500, 1, 44});
  const Framed f = Frame(records);
  SegmentFile file(f.bytes);
  LogReader reader(file.fd(), 0, nullptr);
  std::vector<std::string> got;
  std::string_view rec;
  Status io;
  for (uint64_t limit = 0; limit <= f.bytes.size();) {
    while (reader.ReadRecord(limit, &rec, &io) == LogReader::Result::kRecord) {
      got.emplace_back(rec);
      // Never an entry past the limit it was read under.
      REQUIRE(f.ends[got.size() - 1] <= limit);
      REQUIRE(got.back() == records[got.size() - 1]);
    }
    REQUIRE(io.ok());
    // Every byte near the boundaries and the start, a stride elsewhere.
    const uint64_t in_block = limit % kBlockSize;
    limit += (limit < 3000 || in_block < 200 || in_block > kBlockSize - 200) ? 1 : 53;
  }
  while (reader.ReadRecord(f.bytes.size(), &rec, &io) == LogReader::Result::kRecord) {
    got.emplace_back(rec);
  }
  CHECK(got == records);
}

TEST_CASE("every single-bit flip in a small log is detected", "[log][reader]") {
  const auto records = MakeRecords({12, 0, 33, 5, 60, 21});
  const Framed f = Frame(records);
  SegmentFile file(f.bytes);
  size_t reported = 0, ended = 0;
  for (uint64_t off = 0; off < f.bytes.size(); ++off) {
    const uint8_t orig = file.ByteAt(off);
    const size_t damaged = RecordAt(f, off);
    for (int bit = 0; bit < 8; ++bit) {
      file.SetByte(off, static_cast<uint8_t>(orig ^ (1u << bit)));
      ReadBack rb;
      ReadAll(file.fd(), f.bytes.size(), &rb);
      INFO("bit " << bit << " of byte " << off << " (record " << damaged << "): read "
                  << rb.records.size() << " records, drops " << rb.reporter.Describe());
      REQUIRE(rb.io.ok());
      // What is returned is whole, original records, in order: the records
      // before the damage (the log is one block, so nothing after it).
      REQUIRE(rb.records == Prefix(records, damaged));
      // The damage was reported, or the read ended right there (a length that
      // now runs past the end of the file reads like a torn tail).
      if (!rb.reporter.drops.empty()) {
        ++reported;
        REQUIRE(rb.reporter.drops.front().offset == f.starts[damaged]);
      } else {
        ++ended;
      }
    }
    file.SetByte(off, orig);
  }
  CHECK(reported + ended == 8 * f.bytes.size());
  // Only length bits can read as an early end; everything else is reported.
  CHECK(ended <= 16 * records.size());
  CHECK(reported > 0);
}

TEST_CASE("bit flips in a log of several blocks are reported and skipped to the next block",
          "[log][reader]") {
  const auto records = MakeRecords({100, kBlockSize - 300, 150, 40, kBlockSize + 1000, 200, 17,
                                    kBlockSize / 2, kBlockSize / 2 + 300, 60});
  const Framed f = Frame(records);
  const auto phys = ParsePhysical(f.bytes);
  SegmentFile file(f.bytes);
  const uint64_t last_block = (f.bytes.size() - 1) / kBlockSize;

  // Every bit of every header, the first and last byte of every fragment, and
  // a stride through the data.
  std::vector<uint64_t> offsets;
  for (const Phys& p : phys) {
    for (uint64_t i = 0; i < kHeaderSize; ++i) offsets.push_back(p.offset + i);
    if (p.length > 0) {
      offsets.push_back(p.offset + kHeaderSize);
      offsets.push_back(p.offset + kHeaderSize + p.length - 1);
      for (uint64_t i = 97; i < p.length; i += 997) offsets.push_back(p.offset + kHeaderSize + i);
    }
  }
  for (uint64_t off : offsets) {
    const uint8_t orig = file.ByteAt(off);
    const size_t damaged = RecordAt(f, off);
    const uint64_t block = off / kBlockSize;
    for (int bit = 0; bit < 8; ++bit) {
      file.SetByte(off, static_cast<uint8_t>(orig ^ (1u << bit)));
      ReadBack rb;
      ReadAll(file.fd(), f.bytes.size(), &rb);
      INFO("bit " << bit << " of byte " << off << " (record " << damaged << ", block " << block
                  << "): drops " << rb.reporter.Describe());
      REQUIRE(rb.io.ok());
      // Returned records are originals, in order, never the damaged one.
      size_t next = 0;
      std::vector<size_t> idx;
      for (const auto& r : rb.records) {
        while (next < records.size() && records[next] != r) ++next;
        REQUIRE(next < records.size());
        REQUIRE(next != damaged);
        idx.push_back(next++);
      }
      // Everything before the damage is there.
      for (size_t i = 0; i < damaged; ++i) {
        REQUIRE(std::find(idx.begin(), idx.end(), i) != idx.end());
      }
      if (rb.reporter.drops.empty()) {
        // Only a length that now runs past the end of the file ends the read
        // silently, and only in the last block.
        REQUIRE(block == last_block);
        REQUIRE(rb.records == Prefix(records, damaged));
      } else {
        // Reading resumed: every entry that starts in a later block is back.
        for (size_t i = damaged + 1; i < records.size(); ++i) {
          if (f.starts[i] / kBlockSize > block) {
            REQUIRE(std::find(idx.begin(), idx.end(), i) != idx.end());
          }
        }
      }
    }
    file.SetByte(off, orig);
  }
}

TEST_CASE("damage in a middle block is reported and reading resumes at the next block",
          "[log][reader]") {
  // 100-byte entries over four blocks; some of them span a boundary.
  const auto records = MakeRecords(std::vector<size_t>(4 * kBlockSize / 107, 100));
  const Framed f = Frame(records);
  SegmentFile file(f.bytes);
  REQUIRE(f.bytes.size() > 3 * kBlockSize);

  // The first entry that starts at least 5000 bytes into block 1.
  size_t k = 0;
  while (f.starts[k] < kBlockSize + 5000) ++k;
  const uint64_t dmg = f.starts[k];
  const uint64_t block_end = 2 * kBlockSize;
  // Entries with any byte in [dmg, block_end) are lost: those from k up to
  // the one that runs into block 2, whose LAST is reported as an orphan.
  std::vector<std::string> expected;
  size_t orphan = records.size();
  for (size_t i = 0; i < records.size(); ++i) {
    const bool lost = f.ends[i] > dmg && f.starts[i] < block_end;
    if (!lost) expected.push_back(records[i]);
    if (lost && f.ends[i] > block_end) orphan = i;
  }
  REQUIRE(orphan < records.size());  // the layout has an entry spanning blocks 1 and 2

  auto check_resumed = [&](const char* reason) {
    ReadBack rb;
    ReadAll(file.fd(), f.bytes.size(), &rb);
    INFO(rb.reporter.Describe());
    CHECK(rb.io.ok());
    CHECK(rb.records == expected);
    REQUIRE(rb.reporter.drops.size() == 2);
    CHECK(rb.reporter.drops[0].offset == dmg);
    CHECK(rb.reporter.drops[0].bytes == block_end - dmg);
    CHECK(rb.reporter.drops[0].reason == reason);
    CHECK(rb.reporter.drops[1].offset == block_end);
    CHECK(rb.reporter.drops[1].reason == "missing start of fragmented record");
    CHECK(rb.position == f.bytes.size());
  };

  SECTION("a checksum mismatch") {
    file.SetByte(dmg + kHeaderSize + 50, file.ByteAt(dmg + kHeaderSize + 50) ^ 0x10);
    check_resumed("checksum mismatch");
  }
  SECTION("a length that runs past the block") {
    file.SetByte(dmg + 4, 0xff);
    file.SetByte(dmg + 5, 0xff);
    check_resumed("bad record length");
  }
  SECTION("a shrunken length") {
    file.SetByte(dmg + 4, 99);
    check_resumed("checksum mismatch");
  }
  SECTION("zeros from the damaged entry to the block's end") {
    file.Overwrite(dmg, std::string(block_end - dmg, '\0'));
    check_resumed("zeroed block");
  }
  SECTION("a whole zeroed block") {
    file.Overwrite(kBlockSize, std::string(kBlockSize, '\0'));
    ReadBack rb;
    ReadAll(file.fd(), f.bytes.size(), &rb);
    INFO(rb.reporter.Describe());
    REQUIRE(rb.reporter.drops.size() == 2);
    CHECK(rb.reporter.drops[1].offset == 2 * kBlockSize);
    CHECK(rb.reporter.drops[1].reason == "missing start of fragmented record");
    CHECK(rb.reporter.drops[0].offset == kBlockSize);
    CHECK(rb.reporter.drops[0].bytes == kBlockSize);
    CHECK(rb.reporter.drops[0].reason == "zeroed block");
    // The entry running from block 0 into block 1 lost its LAST: it is dropped
    // with the zeroed block, never joined to what follows; the one running
    // from block 1 into block 2 leaves an orphan LAST, reported.
    std::vector<std::string> want;
    for (size_t i = 0; i < records.size(); ++i) {
      if (f.ends[i] <= kBlockSize || f.starts[i] >= block_end) want.push_back(records[i]);
    }
    CHECK(rb.records == want);
  }
}

TEST_CASE("fragments out of sequence are reported, never joined", "[log][reader]") {
  auto read = [](const std::string& bytes, ReadBack* rb) {
    SegmentFile file(bytes);
    ReadAll(file.fd(), bytes.size(), rb);
    REQUIRE(rb->io.ok());
  };
  SECTION("FIRST then FULL: the partial entry is dropped, the FULL returned") {
    const std::string a = PhysRecord(kFirstType, "abc");
    ReadBack rb;
    read(a + PhysRecord(kFullType, "whole"), &rb);
    CHECK(rb.records == std::vector<std::string>{"whole"});
    REQUIRE(rb.reporter.drops.size() == 1);
    CHECK(rb.reporter.drops[0].offset == 0);
    CHECK(rb.reporter.drops[0].reason == "partial record without end");
    CHECK(rb.offsets == std::vector<uint64_t>{a.size()});
  }
  SECTION("FIRST, FIRST, LAST: only the second entry is returned") {
    ReadBack rb;
    read(
        PhysRecord(kFirstType, "lost") + PhysRecord(kFirstType, "ab") + PhysRecord(kLastType, "cd"),
        &rb);
    CHECK(rb.records == std::vector<std::string>{"abcd"});
    REQUIRE(rb.reporter.drops.size() == 1);
    CHECK(rb.reporter.drops[0].reason == "partial record without end");
  }
  SECTION("MIDDLE or LAST without a FIRST") {
    ReadBack rb;
    read(PhysRecord(kMiddleType, "m") + PhysRecord(kLastType, "l") + PhysRecord(kFullType, "ok"),
         &rb);
    CHECK(rb.records == std::vector<std::string>{"ok"});
    REQUIRE(rb.reporter.drops.size() == 2);
    CHECK(rb.reporter.drops[0].offset == 0);
    CHECK(rb.reporter.drops[0].reason == "missing start of fragmented record");
    CHECK(rb.reporter.drops[1].offset == kHeaderSize + 1);
    CHECK(rb.reporter.drops[1].reason == "missing start of fragmented record");
  }
  SECTION("an unknown type with a good checksum is skipped alone") {
    ReadBack rb;
    read(PhysRecord(kFullType, "one") + PhysRecord(9, "odd") + PhysRecord(kFullType, "two"), &rb);
    CHECK(rb.records == std::vector<std::string>{"one", "two"});
    REQUIRE(rb.reporter.drops.size() == 1);
    CHECK(rb.reporter.drops[0].offset == kHeaderSize + 3);
    CHECK(rb.reporter.drops[0].bytes == kHeaderSize + 3);
    CHECK(rb.reporter.drops[0].reason == "unknown record type 9");
  }
  SECTION("an unknown type inside a fragmented entry ends it") {
    ReadBack rb;
    read(PhysRecord(kFirstType, "ab") + PhysRecord(7, "x") + PhysRecord(kLastType, "cd"), &rb);
    CHECK(rb.records.empty());
    CHECK(rb.reporter.drops.size() == 2);
  }
  SECTION("a damaged MIDDLE: FIRST and LAST are never joined") {
    // FIRST fills block 0, MIDDLE block 1 (damaged), LAST starts block 2.
    const std::string first = PhysRecord(kFirstType, std::string(kBlockSize - kHeaderSize, 'a'));
    std::string middle = PhysRecord(kMiddleType, std::string(kBlockSize - kHeaderSize, 'b'));
    middle[100] ^= 1;
    const std::string last = PhysRecord(kLastType, "ccc");
    ReadBack rb;
    read(first + middle + last + PhysRecord(kFullType, "after"), &rb);
    CHECK(rb.records == std::vector<std::string>{"after"});
    REQUIRE(rb.reporter.drops.size() == 2);
    CHECK(rb.reporter.drops[0].offset == kBlockSize);
    CHECK(rb.reporter.drops[0].reason == "checksum mismatch");
    CHECK(rb.reporter.drops[1].offset == 2 * kBlockSize);
    CHECK(rb.reporter.drops[1].reason == "missing start of fragmented record");
  }
}

TEST_CASE("a reader can start at any record boundary", "[log][reader]") {
  const auto records = MakeRecords({10, kBlockSize, 20, 30, kBlockSize - 60, 5});
  const Framed f = Frame(records);
  SegmentFile file(f.bytes);
  for (size_t i = 0; i < records.size(); ++i) {
    const std::vector<std::string> rest(records.begin() + static_cast<long>(i), records.end());
    // From the record's header, and from the end of the previous record (which
    // may be in a block trailer that the reader must step over).
    for (uint64_t from : {f.starts[i], i == 0 ? uint64_t{0} : f.ends[i - 1]}) {
      INFO("from record " << i << " at " << from);
      ReadBack rb;
      ReadAll(file.fd(), f.bytes.size(), &rb, from);
      CHECK(rb.reporter.drops.empty());
      CHECK(rb.records == rest);
    }
  }
}

TEST_CASE("read errors come back as a Status, not as the end of the log", "[log][reader]") {
  TempDir dir;
  const int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  LogReader reader(fd, 0, nullptr);
  std::string_view rec;
  Status io;
  CHECK(reader.ReadRecord(100, &rec, &io) == LogReader::Result::kEnd);
  CHECK_FALSE(io.ok());
  CHECK(io.code() == Status::Code::kIoError);
  CHECK_THAT(io.message(), Catch::Contains("log read failed"));
  ::close(fd);
}

}  // namespace forkd::log
