// Loading a qwen35moe GGUF: hyper-parameters from the metadata, weight views checked against
// them. Every problem is a GgufError naming the file and the tensor or key.
#include "model.h"

#include <sstream>

namespace q35 {

namespace {

const char* ARCH = "qwen35moe";

std::string key(const char* k) { return std::string(ARCH) + "." + k; }

std::string shape_str(const int64_t* ne, int n) {
  std::ostringstream s;
  s << "{";
  for (int i = 0; i < n; i++) s << (i ? ", " : "") << ne[i];
  s << "}";
  return s.str();
}

}  // namespace

int Config::n_attn_layers() const {
  int n = 0;
  for (bool a : is_attn) n += a;
  return n;
}

Model::Model(const std::string& path, int n_threads, WeightPlacement placement) {
  files_ = std::make_unique<GgufSet>(path);
  cfg_ = read_config(*files_);
  pool_ = std::make_unique<ThreadPool>(n_threads > 0 ? n_threads : default_thread_count());
  bind_weights();
  place_weights(placement);
  // Quantized matrices (any layer's MoE down projection is representative of the file's type)
  // get an F16 KV cache; see Config::kv_value_bytes.
  const TypeTraits* t = layers.empty() ? nullptr : layers[0].moe.down_exps.tt;
  const bool floats = !t || t == type_traits(T_F32) || t == type_traits(T_F16) || t == type_traits(T_BF16);
  cfg_.kv_value_bytes = floats ? 4 : 2;
}

Model::~Model() = default;

template <class F>
void Model::for_each_mat(F&& f) {
  f(tok_embd);
  f(output);
  for (Layer& L : layers) {
    for (Mat* m : {&L.at.wq, &L.at.wk, &L.at.wv, &L.at.wo, &L.dn.wqkv, &L.dn.wgate, &L.dn.wbeta, &L.dn.walpha,
                   &L.dn.wout, &L.moe.router, &L.moe.gate_exps, &L.moe.up_exps, &L.moe.down_exps, &L.moe.gate_sh,
                   &L.moe.up_sh, &L.moe.down_sh, &L.moe.sh_gate})
      f(*m);
  }
}

void Model::place_weights(WeightPlacement placement) {
  if (placement == WeightPlacement::Mmap) {
    mmap_reason_ = "asked for";
    return;
  }
  // The embedding is read one row per token: it stays mapped unless it doubles as the LM head.
  // (mat() runs once per tensor, so the ranges are distinct.)
  std::vector<WeightCopy::Range> ranges;
  for (const WeightCopy::Range& r : mat_ranges_)
    if (r.src != tok_embd.data || output.data == tok_embd.data) ranges.push_back(r);
  const std::string why = copy_unavailable_reason();
  if (placement == WeightPlacement::Auto && !why.empty()) {
    mmap_reason_ = why;
    return;
  }
  try {
    copy_ = std::make_unique<WeightCopy>(ranges, *pool_);
  } catch (const std::runtime_error& e) {
    // Asked for, it is an error; chosen automatically, the mapping still works.
    if (placement == WeightPlacement::Copy) files_->meta().fail(e.what());
    mmap_reason_ = e.what();
    return;
  }
  for_each_mat([&](Mat& m) {
    if (const uint8_t* p = copy_->relocate(m.data)) m.data = p;
  });
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

Mat Model::mat(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_mat) {
  const GgufFile& f = files_->meta();
  const GgufSet::Found found = files_->find_tensor(name);
  const GgufTensorInfo* t = found.info;
  if (!t) f.fail("missing tensor " + name);
  const int64_t want[4] = {n_in, n_out, n_mat, 1};
  bool ok = t->ne[0] == n_in && t->ne[1] == n_out && t->ne[2] == n_mat && t->ne[3] == 1;
  if (!ok) {
    f.fail("tensor " + name + " has shape " + shape_str(t->ne, static_cast<int>(t->n_dims)) + ", expected " +
           shape_str(want, n_mat > 1 ? 3 : 2));
  }
  const TypeTraits* tt = type_traits(t->type);
  if (!tt || !tt->computable()) {
    f.fail("tensor " + name + " has type " + (tt ? tt->name : std::to_string(t->type)) +
           ", which qwen35cpu cannot compute yet");
  }
  Mat m;
  m.data = found.data();
  m.tt = tt;
  m.n_in = n_in;
  m.n_out = n_out;
  m.n_mat = n_mat;
  m.row_bytes = row_size(*tt, n_in);
  m.mat_bytes = m.row_bytes * static_cast<size_t>(n_out);
  mat_ranges_.push_back({m.data, m.mat_bytes * static_cast<size_t>(n_mat)});
  return m;
}

std::vector<float> Model::vec(const std::string& name, int64_t n) const {
  const GgufFile& f = files_->meta();
  const GgufSet::Found found = files_->find_tensor(name);
  const GgufTensorInfo* t = found.info;
  if (!t) f.fail("missing tensor " + name);
  if (t->n_elements() != n) {
    f.fail("tensor " + name + " has " + std::to_string(t->n_elements()) + " elements, expected " + std::to_string(n));
  }
  const TypeTraits* tt = type_traits(t->type);
  if (!tt || !tt->to_float) {
    f.fail("tensor " + name + " has type " + (tt ? tt->name : std::to_string(t->type)) + ", which qwen35cpu cannot read");
  }
  std::vector<float> v(static_cast<size_t>(n));
  tt->to_float(found.data(), v.data(), n);
  return v;
}

void Model::bind_weights() {
  const Config& c = cfg_;
  const GgufSet& f = *files_;
  const int64_t H = c.n_embd, V = c.n_vocab;
  tok_embd = mat("token_embd.weight", H, V);
  output_norm = vec("output_norm.weight", H);
  // Without output.weight the head is tied to the embedding, as llama.cpp does.
  output = f.find_tensor("output.weight").info ? mat("output.weight", H, V) : tok_embd;

  const int64_t D = c.head_dim, nh = c.n_head, nkv = c.n_head_kv;
  const int64_t nv = c.ssm_dt_rank, dv = c.ssm_d_state, Kc = c.ssm_conv_kernel;
  const int64_t E = c.n_expert, I = c.n_ff_exp, Is = c.n_ff_shexp;
  layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; l++) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = layers[l];
    L.attn = c.is_attn[l];
    L.attn_norm = vec(p + "attn_norm.weight", H);
    L.post_norm = vec(p + "post_attention_norm.weight", H);
    if (L.attn) {
      L.at.wq = mat(p + "attn_q.weight", H, 2 * nh * D);
      L.at.wk = mat(p + "attn_k.weight", H, nkv * D);
      L.at.wv = mat(p + "attn_v.weight", H, nkv * D);
      L.at.wo = mat(p + "attn_output.weight", nh * D, H);
      L.at.q_norm = vec(p + "attn_q_norm.weight", D);
      L.at.k_norm = vec(p + "attn_k_norm.weight", D);
    } else {
      L.dn.wqkv = mat(p + "attn_qkv.weight", H, c.conv_dim());
      L.dn.wgate = mat(p + "attn_gate.weight", H, c.ssm_d_inner);
      L.dn.wbeta = mat(p + "ssm_beta.weight", H, nv);
      L.dn.walpha = mat(p + "ssm_alpha.weight", H, nv);
      L.dn.wout = mat(p + "ssm_out.weight", c.ssm_d_inner, H);
      L.dn.conv = vec(p + "ssm_conv1d.weight", Kc * c.conv_dim());
      L.dn.dt_bias = vec(p + "ssm_dt.bias", nv);
      L.dn.ssm_a = vec(p + "ssm_a", nv);
      L.dn.norm = vec(p + "ssm_norm.weight", dv);
    }
    MoeWeights& m = L.moe;
    m.router = mat(p + "ffn_gate_inp.weight", H, E);
    if (f.find_tensor(p + "ffn_gate_up_exps.weight").info) {
      // Fused gate+up stack: per expert, gate rows first, then up rows.
      Mat gu = mat(p + "ffn_gate_up_exps.weight", H, 2 * I, E);
      m.gate_exps = gu;
      m.gate_exps.n_out = I;
      m.up_exps = gu;
      m.up_exps.n_out = I;
      m.up_exps.data = gu.data + static_cast<size_t>(I) * gu.row_bytes;
    } else {
      m.gate_exps = mat(p + "ffn_gate_exps.weight", H, I, E);
      m.up_exps = mat(p + "ffn_up_exps.weight", H, I, E);
    }
    m.down_exps = mat(p + "ffn_down_exps.weight", I, H, E);
    m.gate_sh = mat(p + "ffn_gate_shexp.weight", H, Is);
    m.up_sh = mat(p + "ffn_up_shexp.weight", H, Is);
    m.down_sh = mat(p + "ffn_down_shexp.weight", Is, H);
    // Stored as {H, 1} by our converter and llama.cpp's; {H} is accepted too.
    if (!f.find_tensor(p + "ffn_gate_inp_shexp.weight").info) f.meta().fail("missing tensor " + p + "ffn_gate_inp_shexp.weight");
    m.sh_gate = mat(p + "ffn_gate_inp_shexp.weight", H, 1);
  }
}

}  // namespace q35
