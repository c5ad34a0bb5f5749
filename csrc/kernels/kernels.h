// kernels/: the compute kernels, one set per instruction set, chosen at run time. What lives
// here: the KernelSet interface and the choice of the active set (dispatch.cpp), the sets per ISA
// family (x86/: AVX2, AVX-512 BW and VNNI; arm/: NEON dotprod), each file compiled with its own
// flags, the templates they share (delta_step.h: the DeltaNet step; rows.h: multi-row helpers),
// the DeltaNet step's scalar reference (ref_delta.cpp) and the F16 row conversions of the KV
// cache (f16_rows.h).
// Depends on: quant/ (types, block layouts, grids, the reference kernels that fill any entry a
// set lacks) and runtime/cpu.h (what the CPU supports). Knows nothing of files or the model.
//
// The scalar kernels of quant/ are the reference. Each SIMD file fills in the entries it
// accelerates; entries it leaves null fall back to the scalar ones. type_traits() hands out the
// traits table with the kernels of the active ISA: the best one the CPU supports, capped by the
// environment variable QWEN35CPU_ISA (scalar|avx2|avx512|neon), read once at start-up. Tests and
// benchmarks reach every supported set through kernels(isa).
#pragma once

#include "quant/quant.h"

namespace q35 {

enum Isa : int { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_NEON = 3, ISA_COUNT = 4 };

// One token of the gated delta rule for one value head (spec: Gated DeltaNet, recurrent form).
// S: the head's state [dk, dv], row i for key dimension i; k, q: [dk] (q already scaled by
// dk^-1/2); v: [dv]; decay = exp(g). With the old state S:
//   delta = beta (v - decay S^T k),  o = decay S^T q + (q . k) delta,  S <- decay S + k delta^T
// (o is the new state's S^T q, expanded, so the state is read in one pass for S^T k and S^T q
// and then once more, from cache, to be written). o: [dv] out; tmp: [dv] scratch.
using delta_step_fn = void (*)(float* S, const float* k, const float* q, const float* v, float decay, float beta,
                               int64_t dk, int64_t dv, float* o, float* tmp);

struct KernelSet {
  vec_dot_fn vec_dot[T_COUNT] = {};           // by weight type: dot against its vec_dot_type
  vec_dot4_fn vec_dot4[T_COUNT] = {};         // the same against four activation rows (optional)
  from_float_fn quantize_act[T_COUNT] = {};   // by activation type (Q8_0, Q8_K): quantize a row
  delta_step_fn delta_step = nullptr;         // the DeltaNet recurrence, one head, one token
};

// The scalar reference of KernelSet::delta_step (ref_delta.cpp).
void delta_step_ref(float* S, const float* k, const float* q, const float* v, float decay, float beta, int64_t dk,
                    int64_t dv, float* o, float* tmp);

// Each ISA's file defines its fill function; it returns false (and fills nothing) when the file
// was not compiled for this architecture. A set builds on the one below it: AVX-512 on AVX2.
bool fill_kernels_avx2(KernelSet& ks);
bool fill_kernels_avx512(KernelSet& ks);
bool fill_kernels_neon(KernelSet& ks);

const char* isa_name(Isa isa);
// Compiled in and supported by this CPU (and OS).
bool isa_supported(Isa isa);
// The complete kernel set of a supported ISA (scalar entries where it has none of its own);
// nullptr for an unsupported one.
const KernelSet* kernels(Isa isa);
// Traits of a ggml type id (quant/'s table) with the kernels of the active ISA; nullptr for ids
// ggml does not define.
const TypeTraits* type_traits(uint32_t type);
// The ISA whose kernels type_traits() hands out, and its complete kernel set.
Isa active_isa();
const KernelSet& active_kernels();

}  // namespace q35
