// Matrix products of the forward pass: the rows of one or several weight matrices against a
// batch of activation rows, as one parallel job, through the active kernels' vec_dot (and
// vec_dot4 for prompt batches).
#include <algorithm>

#include "model/layers.h"

namespace q35 {

namespace {

// The first row (over all segments in order) whose bytes start at or after byte `target` of the
// segments' weights.
int64_t row_at_byte(const Seg* segs, int ns, uint64_t target) {
  int64_t rows = 0;
  uint64_t bytes = 0;
  for (int i = 0; i < ns; i++) {
    const uint64_t rb = segs[i].W->row_bytes, n = static_cast<uint64_t>(segs[i].W->n_out);
    if (target <= bytes + n * rb) return rows + static_cast<int64_t>((target - bytes + rb - 1) / rb);
    rows += segs[i].W->n_out;
    bytes += n * rb;
  }
  return rows;
}

}  // namespace

// All rows of several matrices as one parallel job (one barrier). Threads get equal shares of the
// weight bytes, not of the rows: the matrices of one job may differ in type (a Q6_K row is 1.46
// Q4_K rows), and the job ends when the slowest thread does. Every output row is computed by the
// same code whatever the thread split, so results do not depend on the thread count.
void matmul_segs(ThreadPool& pool, const Seg* segs, int ns, int64_t T) {
  int64_t total = 0;
  uint64_t total_bytes = 0;
  for (int i = 0; i < ns; i++) {
    total += segs[i].W->n_out;
    total_bytes += static_cast<uint64_t>(segs[i].W->n_out) * segs[i].W->row_bytes;
  }
  // A batch of T > 1 tokens (a prompt) is tiled: a block of rows (about kTileBytes of weights)
  // meets the tokens a block at a time (about kTileBytes of activations), so both blocks stay in
  // L2 while every pair is computed. Untiled, each weight row would stream all T activation rows
  // from memory (MBs for a long prompt). Each output is the same vec_dot either way.
  constexpr uint64_t kTileBytes = 256 * 1024;
  size_t max_xrow = 1;
  for (int i = 0; i < ns; i++) max_xrow = std::max(max_xrow, segs[i].xrow);
  const int64_t tok_block = T == 1 ? 1 : std::max<int64_t>(1, static_cast<int64_t>(kTileBytes / max_xrow));
  pool.run([&](int ith, int nth) {
    const int64_t r0 = row_at_byte(segs, ns, total_bytes * ith / nth);
    const int64_t r1 = ith == nth - 1 ? total : row_at_byte(segs, ns, total_bytes * (ith + 1) / nth);
    int si = 0;
    int64_t base = 0;
    for (int64_t rb = r0; rb < r1;) {
      while (rb >= base + segs[si].W->n_out) base += segs[si++].W->n_out;
      // Rows of one segment only, up to kTileBytes of them (one row at least).
      const Seg& g = segs[si];
      const Mat& W = *g.W;
      const int64_t per_block = T == 1 ? W.n_out : std::max<int64_t>(1, static_cast<int64_t>(kTileBytes / W.row_bytes));
      const int64_t re = std::min({r1, base + W.n_out, rb + per_block});
      for (int64_t tb = 0; tb < T; tb += tok_block) {
        const int64_t te = std::min(T, tb + tok_block);
        for (int64_t i = rb - base; i < re - base; i++) {
          const uint8_t* w = W.row(i);
          int64_t t = tb;
          if (W.tt->vec_dot4) {  // four tokens per call, same bits as one by one
            for (float o4[4]; t + 4 <= te; t += 4) {
              W.tt->vec_dot4(W.n_in, w, g.x + t * g.xrow, g.xrow, o4);
              for (int j = 0; j < 4; j++) g.Y[(t + j) * W.n_out + i] = o4[j];
            }
          }
          for (; t < te; t++) g.Y[t * W.n_out + i] = W.tt->vec_dot(W.n_in, w, g.x + t * g.xrow);
        }
      }
      rb = re;
    }
  });
}

// Y = X W^T for X [T, W.n_in] float.
void matmul(ThreadPool& pool, const Mat& W, const float* X, int64_t T, float* Y, Scratch& s) {
  Act a(s, X, T, W.n_in);
  const Seg g = seg(W, a, Y);
  matmul_segs(pool, &g, 1, T);
}

}  // namespace q35
