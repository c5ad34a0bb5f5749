// The mixture of experts (spec section 2): the router's softmax and top-k, the chosen experts'
// SwiGLU MLPs and the sigmoid-gated shared expert. Decode (one token) runs as three parallel jobs
// over all the chosen experts' rows; a prompt batch runs each expert once over its tokens.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "model/layers.h"

namespace q35 {

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

void moe_layer(const Model& M, const MoeWeights& w, const float* xn, int64_t T, float* out, Scratch& s) {
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

}  // namespace q35
