// AVX-512 VNNI integer kernels: the templates of avx512_kernels.h with vpdpbusd (u8 x s8, four
// products into int32) and vpdpwssd (int16 pairs into int32, the madd and add in one). Compiled
// with the AVX-512 flags plus -mavx512vnni; fill_kernels_avx512 calls this only when the CPU
// reports VNNI.
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__)
#include "kernels/x86/avx512_kernels.h"

namespace q35 {

namespace {
using namespace x86;

struct OpsVNNI {
  static __m512i dot4(Operands o) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), o.u, o.s); }
  static __m512i dot4_minus(__m512i a, __m512i b, __m512i s) {
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), a, s), _mm512_dpbusd_epi32(_mm512_setzero_si512(), b, s));
  }
  static __m512i madd_acc(__m512i acc, __m512i a, __m512i b) { return _mm512_dpwssd_epi32(acc, a, b); }
};

}  // namespace

void fill_avx512_vnni(KernelSet& ks) { fill_avx512_quant<OpsVNNI>(ks); }

}  // namespace q35
#else
namespace q35 {
void fill_avx512_vnni(KernelSet&) {}
}  // namespace q35
#endif
