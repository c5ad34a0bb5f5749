#include "runtime/threadpool.h"

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace q35 {

namespace {

// One spin-wait step: a pause hint, and every so often a yield so an oversubscribed machine
// (more threads than free cores) still makes progress.
inline void spin_pause(uint32_t i) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
  if ((i & 255u) == 255u) std::this_thread::yield();
}

// Spins before a worker parks: a few hundred microseconds of pauses (a pause is ~40-140 cycles),
// far longer than the gap between two jobs of one decode step (microseconds) and than the usual
// gap between two decode steps (sampling), short enough that idle workers soon stop taking CPU
// from other threads of the application.
constexpr uint32_t kSpinBeforePark = 1u << 12;

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; i++) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(m_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker(int ith) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g;
    uint32_t spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (stop_.load(std::memory_order_relaxed)) return;
      if (++spins < kSpinBeforePark) {
        spin_pause(spins);
        continue;
      }
      // Park. sleepers_ is raised before the generation is re-checked under m_, and run_raw
      // bumps the generation before reading sleepers_ (both seq_cst), so either this check
      // sees the new job or run_raw sees a sleeper and notifies under m_.
      std::unique_lock<std::mutex> lk(m_);
      sleepers_.fetch_add(1);
      cv_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
      spins = 0;
    }
    seen = g;
    fn_(ctx_, ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run_raw(JobFn fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  std::lock_guard<std::mutex> serial(run_mutex_);
  fn_ = fn;
  ctx_ = ctx;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: see worker()
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(m_);
    cv_.notify_all();
  }
  fn(ctx, 0, n_threads_);
  for (uint32_t i = 1; pending_.load(std::memory_order_acquire) != 0; i++) spin_pause(i);
}

int default_thread_count() {
  // Linux: count distinct (physical id, core id) pairs; SMT siblings share memory bandwidth
  // and only slow a bandwidth-bound decode down.
  std::ifstream cpuinfo("/proc/cpuinfo");
  if (cpuinfo) {
    std::set<std::pair<std::string, std::string>> cores;
    std::string line, phys = "0";
    while (std::getline(cpuinfo, line)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
      std::string val = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
      if (key == "physical id") phys = val;
      if (key == "core id") cores.insert({phys, val});
    }
    if (!cores.empty()) return static_cast<int>(cores.size());
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

}  // namespace q35
