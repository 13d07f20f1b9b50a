// Dispatch: one table of row kernels per type, built once (at first use) for active_isa().
// Every entry starts as the scalar reference; SIMD implementations override entries in
// kernels_for() below as they are added (x86/*, arm/*).
#include "kernels/kernels.h"

#include <array>
#include <string>

#include "core/error.h"
#include "kernels/kernel_table.h"
#include "kernels/x86/x86_kernels.h"
#if defined(__aarch64__)
#include "kernels/arm/neon_kernels.h"
#endif

namespace duan::kernels {

TypeKernels scalar_kernels(DType t) {
    using namespace scalar;
    TypeKernels k;
    auto vdt = [&k](DType a) {
        k.vec_dot_type = a;
        k.has_vec_dot_type = true;
    };
    switch (t) {
        case DType::F32:
            k = {dequantize_f32, quantize_f32, nullptr, vec_dot_f32};
            vdt(DType::F32);
            break;
        case DType::F16:
            k = {dequantize_f16, quantize_f16, nullptr, vec_dot_f16};
            vdt(DType::F16);
            break;
        case DType::BF16:
            k = {dequantize_bf16, quantize_bf16, nullptr, vec_dot_bf16};
            vdt(DType::BF16);
            break;
        case DType::Q4_0:
            k = {dequantize_q4_0, nullptr, quantize_q4_0_w, vec_dot_q4_0_q8_0};
            vdt(DType::Q8_0);
            break;
        case DType::Q4_1:
            k = {dequantize_q4_1, nullptr, quantize_q4_1_w, vec_dot_q4_1_q8_1};
            vdt(DType::Q8_1);
            break;
        case DType::Q5_0:
            k = {dequantize_q5_0, nullptr, quantize_q5_0_w, vec_dot_q5_0_q8_0};
            vdt(DType::Q8_0);
            break;
        case DType::Q5_1:
            k = {dequantize_q5_1, nullptr, quantize_q5_1_w, vec_dot_q5_1_q8_1};
            vdt(DType::Q8_1);
            break;
        case DType::Q8_0:
            k = {dequantize_q8_0, quantize_q8_0, quantize_q8_0_w, vec_dot_q8_0_q8_0};
            vdt(DType::Q8_0);
            k.quantize_act = quantize_q8_0_act;
            break;
        case DType::Q8_1:  // activation-only type: no dot of its own
            k = {dequantize_q8_1, quantize_q8_1, nullptr, nullptr};
            k.quantize_act = quantize_q8_1_act;
            break;
        case DType::Q2_K:
            k = {dequantize_q2_K, nullptr, quantize_q2_K_w, vec_dot_q2_K_q8_K};
            vdt(DType::Q8_K);
            break;
        case DType::Q3_K:
            k = {dequantize_q3_K, nullptr, quantize_q3_K_w, vec_dot_q3_K_q8_K};
            vdt(DType::Q8_K);
            break;
        case DType::Q4_K:
            k = {dequantize_q4_K, nullptr, quantize_q4_K_w, vec_dot_q4_K_q8_K};
            vdt(DType::Q8_K);
            break;
        case DType::Q5_K:
            k = {dequantize_q5_K, nullptr, quantize_q5_K_w, vec_dot_q5_K_q8_K};
            vdt(DType::Q8_K);
            break;
        case DType::Q6_K:
            k = {dequantize_q6_K, nullptr, quantize_q6_K_w, vec_dot_q6_K_q8_K};
            vdt(DType::Q8_K);
            break;
        case DType::Q8_K:  // activation-only type
            k = {dequantize_q8_K, quantize_q8_K, nullptr, nullptr};
            break;
        default:
            break;
    }
    return k;
}

TypeKernels kernels_for(DType t, Isa isa) {
    TypeKernels k = scalar_kernels(t);
    (void)isa;  // SIMD overrides go here, e.g. if (isa_supports(isa, Isa::AVX2)) k.vec_dot = ...
#if defined(__x86_64__)
    // AVX2 for AVX2 and plain AVX-512; the VNNI build (vpdpbusd) where the CPU has it.
    if (isa_supports(isa, Isa::AVX2)) {
        const bool vnni = isa_supports(isa, Isa::AVX512_VNNI);
#define DUAN_PICK(fn) (vnni ? avx512vnni::fn : avx2::fn)
        switch (t) {
            case DType::F32:
                k.vec_dot = DUAN_PICK(vec_dot_f32);
                break;
            case DType::F16:
                k.vec_dot = DUAN_PICK(vec_dot_f16);
                k.quantize = DUAN_PICK(quantize_f16);
                break;
            case DType::BF16:
                k.vec_dot = DUAN_PICK(vec_dot_bf16);
                break;
            case DType::Q4_0:
                k.vec_dot = DUAN_PICK(vec_dot_q4_0_q8_0);
                break;
            case DType::Q4_1:
                k.vec_dot = DUAN_PICK(vec_dot_q4_1_q8_1);
                break;
            case DType::Q5_0:
                k.vec_dot = DUAN_PICK(vec_dot_q5_0_q8_0);
                break;
            case DType::Q5_1:
                k.vec_dot = DUAN_PICK(vec_dot_q5_1_q8_1);
                break;
            case DType::Q8_0:
                k.vec_dot = DUAN_PICK(vec_dot_q8_0_q8_0);
                k.quantize = DUAN_PICK(quantize_q8_0);
                k.quantize_act = DUAN_PICK(quantize_q8_0_act);
                break;
            case DType::Q8_1:
                k.quantize = DUAN_PICK(quantize_q8_1);
                k.quantize_act = DUAN_PICK(quantize_q8_1_act);
                break;
            case DType::Q2_K:
                k.vec_dot = DUAN_PICK(vec_dot_q2_K_q8_K);
                break;
            case DType::Q3_K:
                k.vec_dot = DUAN_PICK(vec_dot_q3_K_q8_K);
                break;
            case DType::Q4_K:
                k.vec_dot = DUAN_PICK(vec_dot_q4_K_q8_K);
                break;
            case DType::Q5_K:
                k.vec_dot = DUAN_PICK(vec_dot_q5_K_q8_K);
                break;
            case DType::Q6_K:
                k.vec_dot = DUAN_PICK(vec_dot_q6_K_q8_K);
                break;
            case DType::Q8_K:
                k.quantize = DUAN_PICK(quantize_q8_K);
                break;
            default:
                break;
        }
#undef DUAN_PICK
    }
#endif
#if defined(__aarch64__)
    // Baseline NEON (vmull_s8) or the dotprod build (vdotq_s32; i8mm CPUs use it too: i8mm only
    // pays off for 2x2 row tiles, arm::i8mm). The activation quantizers are the same for all.
    if (isa_supports(isa, Isa::NEON)) {
        const bool dp = isa_supports(isa, Isa::NEON_DOTPROD);
#define DUAN_PICK_ARM(fn) (dp ? arm::dotprod::fn : arm::neon::fn)
        switch (t) {
            case DType::F32:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_f32);
                break;
            case DType::F16:
                k.vec_dot = dp && arm::cpu_has_fhm() ? arm::dotprod::vec_dot_f16_fhm
                                                     : DUAN_PICK_ARM(vec_dot_f16);
                break;
            case DType::BF16:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_bf16);
                break;
            case DType::Q4_0:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q4_0_q8_0);
                break;
            case DType::Q4_1:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q4_1_q8_1);
                break;
            case DType::Q5_0:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q5_0_q8_0);
                break;
            case DType::Q5_1:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q5_1_q8_1);
                break;
            case DType::Q8_0:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q8_0_q8_0);
                k.quantize = arm::quantize_q8_0;
                break;
            case DType::Q8_1:
                k.quantize = arm::quantize_q8_1;
                break;
            case DType::Q2_K:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q2_K_q8_K);
                break;
            case DType::Q3_K:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q3_K_q8_K);
                break;
            case DType::Q4_K:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q4_K_q8_K);
                break;
            case DType::Q5_K:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q5_K_q8_K);
                break;
            case DType::Q6_K:
                k.vec_dot = DUAN_PICK_ARM(vec_dot_q6_K_q8_K);
                break;
            case DType::Q8_K:
                k.quantize = arm::quantize_q8_K;
                break;
            default:
                break;
        }
