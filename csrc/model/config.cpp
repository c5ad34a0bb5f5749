// The hyper-parameters of a qwen35moe file or split set, read from its metadata and checked:
// every problem is a GgufError naming the file and the key.
#include <string>

#include "model/model.h"

namespace q35 {

namespace {

const char* ARCH = "qwen35moe";

std::string key(const char* k) { return std::string(ARCH) + "." + k; }

}  // namespace

int Config::n_attn_layers() const {
  int n = 0;
  for (bool a : is_attn) n += a;
  return n;
}

Config read_config(const GgufSet& files) {
  const GgufFile& f = files.meta();
  if (!f.has("general.architecture")) f.fail("not a model file: metadata key general.architecture is missing");
  const std::string arch = f.get_str("general.architecture");
  if (arch != ARCH) f.fail("architecture '" + arch + "' is not supported (qwen35cpu runs qwen35moe)");

  Config c;
  auto get = [&](const char* k) { return f.get_int(key(k)); };
  const int64_t nextn = f.get_int(key("nextn_predict_layers"), 0);
  c.n_layer = static_cast<int>(get("block_count") - nextn);
  c.n_embd = static_cast<int>(get("embedding_length"));
  c.n_ctx_train = f.get_int(key("context_length"), 262144);
  c.eps = static_cast<float>(f.get_float(key("attention.layer_norm_rms_epsilon")));
  c.n_head = static_cast<int>(get("attention.head_count"));
  c.n_head_kv = static_cast<int>(get("attention.head_count_kv"));
  c.head_dim = static_cast<int>(get("attention.key_length"));
  const int64_t vlen = f.get_int(key("attention.value_length"), c.head_dim);
  c.n_rot = static_cast<int>(f.get_int(key("rope.dimension_count"), c.head_dim));
  c.rope_theta = static_cast<float>(f.get_float(key("rope.freq_base"), 10000.0));
  if (f.has(key("rope.dimension_sections"))) {
    auto s = f.get_int_array(key("rope.dimension_sections"));
    for (size_t i = 0; i < s.size() && i < 4; i++) c.rope_sections[i] = static_cast<int>(s[i]);
  }
  c.ssm_conv_kernel = static_cast<int>(get("ssm.conv_kernel"));
  c.ssm_d_state = static_cast<int>(get("ssm.state_size"));
  c.ssm_n_group = static_cast<int>(get("ssm.group_count"));
  c.ssm_dt_rank = static_cast<int>(get("ssm.time_step_rank"));
  c.ssm_d_inner = static_cast<int>(get("ssm.inner_size"));
  c.full_attn_interval = static_cast<int>(f.get_int(key("full_attention_interval"), 4));
  c.n_expert = static_cast<int>(get("expert_count"));
  c.n_expert_used = static_cast<int>(get("expert_used_count"));
  c.n_ff_exp = static_cast<int>(get("expert_feed_forward_length"));
  c.n_ff_shexp = static_cast<int>(f.get_int(key("expert_shared_feed_forward_length"), c.n_ff_exp));

  auto require = [&](bool ok, const std::string& what) {
    if (!ok) f.fail("bad hyper-parameters: " + what);
  };
  const int64_t big = int64_t{1} << 24;
  auto sane = [&](int64_t v) { return v > 0 && v < big; };
  require(sane(c.n_layer), "block_count must be positive");
  require(sane(c.n_embd), "embedding_length must be positive");
  require(sane(c.n_head) && sane(c.n_head_kv) && c.n_head % c.n_head_kv == 0,
          "head_count must be a positive multiple of head_count_kv");
  require(sane(c.head_dim) && vlen == c.head_dim, "key_length must equal value_length");
  require(c.n_rot > 0 && c.n_rot <= c.head_dim && c.n_rot % 2 == 0, "rope.dimension_count must be even and <= key_length");
  require(c.rope_theta > 0, "rope.freq_base must be positive");
  require(c.eps > 0 && c.eps < 1, "layer_norm_rms_epsilon out of range");
  require(c.ssm_conv_kernel >= 1 && c.ssm_conv_kernel <= 64, "ssm.conv_kernel out of range");
  require(sane(c.ssm_d_state) && sane(c.ssm_n_group) && sane(c.ssm_dt_rank), "ssm sizes must be positive");
  require(c.ssm_dt_rank % c.ssm_n_group == 0, "ssm.time_step_rank must be a multiple of ssm.group_count");
  require(static_cast<int64_t>(c.ssm_d_inner) == static_cast<int64_t>(c.ssm_dt_rank) * c.ssm_d_state,
          "ssm.inner_size must be time_step_rank * state_size");
  require(c.full_attn_interval >= 1, "full_attention_interval must be positive");
  require(sane(c.n_expert) && c.n_expert_used >= 1 && c.n_expert_used <= c.n_expert,
          "expert_used_count must be in 1..expert_count");
  require(sane(c.n_ff_exp) && sane(c.n_ff_shexp), "expert feed-forward lengths must be positive");

  c.is_attn.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; l++) c.is_attn[l] = (l + 1) % c.full_attn_interval == 0;
  if (f.has(key("attention.recurrent_layers"))) {
    auto rec = f.get_int_array(key("attention.recurrent_layers"));
    require(rec.size() >= static_cast<size_t>(c.n_layer), "attention.recurrent_layers is too short");
    for (int l = 0; l < c.n_layer; l++) c.is_attn[l] = rec[l] == 0;
  }

  const GgufTensorInfo* emb = files.find_tensor("token_embd.weight").info;
  if (!emb) f.fail("missing tensor token_embd.weight");
  c.n_vocab = static_cast<int>(emb->ne[1]);
  require(emb->ne[0] == c.n_embd, "token_embd.weight rows are not embedding_length wide");
  require(emb->ne[1] > 0 && emb->ne[1] < (int64_t{1} << 31), "vocabulary size out of range");
  return c;
}

}  // namespace q35
