#include "runtime/weight_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "runtime/threadpool.h"

namespace q35 {

namespace {

constexpr size_t kHuge = size_t{2} << 20;
constexpr size_t kAlign = 64;

std::string gb(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GB", static_cast<double>(b) / 1e9);
  return s;
}

// A /proc/meminfo field in bytes; -1 when absent (not Linux).
int64_t meminfo(const char* field) {
  std::ifstream f("/proc/meminfo");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(f, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::stoll(line.substr(n + 1)) * 1024;  // "MemAvailable:  123456 kB"
    }
  }
  return -1;
}

// "always" or "madvise": MADV_HUGEPAGE gets huge pages; "never" or no such file: it does not.
bool thp_on_request() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return s.find("[always]") != std::string::npos || s.find("[madvise]") != std::string::npos;
}

// What must stay free beside the weights: the KV caches, scratch buffers and the rest of the
// system.
uint64_t headroom() {
  const int64_t total = meminfo("MemTotal");
  return std::max<uint64_t>(uint64_t{1} << 30, total > 0 ? static_cast<uint64_t>(total) / 10 : 0);
}

std::string no_memory_reason(uint64_t need) {
  const int64_t avail = meminfo("MemAvailable");
  if (avail < 0) return "";  // not knowable: let the allocation itself decide
  if (need + headroom() <= static_cast<uint64_t>(avail)) return "";
  return "copying the weights needs " + gb(need) + " of memory and " + gb(headroom()) + " to spare, but only " +
         gb(static_cast<uint64_t>(avail)) + " is available";
}

}  // namespace

std::string copy_unavailable_reason() {
#if defined(__linux__)
  if (!thp_on_request()) return "transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled)";
  return "";
#else
  return "weights stay mapped on this platform (no huge pages to gain)";
#endif
}

WeightCopy::WeightCopy(const std::vector<Range>& ranges, ThreadPool& pool) {
  for (const Range& r : ranges) placed_.push_back({r.src, r.n, 0});
  std::sort(placed_.begin(), placed_.end(), [](const Placed& a, const Placed& b) { return a.src < b.src; });
  for (Placed& p : placed_) {
    used_ = (used_ + kAlign - 1) / kAlign * kAlign;
    p.off = used_;
    used_ += p.n;
  }
  const std::string why = no_memory_reason(used_);
  if (!why.empty()) throw std::runtime_error(why);
  mapped_ = std::max(kHuge, (used_ + kHuge - 1) / kHuge * kHuge);
  // Over-map by one huge page and trim, so the copy starts on a 2 MiB boundary: otherwise its
  // first and last stretches could never be huge pages.
  void* m = mmap(nullptr, mapped_ + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    throw std::runtime_error("cannot allocate " + gb(mapped_) + " for the weights: " + std::strerror(errno));
  }
  uint8_t* raw = static_cast<uint8_t*>(m);
  base_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) / kHuge * kHuge);
  if (base_ > raw) munmap(raw, static_cast<size_t>(base_ - raw));
  const size_t tail = static_cast<size_t>(raw + mapped_ + kHuge - (base_ + mapped_));
  if (tail) munmap(base_ + mapped_, tail);
#if defined(MADV_HUGEPAGE)
  madvise(base_, mapped_, MADV_HUGEPAGE);  // advice only: without it the copy still works
#endif

  // Copy in huge-page-sized pieces spread over the threads (each thread first touches, and so
  // places, the pages it copies).
  struct Piece {
    const uint8_t* src;
    uint8_t* dst;
    size_t n;
  };
  std::vector<Piece> pieces;
  for (const Placed& p : placed_)
    for (size_t o = 0; o < p.n; o += kHuge) pieces.push_back({p.src + o, base_ + p.off + o, std::min(kHuge, p.n - o)});
  pool.parallel_for(static_cast<int64_t>(pieces.size()), [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) std::memcpy(pieces[i].dst, pieces[i].src, pieces[i].n);
  });
  // The file's pages are no longer read through this process's mapping: drop them from it (they
  // stay in the page cache, clean, for the kernel to reclaim).
  const size_t pg = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (const Placed& p : placed_) {
    const uintptr_t a = (reinterpret_cast<uintptr_t>(p.src) + pg - 1) / pg * pg;
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p.src) + p.n) / pg * pg;
    if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_DONTNEED);
  }
}

WeightCopy::~WeightCopy() {
  if (base_) munmap(base_, mapped_);
}

const uint8_t* WeightCopy::relocate(const uint8_t* p) const {
  auto it = std::upper_bound(placed_.begin(), placed_.end(), p, [](const uint8_t* q, const Placed& r) { return q < r.src; });
  if (it == placed_.begin() || p >= (it - 1)->src + (it - 1)->n) return nullptr;
  --it;
  return base_ + it->off + static_cast<size_t>(p - it->src);
}

size_t WeightCopy::huge_page_bytes() const {
  std::ifstream f("/proc/self/smaps");
  if (!f) return 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(base_), hi = lo + mapped_;
  std::string line;
  bool inside = false;
  size_t total = 0;
  while (std::getline(f, line)) {
    const size_t dash = line.find('-');
    const size_t sp = line.find(' ');
    if (dash != std::string::npos && sp != std::string::npos && dash < sp && line.find(':') > sp) {
      // A mapping's header line: "start-end perms ..."
      const uintptr_t s = std::stoull(line.substr(0, dash), nullptr, 16);
      const uintptr_t e = std::stoull(line.substr(dash + 1, sp - dash - 1), nullptr, 16);
      inside = s >= lo && e <= hi;
    } else if (inside && line.compare(0, 14, "AnonHugePages:") == 0) {
      total += static_cast<size_t>(std::stoull(line.substr(14))) * 1024;
    }
  }
  return total;
}

}  // namespace q35
