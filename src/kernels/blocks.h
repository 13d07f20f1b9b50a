// Packed block layouts of the quantized tensor types, byte for byte as GGUF files store them
// (the ggml layouts). Every struct is trivially copyable with no padding; sizes are checked against
// core/dtype.cpp's table so the two can never drift apart.
//
// Conventions shared by all types:
//  - `d` (and `m`, `dmin`, `s`) are IEEE half floats stored as raw uint16_t bits (core/fp16.h),
//    except block_q8_K whose `d` is a plain float (it never leaves memory).
//  - Legacy types (Q4_0..Q8_1) have 32 elements per block; the nibble layout puts element j in the
//    low nibble of qs[j] and element j+16 in the high nibble.
//  - K-quants have 256 elements per super-block, split into 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K)
//    or 8 sub-blocks of 32 (Q4_K, Q5_K), each with its own quantized scale (and min).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace duan::kernels {

inline constexpr int QK4_0 = 32;
inline constexpr int QK4_1 = 32;
inline constexpr int QK5_0 = 32;
inline constexpr int QK5_1 = 32;
inline constexpr int QK8_0 = 32;
inline constexpr int QK8_1 = 32;
inline constexpr int QK_K = 256;
inline constexpr int K_SCALE_SIZE = 12;

// x = d * (q - 8), q in [0, 15].
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};

// x = d * q + m, q in [0, 15].
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK4_1 / 2];
};

// x = d * (q - 16), q in [0, 31]; bit 4 of element j is bit j of qh (little-endian u32).
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};

// x = d * q + m, q in [0, 31]; high bits as in block_q5_0.
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};

// x = d * q, q in [-127, 127].
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
};

// As block_q8_0 plus s = d * sum(qs) (f16), so Q4_1/Q5_1 dots can add the min term cheaply.
struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK8_1];
};

// 16 sub-blocks of 16: x = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), q in [0, 3].
// qs: 4 elements per byte; byte l of each 32-byte group of 128 elements holds elements
// l, l+32, l+64, l+96 at bit shifts 0, 2, 4, 6.
struct block_q2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d;
    uint16_t dmin;
};

// 16 sub-blocks of 16: x = d * (sc[j] - 32) * (q - 4 * !hbit), q low 2 bits in qs (layout of
// Q2_K), the third bit in hmask (element j: byte j % 32, bit j / 32). The 6-bit scales are packed
// in 12 bytes: low nibbles in bytes 0..7, high 2 bits in bytes 8..11.
struct block_q3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};

// 8 sub-blocks of 32: x = d * sc[j] * q - dmin * m[j], q in [0, 15], 6-bit sc/m packed in 12 bytes
// (see unpack_scale_min_k4 in the scalar kernels). qs: 64-element groups, low nibble = first 32.
struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};

// As block_q4_K with a fifth bit per element in qh (element 64*g + j: byte j, bit 2g; element
// 64*g + 32 + j: byte j, bit 2g+1).
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};

// 16 sub-blocks of 16: x = d * scales[j] * (q - 32), q in [0, 63]: low 4 bits in ql, high 2 in qh.
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};

// Activation type for the K-quant dots: x = d * q, bsums[j] = sum of qs[16j .. 16j+15].
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};

// The sizes must agree with core/dtype.cpp (which format/ uses to validate tensors).
namespace detail {
constexpr size_t table_bytes(DType t) {
    switch (t) {
        case DType::Q4_0:
            return 2 + 16;
        case DType::Q4_1:
            return 2 + 2 + 16;
        case DType::Q5_0:
            return 2 + 4 + 16;
        case DType::Q5_1:
            return 2 + 2 + 4 + 16;
        case DType::Q8_0:
            return 2 + 32;
        case DType::Q8_1:
            return 4 + 32;
        case DType::Q2_K:
            return 256 / 16 + 256 / 4 + 2 + 2;
        case DType::Q3_K:
            return 256 / 8 + 256 / 4 + 12 + 2;
        case DType::Q4_K:
            return 2 + 2 + 12 + 256 / 2;
        case DType::Q5_K:
            return 2 + 2 + 12 + 256 / 8 + 256 / 2;
        case DType::Q6_K:
            return 256 / 2 + 256 / 4 + 256 / 16 + 2;
        case DType::Q8_K:
            return 4 + 256 + 256 / 16 * 2;
        default:
            return 0;
    }
}
}  // namespace detail

static_assert(sizeof(block_q4_0) == detail::table_bytes(DType::Q4_0));
static_assert(sizeof(block_q4_1) == detail::table_bytes(DType::Q4_1));
static_assert(sizeof(block_q5_0) == detail::table_bytes(DType::Q5_0));
static_assert(sizeof(block_q5_1) == detail::table_bytes(DType::Q5_1));
static_assert(sizeof(block_q8_0) == detail::table_bytes(DType::Q8_0));
static_assert(sizeof(block_q8_1) == detail::table_bytes(DType::Q8_1));
static_assert(sizeof(block_q2_K) == detail::table_bytes(DType::Q2_K));
static_assert(sizeof(block_q3_K) == detail::table_bytes(DType::Q3_K));
static_assert(sizeof(block_q4_K) == detail::table_bytes(DType::Q4_K));
static_assert(sizeof(block_q5_K) == detail::table_bytes(DType::Q5_K));
static_assert(sizeof(block_q6_K) == detail::table_bytes(DType::Q6_K));
static_assert(sizeof(block_q8_K) == detail::table_bytes(DType::Q8_K));

}  // namespace duan::kernels
