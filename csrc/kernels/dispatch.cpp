// The run-time choice of kernels: the scalar entries of the traits table (quant/traits.cpp) as
// a kernel set, each supported ISA's set layered on the one below it, the active set picked once
// (the best the CPU supports, capped by QWEN35CPU_ISA), and the traits table handed out with the
// active set's kernels.
#include <cstdlib>
#include <string>

#include "kernels/kernels.h"

namespace q35 {

namespace {

const char* const kIsaNames[ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

// Scalar entries of the table as a kernel set, then each supported ISA layered on the one below.
struct Kernels {
  KernelSet set[ISA_COUNT];
  bool ok[ISA_COUNT] = {};
  Isa active = ISA_SCALAR;
  Kernels() {
    for (int t = 0; t < int{T_COUNT}; t++) {
      if (const TypeTraits* tt = ref_type_traits(t)) {
        set[ISA_SCALAR].vec_dot[t] = tt->vec_dot;
        set[ISA_SCALAR].quantize_act[t] = tt->quantize_act;
      }
    }
    set[ISA_SCALAR].delta_step = delta_step_ref;
    ok[ISA_SCALAR] = true;
    auto layer = [&](Isa isa, Isa base, bool (*fill)(KernelSet&)) {
      if (!ok[base]) return;
      KernelSet ks;
      if (!fill(ks)) return;
      set[isa] = set[base];
      for (int t = 0; t < int{T_COUNT}; t++) {
        if (ks.vec_dot[t]) set[isa].vec_dot[t] = ks.vec_dot[t];
        if (ks.quantize_act[t]) set[isa].quantize_act[t] = ks.quantize_act[t];
        // A four-row kernel only beside its own set's vec_dot: it must give the same bits.
        if (ks.vec_dot[t]) set[isa].vec_dot4[t] = ks.vec_dot4[t];
      }
      if (ks.delta_step) set[isa].delta_step = ks.delta_step;
      ok[isa] = true;
    };
    layer(ISA_AVX2, ISA_SCALAR, fill_kernels_avx2);
    layer(ISA_AVX512, ISA_AVX2, fill_kernels_avx512);
    layer(ISA_NEON, ISA_SCALAR, fill_kernels_neon);

    const char* cap = std::getenv("QWEN35CPU_ISA");
    int limit = ISA_COUNT - 1;
    if (cap && *cap) {
      limit = -1;
      for (int i = 0; i < ISA_COUNT; i++)
        if (std::string(cap) == kIsaNames[i]) limit = i;
      // An unknown name must not silently pick a path: fall back to the reference.
      if (limit < 0) limit = ISA_SCALAR;
    }
    for (int i = ISA_COUNT - 1; i >= 0; i--) {
      // NEON and the x86 sets never coexist, so "highest supported id under the cap" is the best.
      if (i <= limit && ok[i]) {
        active = static_cast<Isa>(i);
        break;
      }
    }
  }
};

const Kernels& all_kernels() {
  static const Kernels k;
  return k;
}

// The table handed out: scalar traits with the active ISA's kernels.
struct ActiveTable {
  TypeTraits t[T_COUNT];
  ActiveTable() {
    const Kernels& k = all_kernels();
    const KernelSet& ks = k.set[k.active];
    for (int i = 0; i < int{T_COUNT}; i++) {
      if (const TypeTraits* rt = ref_type_traits(i)) t[i] = *rt;
      if (t[i].vec_dot) t[i].vec_dot = ks.vec_dot[i];
      if (t[i].vec_dot) t[i].vec_dot4 = ks.vec_dot4[i];
      if (t[i].quantize_act) t[i].quantize_act = ks.quantize_act[i];
    }
  }
};

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  if (type >= T_COUNT) return nullptr;
  static const ActiveTable active;
  const TypeTraits& t = active.t[type];
  return t.name ? &t : nullptr;
}

const char* isa_name(Isa isa) { return isa >= 0 && isa < ISA_COUNT ? kIsaNames[isa] : "?"; }

bool isa_supported(Isa isa) { return isa >= 0 && isa < ISA_COUNT && all_kernels().ok[isa]; }

const KernelSet* kernels(Isa isa) { return isa_supported(isa) ? &all_kernels().set[isa] : nullptr; }

Isa active_isa() { return all_kernels().active; }

const KernelSet& active_kernels() { return all_kernels().set[all_kernels().active]; }

}  // namespace q35
