// Gated DeltaNet (spec section 2): the [q | k | v], z, beta and alpha projections, the causal
// depthwise conv with its rolling state, L2-normalised q and k, the gated delta rule per value
// head (the recurrent step is a kernel: kernels/delta_step.h, reference kernels/ref_delta.cpp),
// the gated RMSNorm and the output projection.
#include <cmath>

#include "model/layers.h"

namespace q35 {

namespace {

inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// x *= (sum x^2 + eps)^-1/2, as HF's l2norm in the DeltaNet.
void l2norm(float* x, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss + eps));
  for (int64_t i = 0; i < n; i++) x[i] *= scale;
}

}  // namespace

void deltanet_layer(const Model& M, const DeltaNetWeights& w, SeqState& st, int dn, const float* xn, int64_t T,
                    float* out, Scratch& s) {
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
  // from cache (kernels/kernels.h: delta_step_fn).
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

}  // namespace q35
