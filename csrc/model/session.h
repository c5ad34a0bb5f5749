// One sequence's state (KV cache, conv windows, DeltaNet recurrent states), its snapshots and
// their flat encoding, and the Session that evaluates tokens on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"

namespace q35 {

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
