// The qwen35moe forward pass, one function per layer kind, in the spirit of llama2.c's run.c.
// Shapes are in comments: [T] is the number of tokens of this call, H the hidden size.
// The math follows ../shared/docs/qwen35moe-spec.md section 2 with GGUF-convention weights:
// norms carry their (1 + w), ssm_a holds -exp(A_log), DeltaNet value heads are "tiled"
// (value head j reads key head j mod nk).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>

#include "f16_rows.h"
#include "kernels.h"
#include "model.h"

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

const char* const kOpNames[8] = {"embed", "norm_residual", "attention", "deltanet",
                                 "moe_router", "moe_experts", "lm_head", "other"};
enum Op { OP_EMBED, OP_NORM, OP_ATTN, OP_DELTANET, OP_MOE_ROUTER, OP_MOE_EXPERTS, OP_LM_HEAD, OP_OTHER };

namespace {

float* buf(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// y = x / rms(x) * w, over n values (w already holds 1 + w for RMSNorm1p weights).
void rmsnorm(float* y, const float* x, const float* w, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

// a . b with eight independent partial sums: a single running sum is one dependent add chain
// the compiler may not reorder (no -ffast-math), so it neither vectorizes nor pipelines.
inline float dot_f32(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
  float tail = 0.0f;
  for (; i < n; i++) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// x *= (sum x^2 + eps)^-1/2, as HF's l2norm in the DeltaNet.
void l2norm(float* x, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss + eps));
  for (int64_t i = 0; i < n; i++) x[i] *= scale;
}

// NeoX ("rotate half") RoPE on the first n_rot dims: pairs (i, i + n_rot/2).
// Text positions are equal on the t/h/w axes, so interleaved M-RoPE reduces to this.
void rope(float* x, const float* inv_freq, int n_rot, int pos) {
  const int half = n_rot / 2;
  for (int i = 0; i < half; i++) {
    const float ang = static_cast<float>(pos) * inv_freq[i];
    const float c = std::cos(ang), s = std::sin(ang);
    const float x0 = x[i], x1 = x[i + half];
    x[i] = x0 * c - x1 * s;
    x[i + half] = x1 * c + x0 * s;
  }
}

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

}  // namespace

// ---------------------------------------------------------------- gated full attention

// xn: [T, H] normed input -> out: [T, H]. kv: this layer's cache index.
static void attention_layer(const Model& M, const AttnWeights& w, SeqState& st, int kv, const float* xn, int64_t T,
                            float* out, Scratch& s) {
  const Config& c = M.config();
  ThreadPool& pool = M.pool();
  const int D = c.head_dim, nh = c.n_head, nkv = c.n_head_kv;
  const int64_t qg_dim = 2 * nh * D, kv_dim = nkv * D;

  float* qg = buf(s.qg, T * qg_dim);  // [T, nh, 2D]: per head [q | gate]
  float* k = buf(s.k, T * kv_dim);    // [T, nkv, D]
  float* v = buf(s.v, T * kv_dim);    // [T, nkv, D]
  {
    Act ax(s, xn, T, c.n_embd);
    const Seg segs[3] = {seg(w.wq, ax, qg), seg(w.wk, ax, k), seg(w.wv, ax, v)};
    matmul_segs(pool, segs, 3, T);
  }

  // Per-head RMSNorm, then RoPE, then append K and V to the cache.
  const size_t vb = static_cast<size_t>(st.kv_value_bytes);
  const size_t need = static_cast<size_t>(st.n_past + T) * kv_dim * vb;
  if (st.k_cache[kv].size() < need) {
    st.k_cache[kv].resize(need);
    st.v_cache[kv].resize(need);
  }
  for (int64_t t = 0; t < T; t++) {
    const int pos = st.n_past + static_cast<int>(t);
    for (int h = 0; h < nh; h++) {
      float* q = qg + t * qg_dim + h * 2 * D;
      rmsnorm(q, q, w.q_norm.data(), D, c.eps);
      rope(q, s.inv_freq.data(), c.n_rot, pos);
    }
    for (int g = 0; g < nkv; g++) {
      float* kh = k + t * kv_dim + g * D;
      rmsnorm(kh, kh, w.k_norm.data(), D, c.eps);
      rope(kh, s.inv_freq.data(), c.n_rot, pos);
    }
    uint8_t* kd = st.k_cache[kv].data() + static_cast<size_t>(pos) * kv_dim * vb;
    uint8_t* vd = st.v_cache[kv].data() + static_cast<size_t>(pos) * kv_dim * vb;
    if (vb == 2) {
      f32_to_f16_row(k + t * kv_dim, reinterpret_cast<uint16_t*>(kd), kv_dim);
      f32_to_f16_row(v + t * kv_dim, reinterpret_cast<uint16_t*>(vd), kv_dim);
    } else {
      std::memcpy(kd, k + t * kv_dim, kv_dim * sizeof(float));
      std::memcpy(vd, v + t * kv_dim, kv_dim * sizeof(float));
    }
  }

  // Causal softmax attention per (token, head); query head h reads KV head h / (nh / nkv).
  // A unit of work is one token and up to kAttnHeadsPerUnit heads of one KV head, so each K and
  // V row is read (and converted from F16) once per unit rather than once per head. Units are
  // made small enough to keep every thread busy; each head's arithmetic is the same whatever
  // the unit size, so results do not depend on the thread count.
  float* o = buf(s.o, T * nh * D);  // [T, nh*D]
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const uint8_t* kc = st.k_cache[kv].data();
  const uint8_t* vc = st.v_cache[kv].data();
  const size_t row_b = static_cast<size_t>(kv_dim) * vb;
  const int hpg = nh / nkv;  // query heads per KV head
  const int64_t fill = T * nh / (2 * static_cast<int64_t>(pool.size()));  // ~2 units per thread
  const int hc = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({kAttnHeadsPerUnit, hpg, fill})));
  const int n_chunk = (hpg + hc - 1) / hc;
  const int64_t units = T * nkv * n_chunk;
  const size_t n_ctx = static_cast<size_t>(st.n_ctx);
  pool.run([&](int ith, int nth) {
    float* sc = s.att[ith].data();                 // [hc][n_ctx] scores
    float* kf = sc + kAttnHeadsPerUnit * n_ctx;  // an F16 row converted
    // Key/value head g of position j as floats.
    auto row = [&](const uint8_t* cache, int j, int g) -> const float* {
      const uint8_t* p = cache + static_cast<size_t>(j) * row_b + static_cast<size_t>(g) * D * vb;
      if (vb == 4) return reinterpret_cast<const float*>(p);
      f16_to_f32_row(reinterpret_cast<const uint16_t*>(p), kf, D);
      return kf;
    };
    float mx[kAttnHeadsPerUnit], sum[kAttnHeadsPerUnit];
    for (int64_t u = ith; u < units; u += nth) {
      const int64_t t = u / (nkv * n_chunk);
      const int g = static_cast<int>(u / n_chunk % nkv);
      const int h0 = g * hpg + static_cast<int>(u % n_chunk) * hc;
      const int nhu = std::min(hc, (g + 1) * hpg - h0);  // heads of this unit
      const int n_keys = st.n_past + static_cast<int>(t) + 1;
      const float* q0 = qg + t * qg_dim + static_cast<int64_t>(h0) * 2 * D;  // head h0 + i at q0 + i*2D
      for (int i = 0; i < nhu; i++) mx[i] = -INFINITY;
      for (int j = 0; j < n_keys; j++) {
        const float* kj = row(kc, j, g);
        for (int i = 0; i < nhu; i++) {
          const float d = dot_f32(q0 + i * 2 * D, kj, D) * scale;
          sc[i * n_ctx + j] = d;
          mx[i] = std::max(mx[i], d);
        }
      }
      for (int i = 0; i < nhu; i++) {
        float* si = sc + i * n_ctx;
        sum[i] = 0.0f;
        for (int j = 0; j < n_keys; j++) {
          si[j] = std::exp(si[j] - mx[i]);
          sum[i] += si[j];
        }
        float* oh = o + t * nh * D + static_cast<int64_t>(h0 + i) * D;
        std::fill(oh, oh + D, 0.0f);
      }
      for (int j = 0; j < n_keys; j++) {
        const float* vj = row(vc, j, g);
        for (int i = 0; i < nhu; i++) {
          const float p = sc[i * n_ctx + j] / sum[i];
          float* oh = o + t * nh * D + static_cast<int64_t>(h0 + i) * D;
          for (int x = 0; x < D; x++) oh[x] += p * vj[x];
        }
      }
      for (int i = 0; i < nhu; i++) {
        float* oh = o + t * nh * D + static_cast<int64_t>(h0 + i) * D;
        const float* gate = q0 + i * 2 * D + D;  // output gate: O *= sigmoid(gate)
        for (int x = 0; x < D; x++) oh[x] *= sigmoid(gate[x]);
      }
    }
  });
  matmul(pool, w.wo, o, T, out, s);
}

