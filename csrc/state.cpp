// Snapshots of a session's state (for checkpoints and session files) and their flat encoding.
// A snapshot copies only the KV rows in use: a checkpoint of a 100-token prefix costs 100 rows
// whatever n_ctx is. The recurrent parts (conv window, DeltaNet state) are fixed-size.
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "model.h"

namespace q35 {

namespace {

constexpr char kMagic[4] = {'Q', '3', '5', 'T'};
constexpr uint32_t kVersion = 1;

// The blob's header; the floats follow in the order k[0], v[0], k[1], v[1], ..., conv[0],
// ssm[0], conv[1], ssm[1], ... Fields are fixed-width so the layout does not depend on the ABI.
struct BlobHeader {
  char magic[4];
  uint32_t version;
  uint32_t n_past;
  uint32_t n_attn;
  uint32_t n_dn;
  uint32_t reserved;
  uint64_t kv_dim;    // floats per KV row
  uint64_t conv_len;  // floats of one conv window
  uint64_t ssm_len;   // floats of one recurrent state
};
static_assert(sizeof(BlobHeader) == 48, "BlobHeader must have no padding");

// The shapes a state of this model must have.
struct Shapes {
  size_t n_attn, n_dn, kv_dim, conv_len, ssm_len;
  explicit Shapes(const Config& c)
      : n_attn(static_cast<size_t>(c.n_attn_layers())),
        n_dn(static_cast<size_t>(c.n_layer - c.n_attn_layers())),
        kv_dim(static_cast<size_t>(c.n_head_kv) * c.head_dim),
        conv_len(static_cast<size_t>(c.ssm_conv_kernel - 1) * c.conv_dim()),
        ssm_len(static_cast<size_t>(c.ssm_dt_rank) * c.ssm_d_state * c.ssm_d_state) {}
};

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("session state " + what); }

// Checks every vector of s against the model's shapes; nothing is modified.
void check_shapes(const SessionState& s, const Shapes& sh) {
  if (s.n_past < 0) bad("has a negative token count");
  if (s.k.size() != sh.n_attn || s.v.size() != sh.n_attn || s.conv.size() != sh.n_dn || s.ssm.size() != sh.n_dn)
    bad("has " + std::to_string(s.k.size()) + " attention / " + std::to_string(s.conv.size()) +
        " DeltaNet layers; the model has " + std::to_string(sh.n_attn) + " / " + std::to_string(sh.n_dn));
  if (static_cast<size_t>(s.kv_dim) != sh.kv_dim) bad("KV rows are not as wide as the model's");
  const size_t rows = static_cast<size_t>(s.n_past) * sh.kv_dim;
  for (size_t i = 0; i < sh.n_attn; i++)
    if (s.k[i].size() != rows || s.v[i].size() != rows) bad("KV rows do not match the model's shapes");
  for (size_t i = 0; i < sh.n_dn; i++)
    if (s.conv[i].size() != sh.conv_len || s.ssm[i].size() != sh.ssm_len)
      bad("recurrent state does not match the model's shapes");
}

uint8_t* put(uint8_t* out, const std::vector<float>& v) {
  if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(float));
  return out + v.size() * sizeof(float);
}

const uint8_t* take(const uint8_t* in, std::vector<float>& v, size_t n) {
  v.resize(n);
  if (n) std::memcpy(v.data(), in, n * sizeof(float));
  return in + n * sizeof(float);
}

}  // namespace

size_t SessionState::nbytes() const {
  size_t n = 0;
  for (const auto* group : {&k, &v, &conv, &ssm})
    for (const auto& x : *group) n += x.size() * sizeof(float);
  return n;
}

size_t SessionState::serialized_size() const { return sizeof(BlobHeader) + nbytes(); }

void SessionState::serialize(uint8_t* out) const {
  BlobHeader h{};
  std::memcpy(h.magic, kMagic, 4);
  h.version = kVersion;
  h.n_past = static_cast<uint32_t>(n_past);
  h.n_attn = static_cast<uint32_t>(k.size());
  h.n_dn = static_cast<uint32_t>(conv.size());
  h.kv_dim = static_cast<uint64_t>(kv_dim);
  h.conv_len = conv.empty() ? 0 : conv[0].size();
  h.ssm_len = ssm.empty() ? 0 : ssm[0].size();
  std::memcpy(out, &h, sizeof h);
  out += sizeof h;
  for (size_t i = 0; i < k.size(); i++) out = put(put(out, k[i]), v[i]);
  for (size_t i = 0; i < conv.size(); i++) out = put(put(out, conv[i]), ssm[i]);
}