#undef DUAN_PICK_ARM
    }
#endif
    return k;
}

namespace {

constexpr size_t kMaxTypeId = 32;  // GGUF type ids duan knows are all below this

struct Table {
    std::array<TypeKernels, kMaxTypeId> by_id{};
    Table() {
        const Isa isa = active_isa();
        for (size_t id = 0; id < kMaxTypeId; ++id)
            by_id[id] = kernels_for(static_cast<DType>(id), isa);
    }
};

// The type's name, also for ids outside the table (error messages only).
std::string type_name(DType t) {
    const auto info = dtype_info(static_cast<uint32_t>(t));
    return info ? info->name : "type id " + std::to_string(static_cast<uint32_t>(t));
}

void check_blocks(DType t, int64_t n, const char* what) {
    const auto info = dtype_info(static_cast<uint32_t>(t));
    if (!info) fail(what, ": unknown type id ", static_cast<uint32_t>(t));
    if (n < 0 || n % info->block_size != 0)
        fail(what, ": ", n, " elements is not a multiple of the ", info->name, " block size ",
             info->block_size);
}

}  // namespace

const TypeKernels& active_kernels(DType t) {
    static const Table table;
    static const TypeKernels none{};
    const auto id = static_cast<size_t>(t);
    return id < kMaxTypeId ? table.by_id[id] : none;
}

