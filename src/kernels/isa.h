// Which instruction-set extensions the kernels may use. Detected once from the CPU (CPUID + XGETBV
// on x86, getauxval on aarch64) and optionally lowered with DUAN_ISA for testing and benchmarking:
//   DUAN_ISA=scalar|avx2|avx512|avx512vnni|neon|dotprod|i8mm
// The variable can only lower the level, never raise it beyond what the CPU (and OS) supports; an
// unknown or foreign name prints a message on stderr and keeps the detected level.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace duan::kernels {

// Ordered within each architecture: a higher value implies every lower one of the same family.
enum class Isa { Scalar, AVX2, AVX512, AVX512_VNNI, NEON, NEON_DOTPROD, NEON_I8MM };

// What the CPU supports (no env override). Computed on every call; cheap.
Isa detect_isa();
// The level the kernels use: detect_isa() lowered by DUAN_ISA, decided once per process.
Isa active_isa();
// "scalar", "avx2", "avx512", "avx512vnni", "neon", "dotprod", "i8mm".
const char* isa_name(Isa isa);
std::optional<Isa> isa_from_name(std::string_view name);

// True if code built for `want` may run on a CPU whose best level is `have` (same family, not
// higher; Scalar runs everywhere).
bool isa_supports(Isa have, Isa want);

// Resolves a DUAN_ISA value against a detected level. Returns the level to use and, if the request
// was refused (unknown name, other architecture, higher than detected), a message in *warning.
Isa resolve_isa(Isa detected, const char* env_value, std::string* warning);

// AVX512-BF16 (vdpbf16ps) is not implied by any level above (Ice Lake has VNNI without it); SIMD
// code that wants it checks this as well as active_isa() >= AVX512.
bool cpu_has_avx512_bf16();

}  // namespace duan::kernels