SessionState SessionState::deserialize(const Config& cfg, const uint8_t* data, size_t size) {
  if (size < sizeof(BlobHeader)) bad("blob is too short (" + std::to_string(size) + " bytes)");
  BlobHeader h;
  std::memcpy(&h, data, sizeof h);
  if (std::memcmp(h.magic, kMagic, 4) != 0) bad("blob has a wrong magic");
  if (h.version != kVersion)
    bad("blob has format version " + std::to_string(h.version) + ", expected " + std::to_string(kVersion));
  const Shapes sh(cfg);
  if (h.n_attn != sh.n_attn || h.n_dn != sh.n_dn || h.kv_dim != sh.kv_dim || h.conv_len != sh.conv_len ||
      h.ssm_len != sh.ssm_len)
    bad("blob was made for a model of other shapes");
  if (h.n_past > static_cast<uint32_t>(std::numeric_limits<int>::max())) bad("blob has an impossible token count");
  // Expected size in floats; every factor is bounded (n_past < 2^31, shapes from a loaded model),
  // so a 64-bit product cannot overflow.
  const uint64_t floats = 2ull * sh.n_attn * h.n_past * sh.kv_dim + sh.n_dn * (sh.conv_len + sh.ssm_len);
  if (size != sizeof(BlobHeader) + floats * sizeof(float))
    bad("blob has " + std::to_string(size) + " bytes, expected " +
        std::to_string(sizeof(BlobHeader) + floats * sizeof(float)));
  SessionState s;
  s.n_past = static_cast<int>(h.n_past);
  s.kv_dim = static_cast<int64_t>(sh.kv_dim);
  s.k.resize(sh.n_attn);
  s.v.resize(sh.n_attn);
  s.conv.resize(sh.n_dn);
  s.ssm.resize(sh.n_dn);
  const uint8_t* in = data + sizeof h;
  const size_t rows = static_cast<size_t>(s.n_past) * sh.kv_dim;
  for (size_t i = 0; i < sh.n_attn; i++) in = take(take(in, s.k[i], rows), s.v[i], rows);
  for (size_t i = 0; i < sh.n_dn; i++) in = take(take(in, s.conv[i], sh.conv_len), s.ssm[i], sh.ssm_len);
  return s;
}

SessionState Session::snapshot() const {
  const Shapes sh(model_->config());
  SessionState s;
  s.n_past = st_.n_past;
  s.kv_dim = static_cast<int64_t>(sh.kv_dim);
  const size_t rows = static_cast<size_t>(st_.n_past) * sh.kv_dim;
  s.k.resize(sh.n_attn);
  s.v.resize(sh.n_attn);
  for (size_t i = 0; i < sh.n_attn; i++) {
    s.k[i].assign(st_.k_cache[i].begin(), st_.k_cache[i].begin() + rows);
    s.v[i].assign(st_.v_cache[i].begin(), st_.v_cache[i].begin() + rows);
  }
  s.conv = st_.conv;
  s.ssm = st_.ssm;
  return s;
}

void Session::restore(const SessionState& s) {
  const Shapes sh(model_->config());
  check_shapes(s, sh);
  if (s.n_past > st_.n_ctx)
    bad("holds " + std::to_string(s.n_past) + " tokens, more than this session's n_ctx " +
        std::to_string(st_.n_ctx));
  // Grow the caches before copying anything, so an allocation failure leaves the state whole.
  const size_t rows = static_cast<size_t>(s.n_past) * sh.kv_dim;
  for (size_t i = 0; i < sh.n_attn; i++) {
    if (st_.k_cache[i].size() < rows) st_.k_cache[i].resize(rows);
    if (st_.v_cache[i].size() < rows) st_.v_cache[i].resize(rows);
  }
  for (size_t i = 0; i < sh.n_attn; i++) {
    std::copy(s.k[i].begin(), s.k[i].end(), st_.k_cache[i].begin());
    std::copy(s.v[i].begin(), s.v[i].end(), st_.v_cache[i].begin());
  }
  for (size_t i = 0; i < sh.n_dn; i++) {
    std::copy(s.conv[i].begin(), s.conv[i].end(), st_.conv[i].begin());
    std::copy(s.ssm[i].begin(), s.ssm[i].end(), st_.ssm[i].begin());
  }
  st_.n_past = s.n_past;
}

}  // namespace q35
