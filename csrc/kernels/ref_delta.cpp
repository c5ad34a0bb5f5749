// Scalar reference of the DeltaNet recurrent step (kernels/kernels.h: delta_step_fn): plain loops in the
// order of the formula, the baseline every SIMD version is tested against.
#include "kernels/kernels.h"

namespace q35 {

void delta_step_ref(float* S, const float* k, const float* q, const float* v, float decay, float beta, int64_t dk,
                    int64_t dv, float* o, float* tmp) {
  float* kS = tmp;
  for (int64_t j = 0; j < dv; j++) kS[j] = o[j] = 0.0f;
  for (int64_t i = 0; i < dk; i++) {  // S^T k and S^T q of the old state, one pass
    const float* Si = S + i * dv;
    for (int64_t j = 0; j < dv; j++) {
      kS[j] += Si[j] * k[i];
      o[j] += Si[j] * q[i];
    }
  }
  float qk = 0.0f;
  for (int64_t i = 0; i < dk; i++) qk += q[i] * k[i];
  for (int64_t j = 0; j < dv; j++) {
    kS[j] = beta * (v[j] - decay * kS[j]);  // delta
    o[j] = decay * o[j] + qk * kS[j];
  }
  for (int64_t i = 0; i < dk; i++) {
    float* Si = S + i * dv;
    for (int64_t j = 0; j < dv; j++) Si[j] = decay * Si[j] + k[i] * kS[j];
  }
}

}  // namespace q35