// ---------------------------------------------------------------- Gated DeltaNet

// xn: [T, H] -> out: [T, H]. dn: this layer's index among the DeltaNet layers.
static void deltanet_layer(const Model& M, const DeltaNetWeights& w, SeqState& st, int dn, const float* xn,
                           int64_t T, float* out, Scratch& s) {
  const Config& c = M.config();
  ThreadPool& pool = M.pool();
  const int nk = c.ssm_n_group, nv = c.ssm_dt_rank, dk = c.ssm_d_state, dv = c.ssm_d_state;
  const int Kc = c.ssm_conv_kernel;
  const int64_t C = c.conv_dim(), vdim = c.ssm_d_inner;

  float* m = buf(s.mqkv, T * C);   // [T, C] raw [q | k | v] projections
  float* z = buf(s.z, T * vdim);   // [T, nv*dv] output-gate input
  float* b = buf(s.b, T * nv);     // [T, nv]
  float* a = buf(s.a, T * nv);     // [T, nv]
  {
    Act ax(s, xn, T, c.n_embd);
    const Seg segs[4] = {seg(w.wqkv, ax, m), seg(w.wgate, ax, z), seg(w.wbeta, ax, b), seg(w.walpha, ax, a)};
    matmul_segs(pool, segs, 4, T);
  }

  // Causal depthwise conv over [conv state (Kc-1 rows); m], then SiLU. cv: [T, C].
  float* cv = buf(s.cv, T * C);
  float* cs = st.conv[dn].data();  // [Kc-1, C], oldest first
  pool.parallel_for(C, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ch++) {
      const float* wc = w.conv.data() + ch * Kc;
      for (int64_t t = 0; t < T; t++) {
        float acc = 0.0f;
        for (int j = 0; j < Kc; j++) {
          const int64_t tau = t - (Kc - 1) + j;  // input time, < 0 means the state
          const float in = tau >= 0 ? m[tau * C + ch] : cs[(Kc - 1 + tau) * C + ch];
          acc += wc[j] * in;
        }
        cv[t * C + ch] = silu(acc);
      }
      // New state: the last Kc-1 rows of [state; m].
      for (int r = 0; r < Kc - 1; r++) {
        const int64_t tau = T - (Kc - 1) + r;
        cs[r * C + ch] = tau >= 0 ? m[tau * C + ch] : cs[(Kc - 1 + tau) * C + ch];
      }
    }
  });
  // (The state update above reads rows it may already have overwritten when T < Kc-1:
  // rows are rewritten in increasing r and read from r + T > r, so reads come first.)

  // L2-normalise q and k per head; fold dk^-1/2 into q. Gates: beta = sigmoid(b),
  // g = -exp(A_log) * softplus(a + dt_bias) stored back into a.
  const float qscale = 1.0f / std::sqrt(static_cast<float>(dk));
  for (int64_t t = 0; t < T; t++) {
    float* row = cv + t * C;
    for (int h = 0; h < nk; h++) {
      float* q = row + h * dk;
      l2norm(q, dk, c.eps);
      for (int i = 0; i < dk; i++) q[i] *= qscale;
      l2norm(row + nk * dk + h * dk, dk, c.eps);
    }
    for (int j = 0; j < nv; j++) {
      b[t * nv + j] = sigmoid(b[t * nv + j]);
      a[t * nv + j] = w.ssm_a[j] * softplus(a[t * nv + j] + w.dt_bias[j]);
    }
  }

  // The delta rule, token by token, each value head independent (its state S is [dk, dv]):
  //   S <- exp(g) S; delta = beta (v - S^T k); S <- S + k delta^T; o = S^T q
  // then the gated RMSNorm y = o / rms(o) * norm * silu(z). The state (64 heads x 64 KiB per
  // layer in the 397B model) is far larger than L2: the kernel streams it once and rewrites it
  // from cache (kernels.h: delta_step_fn).
  float* y = buf(s.y, T * vdim);  // [T, nv*dv]
  float* dtmp = buf(s.dtmp, static_cast<size_t>(nv) * 2 * dv);
  const delta_step_fn step = active_kernels().delta_step;
  pool.parallel_for(nv, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
      float* o = dtmp + j * 2 * dv;  // [dv]
      float* tmp = o + dv;           // [dv]
      float* S = st.ssm[dn].data() + j * dk * dv;
      const int kh = static_cast<int>(j % nk);
      for (int64_t t = 0; t < T; t++) {
        const float* row = cv + t * C;
        const float* q = row + kh * dk;
        const float* k = row + nk * dk + kh * dk;
        const float* v = row + 2 * nk * dk + j * dv;
        step(S, k, q, v, std::exp(a[t * nv + j]), b[t * nv + j], dk, dv, o, tmp);
        float* yj = y + t * vdim + j * dv;
        const float* zj = z + t * vdim + j * dv;
        rmsnorm(yj, o, w.norm.data(), dv, c.eps);
        for (int jj = 0; jj < dv; jj++) yj[jj] *= silu(zj[jj]);
      }
    }
  });
  matmul(pool, w.wout, y, T, out, s);
}

