// Snapshots of a session's state (for checkpoints and session files) and their flat encoding.
// A snapshot copies only the KV rows in use: a checkpoint of a 100-token prefix costs 100 rows
// whatever n_ctx is. KV rows are kept in immutable chunks, so checkpoints of one conversation
// share the chunks of their common prefix (a chunk is shared only when its bytes are equal, so
// sharing never depends on the caller's bookkeeping). The recurrent parts (conv window,
// DeltaNet state) are small and fixed-size: always copied.
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "model/session.h"

namespace q35 {

namespace {

constexpr char kMagic[4] = {'Q', '3', '5', 'T'};
// Version 2: KV rows in the cache's type (F16 for quantized models), named in the header.
constexpr uint32_t kVersion = 2;

// The blob's header; the data follow: per attention layer its K rows [first_row, n_past), then
// its V rows (values of kv_value_bytes each); then per DeltaNet layer its conv window and its
// recurrent state (floats). Fields are
// fixed-width so the layout does not depend on the ABI.
struct BlobHeader {
  char magic[4];
  uint32_t version;
  uint32_t n_past;
  uint32_t n_attn;
  uint32_t n_dn;
  uint32_t first_row;  // KV rows [0, first_row) are not in the blob but in a base state
  uint32_t kv_dim;     // values per KV row
  uint32_t kv_value_bytes;  // 4: F32, 2: F16
  uint64_t conv_len;  // floats of one conv window
  uint64_t ssm_len;   // floats of one recurrent state
};
static_assert(sizeof(BlobHeader) == 48, "BlobHeader must have no padding");

// The shapes a state of this model must have.
struct Shapes {
  size_t n_attn, n_dn, kv_dim, conv_len, ssm_len, vb;
  explicit Shapes(const Config& c)
      : n_attn(static_cast<size_t>(c.n_attn_layers())),
        n_dn(static_cast<size_t>(c.n_layer - c.n_attn_layers())),
        kv_dim(static_cast<size_t>(c.n_head_kv) * c.head_dim),
        conv_len(static_cast<size_t>(c.ssm_conv_kernel - 1) * c.conv_dim()),
        ssm_len(static_cast<size_t>(c.ssm_dt_rank) * c.ssm_d_state * c.ssm_d_state),
        vb(static_cast<size_t>(c.kv_value_bytes)) {}
};

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("session state " + what); }

constexpr int R = KvChunk::kRows;

size_t n_chunks(int n_past) { return static_cast<size_t>((n_past + R - 1) / R); }
// Only whole chunks can be left out of a blob: a base's partial last chunk holds fewer rows.
size_t full_chunks(int n_past) { return static_cast<size_t>(n_past / R); }

// KV rows of every attention layer, as bytes: K rows of layer l start at k[l], V rows at v[l],
// row j kv_bytes further. Bytes, not floats: a blob inside a file need not be float-aligned.
struct RowSource {
  std::vector<const uint8_t*> k, v;
  size_t kv_bytes = 0;
};

bool chunk_equals(const KvChunk& ch, const RowSource& src, size_t pos0) {
  const size_t n = static_cast<size_t>(ch.rows) * src.kv_bytes;
  const auto* d = reinterpret_cast<const uint8_t*>(ch.data.data());
  for (size_t l = 0; l < src.k.size(); l++) {
    if (std::memcmp(d + (2 * l) * n, src.k[l] + pos0 * src.kv_bytes, n) != 0) return false;
    if (std::memcmp(d + (2 * l + 1) * n, src.v[l] + pos0 * src.kv_bytes, n) != 0) return false;
  }
  return true;
}

// The chunks of positions [0, n_past). The first `from_base` come from base as they are; src
// holds the rows from there on (its row 0 is position from_base * R). Later chunks of base
// holding the same bytes are shared too.
std::vector<std::shared_ptr<const KvChunk>> make_chunks(const RowSource& src, int n_past, const SessionState* base,
                                                        size_t from_base = 0) {
  std::vector<std::shared_ptr<const KvChunk>> out(n_chunks(n_past));
  for (size_t c = 0; c < from_base; c++) out[c] = base->kv[c];
  const size_t first_row = from_base * R;
  for (size_t c = from_base; c < out.size(); c++) {
    const size_t pos0 = c * R;
    const size_t at = pos0 - first_row;  // row in src
    const int rows = std::min(R, n_past - static_cast<int>(pos0));
    if (base && c < base->kv.size() && base->kv[c]->rows == rows && chunk_equals(*base->kv[c], src, at)) {
      out[c] = base->kv[c];
      continue;
    }
    auto ch = std::make_shared<KvChunk>();
    ch->rows = rows;
    const size_t n = static_cast<size_t>(rows) * src.kv_bytes;
    ch->data.resize(src.k.size() * 2 * n);
    uint8_t* d = ch->data.data();
    for (size_t l = 0; l < src.k.size(); l++) {
      std::memcpy(d + (2 * l) * n, src.k[l] + at * src.kv_bytes, n);
      std::memcpy(d + (2 * l + 1) * n, src.v[l] + at * src.kv_bytes, n);
    }
    out[c] = std::move(ch);
  }
  return out;
}

// Checks every part of s against the model's shapes; nothing is modified.
void check_shapes(const SessionState& s, const Shapes& sh) {
  if (s.n_past < 0) bad("has a negative token count");
  if (static_cast<size_t>(s.n_attn) != sh.n_attn || s.conv.size() != sh.n_dn || s.ssm.size() != sh.n_dn)
    bad("has " + std::to_string(s.n_attn) + " attention / " + std::to_string(s.conv.size()) +
        " DeltaNet layers; the model has " + std::to_string(sh.n_attn) + " / " + std::to_string(sh.n_dn));
  if (static_cast<size_t>(s.kv_dim) != sh.kv_dim) bad("KV rows are not as wide as the model's");
  if (static_cast<size_t>(s.kv_value_bytes) != sh.vb) bad("KV rows are not of the model's KV cache type");
  if (s.kv.size() != n_chunks(s.n_past)) bad("KV chunks do not cover its tokens");
  for (size_t c = 0; c < s.kv.size(); c++) {
    const int rows = std::min(R, s.n_past - static_cast<int>(c * R));
    if (!s.kv[c] || s.kv[c]->rows != rows || s.kv[c]->data.size() != sh.n_attn * 2 * rows * sh.kv_dim * sh.vb)
      bad("KV chunks do not match the model's shapes");
  }
  for (size_t i = 0; i < sh.n_dn; i++)
    if (s.conv[i].size() != sh.conv_len || s.ssm[i].size() != sh.ssm_len)
      bad("recurrent state does not match the model's shapes");
}

uint8_t* put(uint8_t* out, const float* p, size_t n) {
  if (n) std::memcpy(out, p, n * sizeof(float));
  return out + n * sizeof(float);
}

const uint8_t* take(const uint8_t* in, std::vector<float>& v, size_t n) {
  v.resize(n);
  if (n) std::memcpy(v.data(), in, n * sizeof(float));
  return in + n * sizeof(float);
}

}  // namespace

