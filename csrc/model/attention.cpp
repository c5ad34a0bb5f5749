// Gated full attention (spec section 2): q/k/v projections, per-head RMSNorm and RoPE on q and
// k, the KV cache append, causal softmax attention (grouped query heads), the sigmoid output
// gate and the output projection.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/f16_rows.h"
#include "model/layers.h"

namespace q35 {

namespace {

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


}  // namespace

void attention_layer(const Model& M, const AttnWeights& w, SeqState& st, int kv, const float* xn, int64_t T,
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

}  // namespace q35