// ---------------------------------------------------------------- mixture of experts

using Clock = std::chrono::steady_clock;

inline void add_time(Scratch& s, Op op, Clock::time_point& t0) {
  if (!s.profiling) return;
  const Clock::time_point t1 = Clock::now();
  s.op_s[op] += std::chrono::duration<double>(t1 - t0).count();
  t0 = t1;
}

// Router probabilities of one token (p: [E] logits, softmaxed in place); its top k experts and
// their renormalised weights, in rank order.
static void route(float* p, int64_t E, int64_t K, std::vector<int>& order, int* sel, float* selw) {
  const float mx = *std::max_element(p, p + E);
  float sum = 0.0f;
  for (int64_t e = 0; e < E; e++) sum += (p[e] = std::exp(p[e] - mx));
  for (int64_t e = 0; e < E; e++) p[e] /= sum;
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + K, order.end(),
                    [&](int x, int y) { return p[x] > p[y] || (p[x] == p[y] && x < y); });
  float top = 0.0f;
  for (int64_t i = 0; i < K; i++) top += p[order[i]];
  for (int64_t i = 0; i < K; i++) {
    sel[i] = order[i];
    selw[i] = p[order[i]] / top;
  }
}

// One token (decode): three parallel jobs in all. (1) router and shared-expert gate logits;
// (2) gate and up rows of the k chosen experts and the shared expert, with SiLU, as one job over
// all their rows; (3) every output row's weighted sum over all k+1 down projections. The sum runs
// over the experts in ascending id, then the shared expert: the batched path's order, so both
// paths give bitwise the same result.
static void moe_decode(const Model& M, const MoeWeights& w, const float* xn, float* out, Scratch& s) {
  const Config& c = M.config();
  ThreadPool& pool = M.pool();
  const int64_t H = c.n_embd, E = c.n_expert, K = c.n_expert_used, I = c.n_ff_exp, Is = c.n_ff_shexp;
  Clock::time_point t0 = s.profiling ? Clock::now() : Clock::time_point{};

  float* rl = buf(s.rl, E);
  float sg = 0.0f;
  Act ax(s, xn, 1, H);
  {
    const Seg segs[2] = {seg(w.router, ax, rl), seg(w.sh_gate, ax, &sg)};
    matmul_segs(pool, segs, 2, 1);
  }
  s.order.resize(E);
  s.sel.resize(K);
  float* selw = buf(s.selw, K);
  route(rl, E, K, s.order, s.sel.data(), selw);
  s.slot_e.resize(K);
  s.slot_w.resize(K);
  s.slot_g.resize(K + 1);
  s.slot_u.resize(K + 1);
  s.slot_d.resize(K + 1);
  for (int64_t i = 0; i < K; i++) s.slot_e[i] = static_cast<int>(i);
  std::sort(s.slot_e.begin(), s.slot_e.end(), [&](int x, int y) { return s.sel[x] < s.sel[y]; });
  for (int64_t i = 0; i < K; i++) {
    const int r = s.slot_e[i];
    const int e = s.sel[r];
    s.slot_w[i] = selw[r];
    s.slot_g[i] = w.gate_exps.slice(e);
    s.slot_u[i] = w.up_exps.slice(e);
    s.slot_d[i] = w.down_exps.slice(e);
  }
  s.slot_g[K] = w.gate_sh;
  s.slot_u[K] = w.up_sh;
  s.slot_d[K] = w.down_sh;
  add_time(s, OP_MOE_ROUTER, t0);

  // (2) hs[slot i, r] = silu(gate_i.row(r) . x) * (up_i.row(r) . x)
  size_t xr_ge, xr_ue, xr_gs, xr_us;
  const uint8_t* x_ge = ax.get(w.gate_exps.tt->vec_dot_type, &xr_ge);
  const uint8_t* x_ue = ax.get(w.up_exps.tt->vec_dot_type, &xr_ue);
  const uint8_t* x_gs = ax.get(w.gate_sh.tt->vec_dot_type, &xr_gs);
  const uint8_t* x_us = ax.get(w.up_sh.tt->vec_dot_type, &xr_us);
  float* hs = buf(s.hs, K * I + Is);
  pool.parallel_for(K * I + Is, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const bool shared = r >= K * I;
      const int64_t i = shared ? K : r / I;
      const int64_t row = shared ? r - K * I : r % I;
      const Mat& G = s.slot_g[i];
      const Mat& U = s.slot_u[i];
      const float g = G.tt->vec_dot(H, G.row(row), shared ? x_gs : x_ge);
      const float u = U.tt->vec_dot(H, U.row(row), shared ? x_us : x_ue);
      hs[r] = silu(g) * u;
    }
  });

  // (3) each slot's hidden vector in its down matrix's dot type, then the weighted sum per row.
  const TypeTraits* vte = type_traits(w.down_exps.tt->vec_dot_type);
  const TypeTraits* vts = type_traits(w.down_sh.tt->vec_dot_type);
  const bool fe = w.down_exps.tt->vec_dot_type == T_F32, fs = w.down_sh.tt->vec_dot_type == T_F32;
  const size_t re = fe ? I * sizeof(float) : row_size(*vte, I);
  const size_t rs = fs ? Is * sizeof(float) : row_size(*vts, Is);
  if (s.hq.size() < re * K + rs) s.hq.resize(re * K + rs);
  uint8_t* hq = s.hq.data();
  for (int64_t i = 0; i < K; i++) {
    if (fe)
      std::memcpy(hq + i * re, hs + i * I, re);
    else
      vte->quantize_act(hs + i * I, hq + i * re, I);
  }
  if (fs)
    std::memcpy(hq + K * re, hs + K * I, rs);
  else
    vts->quantize_act(hs + K * I, hq + K * re, Is);
  // Each slot's down rows in order (one contiguous stream per matrix: interleaving the k+1
  // matrices row by row measured slower), then the weighted sum, which is only (k+1) H flops.
  float* ed = buf(s.ed, (K + 1) * H);  // [K+1, H]
  pool.parallel_for((K + 1) * H, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t i = r / H;
      const Mat& D = s.slot_d[i];
      ed[r] = D.tt->vec_dot(i < K ? I : Is, D.row(r - i * H), hq + i * re);
    }
  });
  const float gt = sigmoid(sg);
  for (int64_t r = 0; r < H; r++) {
    float acc = 0.0f;
    for (int64_t i = 0; i < K; i++) acc += s.slot_w[i] * ed[i * H + r];
    out[r] = acc + gt * ed[K * H + r];
  }
  add_time(s, OP_MOE_EXPERTS, t0);
}

