// Where the matrices are read from while the model runs: the file mapping, or a private
// huge-page copy (runtime/weight_memory.h says when and why); the choice is the caller's
// WeightPlacement, Auto falling back to the mapping when a copy cannot be made.
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/model.h"

namespace q35 {

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

}  // namespace q35