size_t SessionState::nbytes() const {
  size_t n = 0;
  for (const auto& ch : kv) n += ch->data.size();
  for (const auto* group : {&conv, &ssm})
    for (const auto& x : *group) n += x.size() * sizeof(float);
  return n;
}

size_t SessionState::nbytes_distinct(const std::vector<const SessionState*>& states) {
  std::unordered_set<const KvChunk*> seen;
  size_t n = 0;
  for (const SessionState* s : states) {
    for (const auto& ch : s->kv)
      if (seen.insert(ch.get()).second) n += ch->data.size();
    for (const auto* group : {&s->conv, &s->ssm})
      for (const auto& x : *group) n += x.size() * sizeof(float);
  }
  return n;
}

size_t SessionState::shared_prefix_chunks(const SessionState& a, const SessionState& b) {
  size_t k = 0;
  while (k < a.kv.size() && k < b.kv.size() && a.kv[k] == b.kv[k]) k++;
  return k;
}

size_t SessionState::serialized_size(size_t first_chunk) const {
  first_chunk = std::min(first_chunk, full_chunks(n_past));
  size_t n = sizeof(BlobHeader);
  for (size_t c = first_chunk; c < kv.size(); c++) n += kv[c]->data.size();
  for (const auto* group : {&conv, &ssm})
    for (const auto& x : *group) n += x.size() * sizeof(float);
  return n;
}