// xn: [T, H] -> out: [T, H]: routed top-k experts plus the sigmoid-gated shared expert.
static void moe_layer(const Model& M, const MoeWeights& w, const float* xn, int64_t T, float* out, Scratch& s) {
  if (T == 1) {
    moe_decode(M, w, xn, out, s);
    return;
  }
  const Config& c = M.config();
  ThreadPool& pool = M.pool();
  const int64_t H = c.n_embd, E = c.n_expert, K = c.n_expert_used, I = c.n_ff_exp, Is = c.n_ff_shexp;
  Clock::time_point t0 = s.profiling ? Clock::now() : Clock::time_point{};

  // Router: softmax over all experts, keep the top k, renormalise their weights. The shared
  // expert's gate logit shares the input.
  float* rl = buf(s.rl, T * E);  // [T, E]
  float* sg = buf(s.sg, T);
  {
    Act ax(s, xn, T, H);
    const Seg segs[2] = {seg(w.router, ax, rl), seg(w.sh_gate, ax, sg)};
    matmul_segs(pool, segs, 2, T);
  }
  s.sel.resize(T * K);
  float* selw = buf(s.selw, T * K);
  s.order.resize(E);
  for (int64_t t = 0; t < T; t++) route(rl + t * E, E, K, s.order, s.sel.data() + t * K, selw + t * K);
  add_time(s, OP_MOE_ROUTER, t0);

  std::fill(out, out + T * H, 0.0f);
  // Routed experts, one expert at a time over the tokens that chose it.
  s.users.resize(E);
  for (auto& u : s.users) u.clear();
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < K; i++) s.users[s.sel[t * K + i]].push_back({t, selw[t * K + i]});
  for (int64_t e = 0; e < E; e++) {
    const auto& u = s.users[e];
    if (u.empty()) continue;
    const int64_t n = static_cast<int64_t>(u.size());
    float* ex = buf(s.ex, n * H);  // [n, H]
    float* eg = buf(s.eg, n * I);  // [n, I]
    float* eu = buf(s.eu, n * I);  // [n, I]
    float* ed = buf(s.ed, n * H);  // [n, H]
    for (int64_t r = 0; r < n; r++) std::memcpy(ex + r * H, xn + u[r].first * H, H * sizeof(float));
    const Mat G = w.gate_exps.slice(e), U = w.up_exps.slice(e), D = w.down_exps.slice(e);
    {
      Act ae(s, ex, n, H);
      const Seg segs[2] = {seg(G, ae, eg), seg(U, ae, eu)};
      matmul_segs(pool, segs, 2, n);
    }
    for (int64_t i = 0; i < n * I; i++) eg[i] = silu(eg[i]) * eu[i];
    matmul(pool, D, eg, n, ed, s);
    for (int64_t r = 0; r < n; r++) {
      float* o = out + u[r].first * H;
      const float wt = u[r].second;
      for (int64_t i = 0; i < H; i++) o[i] += wt * ed[r * H + i];
    }
  }

  // Shared expert, gated per token by sigmoid(sh_gate . x).
  float* eg = buf(s.eg, T * Is);
  float* eu = buf(s.eu, T * Is);
  float* ed = buf(s.ed, T * H);
  {
    Act ax(s, xn, T, H);
    const Seg segs[2] = {seg(w.gate_sh, ax, eg), seg(w.up_sh, ax, eu)};
    matmul_segs(pool, segs, 2, T);
  }
  for (int64_t i = 0; i < T * Is; i++) eg[i] = silu(eg[i]) * eu[i];
  matmul(pool, w.down_sh, eg, T, ed, s);
  for (int64_t t = 0; t < T; t++) {
    const float gt = sigmoid(sg[t]);
    for (int64_t i = 0; i < H; i++) out[t * H + i] += gt * ed[t * H + i];
  }
  add_time(s, OP_MOE_EXPERTS, t0);
}

