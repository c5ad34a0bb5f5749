// Counts the heap allocations of steady-state decode: after a warm-up, a run of single-token
// evals must allocate nothing (scratch buffers are sized on first use, the KV cache is reserved
// for the session's whole context, the thread pool passes jobs without std::function).
//
//   q35_decode_alloc MODEL.gguf THREADS N_CTX STEPS
// prints "allocations while loading: L" and "allocations in STEPS decode steps: K"; exits 0 when K
// is 0 and L is not (a counter that sees none of the library's allocations proves nothing).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "model/session.h"

namespace {
std::atomic<long> g_allocs{0};

void* counted(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* counted_aligned(std::size_t n, std::align_val_t a) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL.gguf THREADS N_CTX STEPS\n", argv[0]);
    return 2;
  }
  const int threads = std::atoi(argv[2]), n_ctx = std::atoi(argv[3]), steps = std::atoi(argv[4]);
  const long at_start = g_allocs.load();
  auto model = std::make_shared<q35::Model>(argv[1], threads);
  q35::Session sess(model, n_ctx);
  const long loading = g_allocs.load() - at_start;
  std::printf("allocations while loading: %ld\n", loading);
  const int V = model->config().n_vocab;
  std::vector<float> logits(V);
  // A short prompt, then a few decode steps: every scratch buffer reaches its decode size.
  std::vector<int32_t> ids(n_ctx);
  for (int i = 0; i < n_ctx; i++) ids[i] = static_cast<int32_t>((i * 7919 + 13) % V);
  const int prompt = 5, warm = 4;
  if (prompt + warm + steps > n_ctx) {
    std::fprintf(stderr, "N_CTX must hold %d tokens\n", prompt + warm + steps);
    return 2;
  }
  sess.eval(ids.data(), prompt, false, logits.data());
  for (int i = 0; i < warm; i++) sess.eval(ids.data() + prompt + i, 1, false, logits.data());
  const long before = g_allocs.load();
  for (int i = 0; i < steps; i++) sess.eval(ids.data() + prompt + warm + i, 1, false, logits.data());
  const long n = g_allocs.load() - before;
  std::printf("allocations in %d decode steps: %ld\n", steps, n);
  return n == 0 && loading > 0 ? 0 : 1;
}
