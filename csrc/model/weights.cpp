// Loading a qwen35moe GGUF: the weight views, each checked against the hyper-parameters (shape,
// a type the kernels can compute). Every problem is a GgufError naming the file and the tensor.
#include "model/model.h"

#include <sstream>

#include "kernels/kernels.h"

namespace q35 {

namespace {

std::string shape_str(const int64_t* ne, int n) {
  std::ostringstream s;
  s << "{";
  for (int i = 0; i < n; i++) s << (i ? ", " : "") << ne[i];
  s << "}";
  return s.str();
}

}  // namespace

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