DType vec_dot_type(DType weight) {
    const TypeKernels& k = active_kernels(weight);
    if (!k.has_vec_dot_type) fail("vec_dot_type: no dot product for type ", type_name(weight));
    return k.vec_dot_type;
}

bool can_dequantize(DType t) {
    return active_kernels(t).dequantize != nullptr;
}

bool can_quantize(DType t) {
    const TypeKernels& k = active_kernels(t);
    return k.quantize != nullptr || k.quantize_weighted != nullptr;
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    const TypeKernels& k = active_kernels(t);
    if (!k.dequantize) fail("dequantize_row: unsupported type ", type_name(t));
    check_blocks(t, n, "dequantize_row");
    k.dequantize(src, dst, n);
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
    const TypeKernels& k = active_kernels(t);
    check_blocks(t, n, "quantize_row");
    if (k.quantize)
        k.quantize(src, dst, n);
    else if (k.quantize_weighted)
        k.quantize_weighted(src, dst, n, nullptr);
    else
        fail("quantize_row: unsupported type ", type_name(t));
}

void quantize_activation_row(DType t, const float* src, void* dst, int64_t n) {
    const TypeKernels& k = active_kernels(t);
    if (!k.quantize_act) return quantize_row(t, src, dst, n);
    check_blocks(t, n, "quantize_activation_row");
    k.quantize_act(src, dst, n);
}

void quantize_row_weighted(DType t, const float* src, void* dst, int64_t n, const float* imatrix) {
    const TypeKernels& k = active_kernels(t);
    check_blocks(t, n, "quantize_row_weighted");
    if (k.quantize_weighted)
        k.quantize_weighted(src, dst, n, imatrix);
    else if (k.quantize)
        k.quantize(src, dst, n);  // float / activation types: no importance weighting applies
    else
        fail("quantize_row_weighted: unsupported type ", type_name(t));
}

float vec_dot(DType wt, int64_t n, const void* w, const void* act) {
    const TypeKernels& k = active_kernels(wt);
    if (!k.vec_dot) fail("vec_dot: unsupported weight type ", type_name(wt));
    return k.vec_dot(n, w, act);
}

}  // namespace duan::kernels