void SessionState::serialize(uint8_t* out, size_t first_chunk) const {
  first_chunk = std::min(first_chunk, full_chunks(n_past));
  BlobHeader h{};
  std::memcpy(h.magic, kMagic, 4);
  h.version = kVersion;
  h.n_past = static_cast<uint32_t>(n_past);
  h.first_row = static_cast<uint32_t>(first_chunk * R);
  h.n_attn = static_cast<uint32_t>(n_attn);
  h.n_dn = static_cast<uint32_t>(conv.size());
  h.kv_dim = static_cast<uint32_t>(kv_dim);
  h.kv_value_bytes = static_cast<uint32_t>(kv_value_bytes);
  h.conv_len = conv.empty() ? 0 : conv[0].size();
  h.ssm_len = ssm.empty() ? 0 : ssm[0].size();
  std::memcpy(out, &h, sizeof h);
  out += sizeof h;
  // Per layer all K rows, then all V rows: the blob does not depend on the chunk size.
  for (int l = 0; l < n_attn; l++)
    for (int kvi = 0; kvi < 2; kvi++)
      for (size_t c = first_chunk; c < kv.size(); c++) {
        const size_t n = static_cast<size_t>(kv[c]->rows) * kv_dim * kv_value_bytes;  // bytes
        std::memcpy(out, kv[c]->data.data() + (2 * l + kvi) * n, n);
        out += n;
      }
  for (size_t i = 0; i < conv.size(); i++) {
    out = put(out, conv[i].data(), conv[i].size());
    out = put(out, ssm[i].data(), ssm[i].size());
  }
}

SessionState SessionState::deserialize(const Config& cfg, const uint8_t* data, size_t size, const SessionState* base) {
  if (size < sizeof(BlobHeader)) bad("blob is too short (" + std::to_string(size) + " bytes)");
  BlobHeader h;
  std::memcpy(&h, data, sizeof h);
  if (std::memcmp(h.magic, kMagic, 4) != 0) bad("blob has a wrong magic");
  if (h.version != kVersion)
    bad("blob has format version " + std::to_string(h.version) + ", expected " + std::to_string(kVersion));
  const Shapes sh(cfg);
  if (h.n_attn != sh.n_attn || h.n_dn != sh.n_dn || h.kv_dim != sh.kv_dim || h.kv_value_bytes != sh.vb ||
      h.conv_len != sh.conv_len || h.ssm_len != sh.ssm_len)
    bad("blob was made for a model of other shapes");
  if (h.n_past > static_cast<uint32_t>(std::numeric_limits<int>::max())) bad("blob has an impossible token count");
  if (h.first_row > h.n_past || h.first_row % R != 0) bad("blob has an impossible first row");
  const size_t from_base = h.first_row / R;
  const bool base_fits = base && base->n_attn == static_cast<int>(sh.n_attn) &&
                         base->kv_dim == static_cast<int64_t>(sh.kv_dim) &&
                         base->kv_value_bytes == static_cast<int>(sh.vb);
  if (from_base > 0) {
    // The left-out rows must be whole chunks of a state of this model.
    bool ok = base_fits && base->kv.size() >= from_base;
    for (size_t c = 0; ok && c < from_base; c++) ok = base->kv[c]->rows == R;
    if (!ok) bad("blob needs a base state holding its first " + std::to_string(h.first_row) + " positions");
  }
  // Expected size; every factor is bounded (n_past < 2^31, shapes from a loaded model),
  // so a 64-bit product cannot overflow.
  const uint64_t rows = h.n_past - h.first_row;
  const uint64_t bytes =
      2ull * sh.n_attn * rows * sh.kv_dim * sh.vb + sh.n_dn * (sh.conv_len + sh.ssm_len) * sizeof(float);
  if (size != sizeof(BlobHeader) + bytes)
    bad("blob has " + std::to_string(size) + " bytes, expected " + std::to_string(sizeof(BlobHeader) + bytes));
  SessionState s;
  s.n_past = static_cast<int>(h.n_past);
  s.n_attn = static_cast<int>(sh.n_attn);
  s.kv_dim = static_cast<int64_t>(sh.kv_dim);
  s.kv_value_bytes = static_cast<int>(sh.vb);
  const uint8_t* in = data + sizeof h;
  RowSource src;
  src.kv_bytes = sh.kv_dim * sh.vb;
  const size_t layer_bytes = rows * src.kv_bytes;
  for (size_t l = 0; l < sh.n_attn; l++) {
    src.k.push_back(in + (2 * l) * layer_bytes);
    src.v.push_back(in + (2 * l + 1) * layer_bytes);
  }
  s.kv = make_chunks(src, s.n_past, base_fits ? base : nullptr, from_base);
  in += 2 * sh.n_attn * layer_bytes;
  s.conv.resize(sh.n_dn);
  s.ssm.resize(sh.n_dn);
  for (size_t i = 0; i < sh.n_dn; i++) in = take(take(in, s.conv[i], sh.conv_len), s.ssm[i], sh.ssm_len);
  return s;
}

