// The qwen35moe model: hyper-parameters and weight views read from a GGUF file, and the
// per-sequence state. Matrices are views into the mmap'd file or into a huge-page copy of it
// (weight_memory.h); the small per-channel vectors (norms, conv taps, gates' biases) are copied
// out as float.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gguf.h"
#include "gguf_split.h"
#include "quant.h"
#include "threadpool.h"
#include "weight_memory.h"

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

// Everything one sequence carries between calls.
struct SeqState {
  int n_ctx = 0;
  int n_past = 0;
  int kv_value_bytes = 4;                             // Config::kv_value_bytes
  std::vector<std::vector<uint8_t>> k_cache, v_cache;  // per attention layer: [n_ctx][nkv*D] values
  std::vector<std::vector<float>> conv;              // per DeltaNet layer: [Kc-1][conv_dim], oldest first
  std::vector<std::vector<float>> ssm;               // per DeltaNet layer: [nv][dk][dv]
  void init(const Config& cfg, int n_ctx);
  void clear();
};

// KV rows of every attention layer for up to kRows consecutive positions. Immutable once made,
// so snapshots of one sequence share the chunks of their common prefix.
struct KvChunk {
  static constexpr int kRows = 64;
  int rows = 0;             // positions held, <= kRows (only a state's last chunk has fewer)
  std::vector<uint8_t> data;  // [n_attn][2: K, V][rows][kv_dim] values of the KV cache's type
};

// An opaque copy of a session's state at one point of its sequence: only the n_past KV rows in
// use (not the whole n_ctx cache), the conv windows and the recurrent states. It can be restored
// into any session of a model with the same shapes whose n_ctx holds n_past tokens.
struct SessionState {
  int n_past = 0;
  int n_attn = 0;
  int64_t kv_dim = 0;                                // values of one KV row: nkv*D
  int kv_value_bytes = 4;                            // 4: F32 rows, 2: F16 rows
  std::vector<std::shared_ptr<const KvChunk>> kv;    // ceil(n_past / kRows) chunks, in order
  std::vector<std::vector<float>> conv;              // per DeltaNet layer: [Kc-1][conv_dim]
  std::vector<std::vector<float>> ssm;               // per DeltaNet layer: [nv][dk][dv]
  size_t nbytes() const;                             // bytes of state data (shared chunks counted)
  // Bytes held by a set of states, each shared chunk counted once.
  static size_t nbytes_distinct(const std::vector<const SessionState*>& states);
  // Leading KV chunks a and b hold in common (the same chunk objects).
  static size_t shared_prefix_chunks(const SessionState& a, const SessionState& b);
  // A flat little-endian blob (header with the shapes, then the floats), for files. With
  // first_chunk = k > 0 the blob leaves out the KV rows of the first k chunks (whole chunks
  // only: k is capped at n_past / kRows); reading it back needs a base state holding them.
  size_t serialized_size(size_t first_chunk = 0) const;
  void serialize(uint8_t* out, size_t first_chunk = 0) const;  // writes serialized_size() bytes
  // Parses and validates a blob against the model's shapes; std::invalid_argument if it does
  // not fit (wrong shapes, wrong size, not a state blob, or a needed base missing). The KV
  // chunks the blob leaves out come from base; other chunks byte-equal to base's are shared.
  static SessionState deserialize(const Config& cfg, const uint8_t* data, size_t size,
                                  const SessionState* base = nullptr);
};

// Scratch buffers of one forward call, reused across calls.
struct Scratch;

class Session {
 public:
  Session(std::shared_ptr<const Model> model, int n_ctx);
  ~Session();
  // Evaluates n tokens after the current state. out receives the logits of the last token
  // ([V]) or of every token ([n][V]) when all_logits. Throws std::invalid_argument for bad
  // ids or a full context, before touching the state.
  void eval(const int32_t* ids, int64_t n, bool all_logits, float* out);
  void reset() { st_.clear(); }
  // A copy of the state; KV chunks byte-equal to those of base (e.g. a checkpoint of a shared
  // prefix) are shared with it instead of copied.
  SessionState snapshot(const SessionState* base = nullptr) const;
  // Replaces the state with a snapshot; std::invalid_argument (state untouched) when its shapes
  // do not match the model or its n_past exceeds this session's n_ctx.
  void restore(const SessionState& s);
  int n_past() const { return st_.n_past; }
  // Opt-in per-op timing: seconds spent in each op (embed, norm_residual, attention, deltanet,
  // moe_router, moe_experts, lm_head) summed over eval calls since the last reset.
  void set_profiling(bool on);
  std::vector<std::pair<std::string, double>> op_times() const;
  void reset_op_times();
  int n_ctx() const { return st_.n_ctx; }
  const Model& model() const { return *model_; }

 private:
  std::shared_ptr<const Model> model_;
  SeqState st_;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace q35
