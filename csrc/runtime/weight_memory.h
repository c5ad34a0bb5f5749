// Where the matrices live while the model runs: the file mapping itself (zero-copy), or a private
// copy in anonymous memory backed by 2 MiB pages.
//
// Decode streams every weight once per token, so it is bound by how fast memory can be read.
// Page-cache pages of a mapped file are 4 KiB: each one costs a TLB miss (a two-level walk under
// a hypervisor) and the hardware prefetchers stop at every 4 KiB boundary. The same data in
// transparent huge pages read 15-40% faster on the 2-core Xeon we measure on
// (benchmarks/results/). Linux gives anonymous memory huge pages on request (MADV_HUGEPAGE); it
// never gives them to page-cache pages of ordinary file systems. macOS gives neither a choice:
// Apple silicon already uses 16 KiB pages, and weights stay mapped there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace q35 {

class ThreadPool;

enum class WeightPlacement : int {
  Auto = -1,  // copy where it pays (Linux with transparent huge pages) and fits in memory
  Mmap = 0,   // read straight from the file mapping
  Copy = 1,   // copy into anonymous huge-page memory; an error where it cannot be done
};

// Why Auto would not copy on this platform ("" when it would). Whether the copy fits in memory
// is WeightCopy's own check.
std::string copy_unavailable_reason();

// A private copy of a set of byte ranges (tensors in the file mappings), one anonymous mapping
// for all of them, each range 64-byte aligned in it.
class WeightCopy {
 public:
  struct Range {
    const uint8_t* src;
    size_t n;
  };
  // Copies `ranges` (disjoint) using the pool's threads. Throws std::runtime_error with a
  // one-line reason when the memory cannot be had (too little available, or the mapping fails).
  WeightCopy(const std::vector<Range>& ranges, ThreadPool& pool);
  ~WeightCopy();
  WeightCopy(const WeightCopy&) = delete;
  WeightCopy& operator=(const WeightCopy&) = delete;

  // The copy of the byte at p; nullptr when p lies in none of the ranges.
  const uint8_t* relocate(const uint8_t* p) const;
  size_t bytes() const { return used_; }
  // Bytes of the copy the kernel backs with huge pages now (Linux: /proc/self/smaps); 0 elsewhere.
  size_t huge_page_bytes() const;

 private:
  struct Placed {
    const uint8_t* src;
    size_t n;
    size_t off;  // in the copy
  };
  std::vector<Placed> placed_;  // sorted by src
  uint8_t* base_ = nullptr;
  size_t mapped_ = 0;  // bytes mapped (the copy rounded up to whole huge pages)
  size_t used_ = 0;
};

}  // namespace q35
