#include "kernels/isa.h"

#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define DUAN_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define DUAN_ARM64 1
#endif

namespace duan::kernels {
namespace {

bool is_x86_level(Isa i) {
    return i == Isa::AVX2 || i == Isa::AVX512 || i == Isa::AVX512_VNNI;
}
bool is_arm_level(Isa i) {
    return i == Isa::NEON || i == Isa::NEON_DOTPROD || i == Isa::NEON_I8MM;
}

#if DUAN_X86
struct CpuidRegs {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
    CpuidRegs r;
    if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegs{};
    return r;
}

// XCR0: which register states the OS saves on context switch. Without OS support the AVX
// instructions fault even if CPUID lists them.
unsigned long long xgetbv0() {
    unsigned eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
}

bool bit(unsigned v, int b) {
    return (v >> b) & 1u;
}

struct X86Features {
    bool avx2 = false;         // AVX2 + FMA + F16C, OS saves YMM
    bool avx512 = false;       // F + BW + VL + DQ, OS saves ZMM/opmask
    bool avx512_vnni = false;  // avx512 + VNNI
    bool avx512_bf16 = false;  // avx512 + BF16
};

X86Features x86_features() {
    X86Features f;
    const unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf < 7) return f;
    const CpuidRegs l1 = cpuid(1, 0);
    const bool osxsave = bit(l1.ecx, 27);
    if (!osxsave) return f;
    const unsigned long long xcr0 = xgetbv0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
    const bool avx = bit(l1.ecx, 28), fma = bit(l1.ecx, 12), f16c = bit(l1.ecx, 29);
    const CpuidRegs l7 = cpuid(7, 0);
    const CpuidRegs l7s1 = cpuid(7, 1);
    f.avx2 = os_ymm && avx && fma && f16c && bit(l7.ebx, 5);
    f.avx512 = f.avx2 && os_zmm && bit(l7.ebx, 16) /*F*/ && bit(l7.ebx, 17) /*DQ*/ &&
               bit(l7.ebx, 30) /*BW*/ && bit(l7.ebx, 31) /*VL*/;
    f.avx512_vnni = f.avx512 && bit(l7.ecx, 11);
    f.avx512_bf16 = f.avx512 && bit(l7s1.eax, 5);
    return f;
}
#endif

#if DUAN_ARM64
// Bit numbers from the kernel's asm/hwcap.h (spelled out so old headers still build).
constexpr unsigned long kHwcapAsimd = 1ul << 1;
constexpr unsigned long kHwcapAsimdDp = 1ul << 20;
constexpr unsigned long kHwcap2I8mm = 1ul << 13;
#endif

}  // namespace

Isa detect_isa() {
#if DUAN_X86
    const X86Features f = x86_features();
    if (f.avx512_vnni) return Isa::AVX512_VNNI;
    if (f.avx512) return Isa::AVX512;
    if (f.avx2) return Isa::AVX2;
    return Isa::Scalar;
#elif DUAN_ARM64
    const unsigned long hw = getauxval(AT_HWCAP);
    const unsigned long hw2 = getauxval(AT_HWCAP2);
    if (!(hw & kHwcapAsimd)) return Isa::Scalar;
    if (!(hw & kHwcapAsimdDp)) return Isa::NEON;
    if (!(hw2 & kHwcap2I8mm)) return Isa::NEON_DOTPROD;
    return Isa::NEON_I8MM;
#else
    return Isa::Scalar;
#endif
}

bool cpu_has_avx512_bf16() {
#if DUAN_X86
    return x86_features().avx512_bf16;
#else
    return false;
#endif
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar:
            return "scalar";
        case Isa::AVX2:
            return "avx2";
        case Isa::AVX512:
            return "avx512";
        case Isa::AVX512_VNNI:
            return "avx512vnni";
        case Isa::NEON:
            return "neon";
        case Isa::NEON_DOTPROD:
            return "dotprod";
        case Isa::NEON_I8MM:
            return "i8mm";
    }
    return "?";
}

std::optional<Isa> isa_from_name(std::string_view name) {
    for (Isa i : {Isa::Scalar, Isa::AVX2, Isa::AVX512, Isa::AVX512_VNNI, Isa::NEON,
                  Isa::NEON_DOTPROD, Isa::NEON_I8MM})
        if (name == isa_name(i)) return i;
    return std::nullopt;
}

bool isa_supports(Isa have, Isa want) {
    if (want == Isa::Scalar) return true;
    if (is_x86_level(have) && is_x86_level(want)) return want <= have;
    if (is_arm_level(have) && is_arm_level(want)) return want <= have;
    return false;
}

Isa resolve_isa(Isa detected, const char* env_value, std::string* warning) {
    if (!env_value || !*env_value) return detected;
    const auto want = isa_from_name(env_value);
    std::string msg;
    if (!want) {
        msg = std::string("DUAN_ISA=") + env_value +
              ": unknown name (expected scalar, avx2, avx512, avx512vnni, neon, dotprod or i8mm)";
    } else if (!isa_supports(detected, *want)) {
        msg = std::string("DUAN_ISA=") + env_value + ": not supported by this CPU (best is " +
              isa_name(detected) + ")";
    } else {
        return *want;
    }
    if (warning) *warning = msg + "; using " + isa_name(detected);
    return detected;
}

Isa active_isa() {
    static const Isa isa = [] {
        std::string warning;
        const Isa r = resolve_isa(detect_isa(), std::getenv("DUAN_ISA"), &warning);
        if (!warning.empty()) std::fprintf(stderr, "duan: %s\n", warning.c_str());
        return r;
    }();
    return isa;
}

}  // namespace duan::kernels