// ---------------------------------------------------------------- the whole model

// Runs T <= MAX_BATCH tokens; writes logits of the last token, or of all, to logits
// (nullptr: none, for the leading batches of a long prompt).
static void forward_batch(const Model& M, SeqState& st, Scratch& s, const int32_t* ids, int64_t T, bool all_logits,
                          float* logits) {
  const Config& c = M.config();
  const int64_t H = c.n_embd;
  float* x = buf(s.x, T * H);     // [T, H] residual stream
  float* xn = buf(s.xn, T * H);   // [T, H]
  float* out = buf(s.out, T * H); // [T, H]
  Clock::time_point t0 = s.profiling ? Clock::now() : Clock::time_point{};
  for (int64_t t = 0; t < T; t++) M.tok_embd.tt->to_float(M.tok_embd.row(ids[t]), x + t * H, H);
  add_time(s, OP_EMBED, t0);

  int kv = 0, dn = 0;
  for (int l = 0; l < c.n_layer; l++) {
    const Layer& L = M.layers[l];
    for (int64_t t = 0; t < T; t++) rmsnorm(xn + t * H, x + t * H, L.attn_norm.data(), H, c.eps);
    add_time(s, OP_NORM, t0);
    if (L.attn) {
      attention_layer(M, L.at, st, kv++, xn, T, out, s);
      add_time(s, OP_ATTN, t0);
    } else {
      deltanet_layer(M, L.dn, st, dn++, xn, T, out, s);
      add_time(s, OP_DELTANET, t0);
    }
    for (int64_t i = 0; i < T * H; i++) x[i] += out[i];
    for (int64_t t = 0; t < T; t++) rmsnorm(xn + t * H, x + t * H, L.post_norm.data(), H, c.eps);
    add_time(s, OP_NORM, t0);
    moe_layer(M, L.moe, xn, T, out, s);  // times itself (router, experts)
    if (s.profiling) t0 = Clock::now();
    for (int64_t i = 0; i < T * H; i++) x[i] += out[i];
    add_time(s, OP_NORM, t0);
  }
  st.n_past += static_cast<int>(T);
  if (!logits) return;

  // Final norm and LM head, only for the rows asked for.
  const int64_t first = all_logits ? 0 : T - 1;
  const int64_t rows = T - first;
  for (int64_t t = 0; t < rows; t++) rmsnorm(xn + t * H, x + (first + t) * H, M.output_norm.data(), H, c.eps);
  matmul(M.pool(), M.output, xn, rows, logits, s);
  add_time(s, OP_LM_HEAD, t0);
}

