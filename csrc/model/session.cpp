// A session's sequence state (KV cache, conv windows, recurrent states) and the session object
// around it: creation, reset, per-op timing. Evaluating tokens is forward.cpp; snapshots and
// their encoding are state.cpp.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model/layers.h"

namespace q35 {

const char* const kOpNames[8] = {"embed", "norm_residual", "attention", "deltanet",
                                 "moe_router", "moe_experts", "lm_head", "other"};

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

}  // namespace q35
