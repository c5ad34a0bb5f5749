// model/: the qwen35moe model. What lives here: the hyper-parameters and weight views read from
// a GGUF file (this header; config.cpp, weights.cpp), where the matrices are placed
// (placement.cpp), one file per layer kind (attention.cpp, deltanet.cpp, moe.cpp), the forward
// pass that strings them (forward.cpp, with what they share in layers.h and matmul.cpp), and the
// per-sequence state, sessions and snapshots (session.h; session.cpp, state.cpp).
// Depends on: gguf/, quant/, kernels/ and runtime/. Knows nothing of Python.
//
// Matrices are views into the mmap'd file or into a huge-page copy of it
// (runtime/weight_memory.h); the small per-channel vectors (norms, conv taps, gates' biases) are
// copied out as float.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/split.h"
#include "quant/quant.h"
#include "runtime/threadpool.h"
#include "runtime/weight_memory.h"

namespace q35 {

struct Config {
  int n_layer = 0;          // main layers (block_count - nextn_predict_layers)
  int n_embd = 0;           // H
  int n_vocab = 0;          // V
  int64_t n_ctx_train = 0;  // context_length
  float eps = 1e-6f;        // rms_norm_eps (also the L2-norm eps)
  // gated full attention
  int n_head = 0;       // nh
  int n_head_kv = 0;    // nkv
  int head_dim = 0;     // D (key_length == value_length)
  int n_rot = 0;        // rotary dims
  float rope_theta = 1e7f;
  int rope_sections[4] = {0, 0, 0, 0};
  // Gated DeltaNet
  int ssm_conv_kernel = 0;  // Kc
  int ssm_d_state = 0;      // dk == dv
  int ssm_n_group = 0;      // nk
  int ssm_dt_rank = 0;      // nv
  int ssm_d_inner = 0;      // nv * dv
  int full_attn_interval = 4;
  // MoE
  int n_expert = 0;
  int n_expert_used = 0;
  int n_ff_exp = 0;    // I
  int n_ff_shexp = 0;  // Is
  std::vector<bool> is_attn;  // per layer: full attention (true) or DeltaNet
  // KV cache values: F16 (2 bytes) for files with quantized matrices, as llama.cpp's default;
  // F32 (4) for float files, the reference path (F16 rounding of K and V moves the tiny
  // fixtures' logits by up to 3e-3, over the 1e-3 bound they are held to). Set by Model.
  int kv_value_bytes = 4;

  int conv_dim() const { return 2 * ssm_n_group * ssm_d_state + ssm_d_inner; }
  int n_attn_layers() const;
};

// A weight matrix (or a stack of them): rows of n_in values in `type`, n_out rows per matrix.
struct Mat {
  const uint8_t* data = nullptr;
  const TypeTraits* tt = nullptr;
  int64_t n_in = 0;       // ne0
  int64_t n_out = 0;      // ne1
  int64_t n_mat = 1;      // ne2 (experts), 1 for a plain matrix
  size_t row_bytes = 0;   // bytes of one row
  size_t mat_bytes = 0;   // bytes from one matrix of the stack to the next
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
  Mat slice(int64_t m) const {  // matrix m of a stack
    Mat s = *this;
    s.data = data + static_cast<size_t>(m) * mat_bytes;
    s.n_mat = 1;
    return s;
  }
};

struct AttnWeights {
  Mat wq, wk, wv, wo;             // wq: [H -> 2*nh*D], per head [q | gate]
  std::vector<float> q_norm, k_norm;  // [D], (1 + w) already folded in by the converter
};

struct DeltaNetWeights {
  Mat wqkv;   // [H -> conv_dim] rows [q | k | v]
  Mat wgate;  // [H -> nv*dv]  (z)
  Mat wbeta;  // [H -> nv]
  Mat walpha; // [H -> nv]
  Mat wout;   // [nv*dv -> H]
  std::vector<float> conv;     // [conv_dim][Kc], tap Kc-1 multiplies the current token
  std::vector<float> dt_bias;  // [nv]
  std::vector<float> ssm_a;    // [nv] = -exp(A_log)
  std::vector<float> norm;     // [dv] gated-norm weight (no +1)
};

struct MoeWeights {
  Mat router;                        // [H -> E]
  Mat gate_exps, up_exps, down_exps; // stacks of E matrices
  Mat gate_sh, up_sh, down_sh;       // shared expert
  Mat sh_gate;                       // [H -> 1] scalar gate of the shared expert
};

struct Layer {
  bool attn = false;
  std::vector<float> attn_norm, post_norm;  // [H]
  AttnWeights at;
  DeltaNetWeights dn;
  MoeWeights moe;
};

// Reads and checks the hyper-parameters of a qwen35moe file or split set (no tensor data is
// touched). Metadata comes from the first part; the embedding may sit in any part.
Config read_config(const GgufSet& files);

class Model {
 public:
  Model(const std::string& path, int n_threads, WeightPlacement placement = WeightPlacement::Auto);
  ~Model();
  const Config& config() const { return cfg_; }
  const GgufFile& file() const { return files_->meta(); }  // the metadata (first part)
  const GgufSet& files() const { return *files_; }
  ThreadPool& pool() const { return *pool_; }
  // Where the matrices are read from: nullptr while they are read through the file mapping.
  const WeightCopy* weight_copy() const { return copy_.get(); }
  // Why they are not copied ("" when they are).
  const std::string& mmap_reason() const { return mmap_reason_; }

  Mat tok_embd, output;
  std::vector<float> output_norm;
  std::vector<Layer> layers;

 private:
  void bind_weights();
  void place_weights(WeightPlacement placement);
  template <class F>
  void for_each_mat(F&& f);
  Mat mat(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_mat = 1);
  std::vector<float> vec(const std::string& name, int64_t n) const;
  std::unique_ptr<GgufSet> files_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<WeightCopy> copy_;
  std::vector<WeightCopy::Range> mat_ranges_;  // every matrix tensor bound, as stored in the file
  std::string mmap_reason_;
  Config cfg_;
};

}  // namespace q35
