// Background normalisation and asinh compression of image pixels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "background.h"

// Builtins where available (branch-free; the loops are not yet vectorised by GCC:
// a known TODO).
#if defined(__GNUC__)
#define MM_SQRTF __builtin_sqrtf
#define MM_FABSF __builtin_fabsf
#define MM_COPYSIGNF __builtin_copysignf
#else
#define MM_SQRTF std::sqrt
#define MM_FABSF std::fabs
#define MM_COPYSIGNF std::copysign
#endif

namespace maximask {

// One pixel: asinh((sanitize(v) - level) / sigma), as the reference's image_norm followed
// by the network's first op. sanitize() maps NaN to 0 and clips to [-500, 80000]. A
// non-positive or non-finite sigma gives 0 (the pixel carries no information).
// log(1 + u) for u >= 0, branch-free so that loops over it vectorise (Cephes logf
// polynomial on the mantissa, with the rounding error of 1 + u compensated); relative
// error about 2e-7.
inline float log1p_pos(float u) {
    const float w = 1.0f + u;
    const float corr = (u - (w - 1.0f)) / w;  // log(1+u) = log(w) + corr, to first order
    std::uint32_t bits;
    __builtin_memcpy(&bits, &w, 4);
    std::int32_t e = static_cast<std::int32_t>((bits >> 23) & 0xff) - 127;
    bits = (bits & 0x007fffffu) | 0x3f800000u;  // mantissa in [1, 2)
    float m;
    __builtin_memcpy(&m, &bits, 4);
    const bool big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e += big ? 1 : 0;
    const float x = m - 1.0f;
    const float z = x * x;
    float y = 7.0376836292e-2f;
    y = y * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z;
    const float fe = static_cast<float>(e);
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return (x + y) + 0.693359375f * fe + corr;
}

// asinh(x) = sign(x) log(1 + |x| + x^2 / (1 + sqrt(1 + x^2))), vectorisable.
inline float fast_asinh(float x) {
    const float a = MM_FABSF(x);
    const float a2 = a * a;
    // for |x| > 1e18 x^2 overflows: asinh(x) ~ log(2|x|) there, via log1p(2|x|)
    const float u = a < 1e18f ? a + a2 / (1.0f + MM_SQRTF(1.0f + a2)) : 2.0f * a;
    return MM_COPYSIGNF(log1p_pos(u), x);
}

inline float asinh_compress_one(float v, float level, float sigma) {
    const bool ok = sigma > 0.0f && sigma < 3.4e38f;  // false for NaN, inf, <= 0
    v = v != v ? 0.0f : v;
    v = v > 80000.0f ? 80000.0f : v;  // sanitize(), branch-free
    v = v < -500.0f ? -500.0f : v;
    const float x = (v - level) / (ok ? sigma : 1.0f);
    return ok ? std::asinh(x) : 0.0f;  // glibc asinhf: what the reference graph computes
}

inline void asinh_compress_row(const float* image, const float* level, const float* sigma,
                               float* out, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = asinh_compress_one(image[i], level[i], sigma[i]);
}

// out[i] = asinh_compress_one(image[i], level[i], sigma[i]) for i in [0, n).
// All arrays are float32, contiguous, of n elements; out may alias image.
void asinh_compress(const float* image, const float* level, const float* sigma, float* out,
                    std::size_t n);

}  // namespace maximask
