// A persistent pool of worker threads. run(fn) calls fn(ith, nth) once on every thread, the
// caller being thread 0, and returns when all are done. One job runs at a time (concurrent
// callers are serialised).
//
// A decode step runs a few jobs per layer, each only tens of microseconds long, so the hand-off
// must cost far less than a condition-variable round trip: workers spin on a job counter for a
// while after each job (the next one usually comes within microseconds) and only then park on a
// condition variable; the caller spins on the count of unfinished workers. Jobs are passed as a
// plain function pointer + context, so starting one allocates nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace q35 {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  template <class F>
  void run(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_raw([](void* ctx, int ith, int nth) { (*static_cast<Fn*>(ctx))(ith, nth); },
            const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Splits [0, n) into nth contiguous ranges and calls f(begin, end) on each thread.
  template <class F>
  void parallel_for(int64_t n, F&& f) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
      f(int64_t{0}, n);
      return;
    }
    run([&](int ith, int nth) {
      const int64_t per = (n + nth - 1) / nth;
      const int64_t b = per * ith;
      const int64_t e = b + per < n ? b + per : n;
      if (b < e) f(b, e);
    });
  }

 private:
  using JobFn = void (*)(void* ctx, int ith, int nth);
  void run_raw(JobFn fn, void* ctx);
  void worker(int ith);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex run_mutex_;  // one job at a time
  JobFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint64_t> generation_{0};  // bumped once per job (release: publishes fn_, ctx_)
  std::atomic<int> pending_{0};          // workers that have not finished the current job
  std::atomic<int> sleepers_{0};         // workers parked on cv_
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::condition_variable cv_;
};

// Number of physical cores (best effort), at least 1.
int default_thread_count();

}  // namespace q35
