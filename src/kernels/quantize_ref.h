// Internal to kernels/: the scale-search helpers shared by the weight quantizers
// (quantize_ref_legacy.cpp, quantize_ref_k.cpp). They reproduce the reference quantizer's float
// arithmetic operation for operation — including evaluation order — because the point is
// byte-identical output: a user quantizing with duan gets the same file as with the reference.
#pragma once
#include <cstdint>

namespace duan::kernels::qref {

// Same threshold as the reference for "this group is all zeros".
inline constexpr float kGroupMaxEps = 1e-15f;

// Symmetric quants L[i] in [0, 2*nmax) (offset by nmax) for x ≈ scale * (L - nmax); searches 18
// scales around nmax/max, minimising the weighted squared error. Weights: qw if given, else by
// rmse_type (1: x^2, 2: 1, 3: |x|, else sqrt|x|). rmse_type 0: plain rounding; negative: one
// least-squares step only. Returns the scale.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);

// Q3_K's symmetric quantizer (weights x^2) with coordinate-descent refinement when do_rmse.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse);

// Asymmetric quants L[i] in [0, nmax] for x ≈ scale * L - the_min (the_min >= 0), searching
// nstep+1 scales (rmin + rdelta*is + nmax)/(max - min) with a least-squares fit of scale and min;
// error is weighted |diff| (use_mad) or diff^2. qkx2 needs weights; qkx3 defaults them to x^2.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad);
float make_qkx3_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad);

// Non-negative quants L[i] in [0, nmax] of non-negative x (sub-block scales or mins), weighted by
// quant_weights; returns the scale.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights);

}  // namespace duan::kernels::qref
