// What the layer files of the forward pass share (attention.cpp, deltanet.cpp, moe.cpp,
// forward.cpp): the scratch buffers of a forward call, the matrix products over quantized
// weights (matmul.cpp), the small per-row ops, per-op timing, and each layer kind's entry point.
// Internal to model/: nothing outside this folder includes it.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
#include "model/session.h"

namespace q35 {

// Tokens per internal batch: bounds scratch memory for long prompts.
constexpr int64_t MAX_BATCH = 512;
// Query heads sharing one pass over a KV head's rows (attention), at most.
constexpr int kAttnHeadsPerUnit = 4;

struct Scratch {
  std::vector<float> x, xn, out;          // [T, H] residual, normed input, layer output
  std::vector<float> qg, k, v, o;         // attention: [T, 2*nh*D], [T, nkv*D] x2, [T, nh*D]
  std::vector<std::vector<float>> att;    // per thread: [kAttnHeadsPerUnit, n_ctx] scores, a [D] row
  std::vector<float> mqkv, cv, z, b, a, y;  // DeltaNet: [T, conv_dim] x2, [T, nv*dv], [T, nv] x2, [T, nv*dv]
  std::vector<float> rl;                  // router logits [T, E]
  std::vector<int> sel;                   // [T, k] chosen experts
  std::vector<float> selw;                // [T, k] their weights
  std::vector<float> ex, eg, eu, ed;      // expert batch: [n_e, H], [n_e, I] x2, [n_e, H]
  std::vector<float> sg;                  // [T] shared-expert gate logits
  std::vector<uint8_t> qa[T_COUNT];       // one input's activations in each dot-product type (see Act)
  std::vector<float> dtmp;                // DeltaNet: per value head [2, dv] (pred, o)
  std::vector<int> order;                 // [E] router ranking
  std::vector<std::vector<std::pair<int64_t, float>>> users;  // expert -> (token, weight)
  // MoE decode (T = 1): K routed slots then the shared one.
  std::vector<int> slot_e;                // [K] the chosen experts, ascending
  std::vector<float> slot_w;              // [K] their weights
  std::vector<Mat> slot_g, slot_u, slot_d;  // [K+1] each slot's gate, up, down matrix
  std::vector<float> hs;                  // [K*I + Is] silu(gate) * up of every slot
  std::vector<uint8_t> hq;                // hs, each slot's row in its down matrix's dot type
  std::vector<float> inv_freq;            // [n_rot / 2]
  // Opt-in per-op timing (Session::set_profiling): seconds per op, summed over calls.
  bool profiling = false;
  double op_s[8] = {};
};

enum Op { OP_EMBED, OP_NORM, OP_ATTN, OP_DELTANET, OP_MOE_ROUTER, OP_MOE_EXPERTS, OP_LM_HEAD, OP_OTHER };

// ---------------------------------------------------------------- small per-row ops

inline float* buf(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// y = x / rms(x) * w, over n values (w already holds 1 + w for RMSNorm1p weights).
inline void rmsnorm(float* y, const float* x, const float* w, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

// ---------------------------------------------------------------- matrix products

// One matrix input [T, n] float, converted on first use to each dot-product type asked for, so
// matrices sharing the input (q/k/v, gate/up, ...) quantize it once. The converted rows live in
// Scratch::qa, one buffer per type: only the newest Act of a type is valid.
struct Act {
  Scratch& s;
  const float* X;
  int64_t T, n;
  uint64_t done = 0;  // bit per type already converted
  Act(Scratch& sc, const float* x, int64_t t, int64_t n_in) : s(sc), X(x), T(t), n(n_in) {}
  const uint8_t* get(uint32_t vt, size_t* xrow) {
    if (vt == T_F32) {
      *xrow = static_cast<size_t>(n) * sizeof(float);
      return reinterpret_cast<const uint8_t*>(X);
    }
    const TypeTraits* tt = type_traits(vt);
    *xrow = row_size(*tt, n);
    std::vector<uint8_t>& b = s.qa[vt];
    if (!(done >> vt & 1u)) {
      if (b.size() < *xrow * T) b.resize(*xrow * T);
      for (int64_t t = 0; t < T; t++) tt->quantize_act(X + t * n, b.data() + t * *xrow, n);
      done |= uint64_t{1} << vt;
    }
    return b.data();
  }
};

// One matrix of a multi-matrix product: Y[t, r] = W.row(r) . x[t] (x already in W's dot type).
struct Seg {
  const Mat* W;
  const uint8_t* x;
  size_t xrow;
  float* Y;  // [T, W->n_out]
};

inline Seg seg(const Mat& W, Act& a, float* Y) {
  Seg g{&W, nullptr, 0, Y};
  g.x = a.get(W.tt->vec_dot_type, &g.xrow);
  return g;
}

// All rows of several matrices as one parallel job (one barrier); see matmul.cpp.
void matmul_segs(ThreadPool& pool, const Seg* segs, int ns, int64_t T);
// Y = X W^T for X [T, W.n_in] float.
void matmul(ThreadPool& pool, const Mat& W, const float* X, int64_t T, float* Y, Scratch& s);

// ---------------------------------------------------------------- per-op timing

using Clock = std::chrono::steady_clock;

inline void add_time(Scratch& s, Op op, Clock::time_point& t0) {
  if (!s.profiling) return;
  const Clock::time_point t1 = Clock::now();
  s.op_s[op] += std::chrono::duration<double>(t1 - t0).count();
  t0 = t1;
}

// ---------------------------------------------------------------- the layer kinds

// Gated full attention (attention.cpp). xn: [T, H] normed input -> out: [T, H]. kv: this
// layer's cache index.
void attention_layer(const Model& M, const AttnWeights& w, SeqState& st, int kv, const float* xn, int64_t T,
                     float* out, Scratch& s);
// Gated DeltaNet (deltanet.cpp). xn: [T, H] -> out: [T, H]. dn: this layer's index among the
// DeltaNet layers.
void deltanet_layer(const Model& M, const DeltaNetWeights& w, SeqState& st, int dn, const float* xn, int64_t T,
                    float* out, Scratch& s);
// Mixture of experts (moe.cpp). xn: [T, H] -> out: [T, H]: routed top-k experts plus the
// sigmoid-gated shared expert.
void moe_layer(const Model& M, const MoeWeights& w, const float* xn, int64_t T, float* out, Scratch& s);

}  // namespace q35