// ---------------------------------------------------------------- state and session

void SeqState::init(const Config& cfg, int ctx) {
  n_ctx = ctx;
  kv_value_bytes = cfg.kv_value_bytes;
  const int n_attn = cfg.n_attn_layers();
  const int n_dn = cfg.n_layer - n_attn;
  k_cache.assign(n_attn, {});
  v_cache.assign(n_attn, {});
  // Address space for the whole context now, so the token loop never reallocates (and copies) a
  // growing cache; pages are only backed as positions are written.
  const size_t kv_row = static_cast<size_t>(cfg.n_head_kv) * cfg.head_dim * cfg.kv_value_bytes;
  for (int i = 0; i < n_attn; i++) {
    k_cache[i].reserve(kv_row * static_cast<size_t>(ctx));
    v_cache[i].reserve(kv_row * static_cast<size_t>(ctx));
  }
  conv.assign(n_dn, std::vector<float>(static_cast<size_t>(cfg.ssm_conv_kernel - 1) * cfg.conv_dim(), 0.0f));
  ssm.assign(n_dn, std::vector<float>(static_cast<size_t>(cfg.ssm_dt_rank) * cfg.ssm_d_state * cfg.ssm_d_state, 0.0f));
  n_past = 0;
}

void SeqState::clear() {
  // The KV cache keeps its memory; entries past n_past are never read.
  for (auto& v : conv) std::fill(v.begin(), v.end(), 0.0f);
  for (auto& v : ssm) std::fill(v.begin(), v.end(), 0.0f);
  n_past = 0;
}