SessionState Session::snapshot(const SessionState* base) const {
  const Shapes sh(model_->config());
  SessionState s;
  s.n_past = st_.n_past;
  s.n_attn = static_cast<int>(sh.n_attn);
  s.kv_dim = static_cast<int64_t>(sh.kv_dim);
  s.kv_value_bytes = static_cast<int>(sh.vb);
  RowSource src;
  src.kv_bytes = sh.kv_dim * sh.vb;
  for (size_t l = 0; l < sh.n_attn; l++) {
    src.k.push_back(reinterpret_cast<const uint8_t*>(st_.k_cache[l].data()));
    src.v.push_back(reinterpret_cast<const uint8_t*>(st_.v_cache[l].data()));
  }
  const bool base_fits =
      base && base->n_attn == s.n_attn && base->kv_dim == s.kv_dim && base->kv_value_bytes == s.kv_value_bytes;
  s.kv = make_chunks(src, s.n_past, base_fits ? base : nullptr);
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
  const size_t rows = static_cast<size_t>(s.n_past) * sh.kv_dim * sh.vb;  // bytes
  for (size_t i = 0; i < sh.n_attn; i++) {
    if (st_.k_cache[i].size() < rows) st_.k_cache[i].resize(rows);
    if (st_.v_cache[i].size() < rows) st_.v_cache[i].resize(rows);
  }
  for (size_t c = 0; c < s.kv.size(); c++) {
    const KvChunk& ch = *s.kv[c];
    const size_t n = static_cast<size_t>(ch.rows) * sh.kv_dim * sh.vb;  // bytes
    const size_t at = c * R * sh.kv_dim * sh.vb;
    for (size_t l = 0; l < sh.n_attn; l++) {
      std::memcpy(st_.k_cache[l].data() + at, ch.data.data() + (2 * l) * n, n);
      std::memcpy(st_.v_cache[l].data() + at, ch.data.data() + (2 * l + 1) * n, n);
    }
  }
  for (size_t i = 0; i < sh.n_dn; i++) {
    std::copy(s.conv[i].begin(), s.conv[i].end(), st_.conv[i].begin());
    std::copy(s.ssm[i].begin(), s.ssm[i].end(), st_.ssm[i].begin());
  }
  st_.n_past = s.n_past;
}

}  // namespace q35
