// Where to look for a receipt id ("<client hex>-<seq>") in the retained log,
// in a fraction of a byte per event instead of a hash slot each.
//
// A client's sequence numbers rise as its events reach the log, so its
// entries are sorted by seq as well as by lsn. The index keeps, per client,
// a sparse list of marks (seq, lsn) like the block index of a sorted table:
// an entry is marked when it is the client's first, every kEvery-th of the
// client's entries, when kMaxGap lsns have passed since the client's last
// mark, and when its seq is not above the previous one (a client that sent
// again after a reconnect, a replay): that mark starts a new run, and within
// a run seqs strictly rise.
//
// Candidates(client, seq) gives, for each run that may hold the seq, the
// lsn range to read: from the last mark of the run at or below seq to the
// client's next mark, and never past kMaxGap lsns (an unmarked entry is less
// than kMaxGap after its mark). The caller reads those entries and keeps the
// one whose client and seq match, so the index can never give a wrong
// answer, only a range to read.
//
// Memory: 16 bytes a mark; one client writing alone takes a mark every 64
// entries (a quarter of a byte each). Clients interleaved take one at least
// every kMaxGap lsns each; a client whose seqs fall back takes one per fall.
// A client costs about 150 bytes besides its marks.
//
// Threads: one writer (Add, Prune); Candidates and memory_bytes from any
// thread. Readers share a lock that the writer takes only to add a mark or
// a client (for a busy client, once every kEvery of its entries) and to
// prune.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

namespace forkd::log {

class ReceiptIndex {
 public:
  static constexpr uint64_t kEvery = 64;
  static constexpr uint64_t kMaxGap = 512;

  using ClientId = std::array<uint8_t, 16>;
  struct Range {
    uint64_t from, to;  // lsns [from, to)
  };

  ReceiptIndex() = default;
  ReceiptIndex(const ReceiptIndex&) = delete;
  ReceiptIndex& operator=(const ReceiptIndex&) = delete;

  // ---- writer ----
  // The entry at `lsn` is client's event `seq`; lsns must increase from one
  // call to the next.
  void Add(const uint8_t* client, uint64_t seq, uint64_t lsn);
  // Forgets what only covers entries below `floor`.
  void Prune(uint64_t floor);

  // ---- any thread ----
  // Appends to *out the ranges that hold client's event `seq` if the log
  // retains it, each within [.., limit) (limit: one past the last lsn
  // added), oldest first.
  void Candidates(const ClientId& client, uint64_t seq, uint64_t limit,
                  std::vector<Range>* out) const;
  size_t marks() const;
  size_t memory_bytes() const;

 private:
  struct Mark {
    uint64_t seq;
    uint64_t lsn;
  };
  struct Hash {
    size_t operator()(const ClientId& c) const {
      uint64_t a, b;
      __builtin_memcpy(&a, c.data(), 8);
      __builtin_memcpy(&b, c.data() + 8, 8);
      return static_cast<size_t>(a ^ (b * 0x9e3779b97f4a7c15ull));
    }
  };
  struct Client {
    // The writer's own (no lock).
    uint64_t last_seq = 0;
    uint64_t last_mark_lsn = 0;
    uint64_t since_mark = 0;  // entries since the last mark, that one included
    // Under mu_.
    std::vector<Mark> marks;  // lsn order
    uint64_t popped = 0;     // marks pruned from the front so far
    // Where each run after the first starts, as popped + index into marks
    // (the first mark left always starts one).
    std::vector<uint64_t> runs;
  };

  mutable std::shared_mutex mu_;
  std::unordered_map<ClientId, Client, Hash> clients_;
  size_t marks_ = 0;  // under mu_
  // The writer's last client, so a run of one client's entries skips the
  // map lookup.
  Client* last_ = nullptr;
  ClientId last_id_{};
};

}  // namespace forkd::log
