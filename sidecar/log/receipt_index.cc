#include "log/receipt_index.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace forkd::log {

void ReceiptIndex::Add(const uint8_t* client, uint64_t seq, uint64_t lsn) {
  Client* c = last_;
  if (c == nullptr || std::memcmp(last_id_.data(), client, last_id_.size()) != 0) {
    ClientId id;
    std::memcpy(id.data(), client, id.size());
    // Only this thread changes the map, so it may look without the lock.
    auto it = clients_.find(id);
    if (it == clients_.end()) {
      std::unique_lock<std::shared_mutex> lock(mu_);
      it = clients_.emplace(id, Client{}).first;
    }
    c = &it->second;
    last_ = c;
    last_id_ = id;
  }
  const bool first = c->since_mark == 0;
  const bool fell = !first && seq <= c->last_seq;
  if (first || fell || c->since_mark >= kEvery || lsn - c->last_mark_lsn >= kMaxGap) {
    std::unique_lock<std::shared_mutex> lock(mu_);
    if (fell) c->runs.push_back(c->popped + c->marks.size());
    c->marks.push_back(Mark{seq, lsn});
    ++marks_;
    lock.unlock();
    c->last_mark_lsn = lsn;
    c->since_mark = 1;
  } else {
    ++c->since_mark;
  }
  c->last_seq = seq;
}

void ReceiptIndex::Prune(uint64_t floor) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = it->second;
    std::vector<Mark>& m = c.marks;
    // A mark covers the client's entries up to its next mark: it goes once
    // that next one is at or below the floor.
    size_t n = 0;
    while (n + 1 < m.size() && m[n + 1].lsn <= floor) ++n;
    if (n > 0) {
      m.erase(m.begin(), m.begin() + static_cast<ptrdiff_t>(n));
      c.popped += n;
      marks_ -= n;
      auto keep = std::upper_bound(c.runs.begin(), c.runs.end(), c.popped);
      c.runs.erase(c.runs.begin(), keep);
      if (m.size() < m.capacity() / 4) m.shrink_to_fit();
    }
    // The client's last mark, with every entry it may cover below the floor:
    // nothing of the client is retained.
    if (m.size() == 1 && m[0].lsn + kMaxGap <= floor) {
      --marks_;
      if (last_ == &it->second) last_ = nullptr;
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

void ReceiptIndex::Candidates(const ClientId& client, uint64_t seq, uint64_t limit,
                              std::vector<Range>* out) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  const Client& c = it->second;
  const std::vector<Mark>& m = c.marks;
  // Run by run: [a, b) in marks, seqs strictly rising within each.
  auto r = std::upper_bound(c.runs.begin(), c.runs.end(), c.popped);
  for (size_t a = 0, b; a < m.size(); a = b) {
    b = r != c.runs.end() ? static_cast<size_t>(*r++ - c.popped) : m.size();
    if (m[a].seq > seq) continue;
    // The last mark of the run at or below seq.
    const auto k = std::upper_bound(m.begin() + static_cast<ptrdiff_t>(a),
                                    m.begin() + static_cast<ptrdiff_t>(b), seq,
                                    [](uint64_t s, const Mark& mk) { return s < mk.seq; }) -
                   1;
    const uint64_t from = k->lsn;
    uint64_t to = std::min(from + kMaxGap, limit);
    if (k + 1 != m.end()) to = std::min(to, (k + 1)->lsn);
    if (from < to) out->push_back(Range{from, to});
  }
}

size_t ReceiptIndex::marks() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return marks_;
}

size_t ReceiptIndex::memory_bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  size_t n = clients_.bucket_count() * sizeof(void*);
  for (const auto& [id, c] : clients_) {
    // The map's node: the id, the Client, a link and the hash.
    n += sizeof(id) + sizeof(c) + 2 * sizeof(void*) + c.marks.capacity() * sizeof(Mark) +
         c.runs.capacity() * sizeof(uint64_t);
  }
  return n;
}

}  // namespace forkd::log