Session::Session(std::shared_ptr<const Model> model, int n_ctx) : model_(std::move(model)) {
  if (n_ctx < 1) throw std::invalid_argument("n_ctx must be at least 1, got " + std::to_string(n_ctx));
  const Config& c = model_->config();
  st_.init(c, n_ctx);
  scratch_ = std::make_unique<Scratch>();
  scratch_->inv_freq.resize(c.n_rot / 2);
  for (int i = 0; i < c.n_rot / 2; i++) {
    // float32 like transformers, so angles round the same way.
    scratch_->inv_freq[i] = 1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / static_cast<float>(c.n_rot));
  }
}

Session::~Session() = default;

void Session::set_profiling(bool on) { scratch_->profiling = on; }

std::vector<std::pair<std::string, double>> Session::op_times() const {
  std::vector<std::pair<std::string, double>> r;
  for (int i = 0; i < 8; i++)
    if (i != OP_OTHER) r.emplace_back(kOpNames[i], scratch_->op_s[i]);
  return r;
}

void Session::reset_op_times() { std::fill(std::begin(scratch_->op_s), std::end(scratch_->op_s), 0.0); }

void Session::eval(const int32_t* ids, int64_t n, bool all_logits, float* out) {
  const Config& c = model_->config();
  if (n < 1) throw std::invalid_argument("eval needs at least one token");
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= c.n_vocab) {
      throw std::invalid_argument("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                                  " is outside the vocabulary [0, " + std::to_string(c.n_vocab) + ")");
    }
  }
  if (static_cast<int64_t>(st_.n_past) + n > st_.n_ctx) {
    throw std::length_error("context is full: " + std::to_string(st_.n_past) + " tokens evaluated + " +
                            std::to_string(n) + " new > n_ctx " + std::to_string(st_.n_ctx));
  }
  Scratch& s = *scratch_;
  s.att.resize(model_->pool().size());
  for (auto& a : s.att)
    if (a.size() < static_cast<size_t>(kAttnHeadsPerUnit) * st_.n_ctx + c.head_dim)
      a.resize(static_cast<size_t>(kAttnHeadsPerUnit) * st_.n_ctx + c.head_dim);
  const int64_t V = c.n_vocab;
  for (int64_t off = 0; off < n; off += MAX_BATCH) {
    const int64_t T = std::min(MAX_BATCH, n - off);
    const bool last = off + T == n;
    float* dst = all_logits ? out + off * V : (last ? out : nullptr);
    forward_batch(*model_, st_, s, ids + off, T, all_logits, dst);
  }
}

}  // namespace q35
