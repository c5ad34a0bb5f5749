// The qwen35moe forward pass, one function per layer kind, in the spirit of llama2.c's run.c:
// this file strings the layers together (embedding, per layer the pre-norm, attention or Gated
// DeltaNet, the post-norm and the MoE, each with its residual; the final norm and the LM head)
// and cuts long prompts into internal batches. The layer kinds are attention.cpp, deltanet.cpp
// and moe.cpp. Shapes are in comments: [T] is the number of tokens of this call, H the hidden size.
// The math follows ../shared/docs/qwen35moe-spec.md section 2 with GGUF-convention weights:
// norms carry their (1 + w), ssm_a holds -exp(A_log), DeltaNet value heads are "tiled"
// (value head j reads key head j mod nk).
#include <algorithm>
#include <stdexcept>
#include <string>

#include "model/layers.h"

namespace q35 {

namespace {

// Runs T <= MAX_BATCH tokens; writes logits of the last token, or of all, to logits
// (nullptr: none, for the leading batches of a long prompt).
void forward_batch(const Model& M, SeqState& st, Scratch& s, const int32_t* ids, int64_t T, bool all_logits,
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

}  // namespace

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
