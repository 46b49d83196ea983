// The asinhf below follows glibc's arithmetic step by step so that the network sees the
// reference's inputs bit for bit. Its constants and algorithms come from:
//  - fdlibm (asinhf, log1pf): Copyright (C) 1993 by Sun Microsystems, Inc. All rights
//    reserved. Developed at SunPro, a Sun Microsystems, Inc. business. Permission to use,
//    copy, modify, and distribute this software is freely granted, provided that this
//    notice is preserved.
//  - logf: Copyright (c) 2017-2018, Arm Limited (Arm Optimized Routines), MIT licence.
#include "normalize.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

// Parity with glibc needs every float operation rounded on its own (fused multiply-adds
// only where written explicitly); no errno or trap semantics, so that the loops vectorise.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "no-math-errno", "no-trapping-math")
#endif

#if defined(__GNUC__)
#define MM_INLINE inline __attribute__((always_inline))
#else
#define MM_INLINE inline
#endif

namespace maximask {

namespace {

MM_INLINE std::uint32_t as_u32(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
}

MM_INLINE float as_f32(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}

// glibc's logf (since 2.27; Szabolcs Nagy's algorithm from Arm Optimized Routines):
// log(x) = log1p(z / c - 1) + log(c) + k ln2 with x = 2^k z, c from a 16-entry table,
// a degree-4 polynomial in double, rounded once to float. These are its constants.
constexpr double kLogfInvc[16] = {
    0x1.661ec79f8f3bep+0, 0x1.571ed4aaf883dp+0, 0x1.49539f0f010bp+0,  0x1.3c995b0b80385p+0,
    0x1.30d190c8864a5p+0, 0x1.25e227b0b8eap+0,  0x1.1bb4a4a1a343fp+0, 0x1.12358f08ae5bap+0,
    0x1.0953f419900a7p+0, 0x1p+0,               0x1.e608cfd9a47acp-1, 0x1.ca4b31f026aap-1,
    0x1.b2036576afce6p-1, 0x1.9c2d163a1aa2dp-1, 0x1.886e6037841edp-1, 0x1.767dcf5534862p-1,
};
constexpr double kLogfLogc[16] = {
    -0x1.57bf7808caadep-2, -0x1.2bef0a7c06ddbp-2, -0x1.01eae7f513a67p-2, -0x1.b31d8a68224e9p-3,
    -0x1.6574f0ac07758p-3, -0x1.1aa2bc79c81p-3,   -0x1.a4e76ce8c0e5ep-4, -0x1.1973c5a611cccp-4,
    -0x1.252f438e10c1ep-5, 0x0p+0,                0x1.aa5aa5df25984p-5,  0x1.c5e53aa362eb4p-4,
    0x1.526e57720db08p-3,  0x1.bc2860d22477p-3,   0x1.1058bc8a07ee1p-2,  0x1.4043057b6ee09p-2,
};
constexpr double kLogfLn2 = 0x1.62e42fefa39efp-1;
constexpr double kLogfA0 = -0x1.00ea348b88334p-2, kLogfA1 = 0x1.5575b0be00b6ap-2,
                 kLogfA2 = -0x1.ffffef20a4123p-2;

// d = a * b + c, fused or not.
template <bool Fma>
MM_INLINE double madd(double a, double b, double c) {
    if constexpr (Fma) {
        return __builtin_fma(a, b, c);
    } else {
        return a * b + c;
    }
}

// t[i] for i in [0, 16) by a tree of selects: a table look-up that vectorises (GCC does
// not use gathers by default).
MM_INLINE double pick16(const double* t, std::uint32_t i) {
    const bool b0 = i & 1u, b1 = i & 2u, b2 = i & 4u, b3 = i & 8u;
    const double a0 = b0 ? t[1] : t[0], a1 = b0 ? t[3] : t[2], a2 = b0 ? t[5] : t[4],
                 a3 = b0 ? t[7] : t[6], a4 = b0 ? t[9] : t[8], a5 = b0 ? t[11] : t[10],
                 a6 = b0 ? t[13] : t[12], a7 = b0 ? t[15] : t[14];
    const double c0 = b1 ? a1 : a0, c1 = b1 ? a3 : a2, c2 = b1 ? a5 : a4, c3 = b1 ? a7 : a6;
    const double d0 = b2 ? c1 : c0, d1 = b2 ? c3 : c2;
    return b3 ? d1 : d0;
}

// glibc logf for a positive normal finite x (the only arguments asinhf gives it here).
template <bool Fma>
MM_INLINE float logf_glibc(float x) {
    const std::uint32_t ix = as_u32(x);
    const std::uint32_t tmp = ix - 0x3f330000u;
    const std::uint32_t i = (tmp >> 19) & 15u;
    const std::int32_t k = static_cast<std::int32_t>(tmp) >> 23;
    const std::uint32_t iz = ix - (tmp & 0xff800000u);
    const double invc = pick16(kLogfInvc, i), logc = pick16(kLogfLogc, i);
    const double z = static_cast<double>(as_f32(iz));
    const double r = madd<Fma>(z, invc, -1.0);
    const double y0 = madd<Fma>(static_cast<double>(k), kLogfLn2, logc);
    const double r2 = r * r;
    double y = madd<Fma>(kLogfA1, r, kLogfA2);
    y = madd<Fma>(kLogfA0, r2, y);
    y = madd<Fma>(y, r2, y0 + r);
    return static_cast<float>(y);
}

// fdlibm log1pf (glibc's through 2.40) for x >= 2^-29 (asinhf's arguments, >= 2^-14).
MM_INLINE float log1pf_fdlibm(float x) {
    constexpr float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
    constexpr float Lp1 = 6.6666668653e-01f, Lp2 = 4.0000000596e-01f,
                    Lp3 = 2.8571429849e-01f, Lp4 = 2.2222198546e-01f,
                    Lp5 = 1.8183572590e-01f, Lp6 = 1.5313838422e-01f,
                    Lp7 = 1.4798198640e-01f;
    // x < 0.41422: k = 0, f = x; else x + 1 = 2^k (1 + f) with a rounding correction c
    const bool small = as_u32(x) < 0x3ed413d7u;
    const float u = 1.0f + x;
    std::uint32_t hu = as_u32(u);
    std::int32_t k = static_cast<std::int32_t>(hu >> 23) - 127;
    float c = k > 0 ? 1.0f - (u - x) : x - (u - 1.0f);
    c /= u;
    hu &= 0x007fffffu;
    const bool lowm = hu < 0x3504f7u;
    const float un = as_f32(hu | (lowm ? 0x3f800000u : 0x3f000000u));
    k += lowm ? 0 : 1;
    hu = lowm ? hu : (0x00800000u - hu) >> 2;
    float f = un - 1.0f;
    f = small ? x : f;
    k = small ? 0 : k;
    c = small ? 0.0f : c;
    hu = small ? 1u : hu;

    const float hfsq = 0.5f * f * f;
    const float fk = static_cast<float>(k);
    const float s = f / (2.0f + f);
    const float z = s * s;
    const float R = z * (Lp1 + z * (Lp2 + z * (Lp3 + z * (Lp4 + z * (Lp5 + z * (Lp6 + z * Lp7))))));
    // |f| < 2^-20 (hu == 0): a shorter series (f == 0 comes out right in either form)
    const float Rt = hfsq * (1.0f - 0.6666666666666666f * f);
    const float klo = fk * ln2_lo + c;
    const float res0 = hu == 0 ? f - Rt : f - (hfsq - s * (hfsq + R));
    const float res1 = hu == 0 ? fk * ln2_hi - ((Rt - klo) - f)
                               : fk * ln2_hi - ((hfsq - (s * (hfsq + R) + klo)) - f);
    return k == 0 ? res0 : res1;
}

// fdlibm asinhf as in glibc (through 2.40), every branch evaluated and selected.
template <bool Fma>
MM_INLINE float asinhf_glibc(float x) {
    const std::uint32_t ix = as_u32(x) & 0x7fffffffu;
    const float xa = as_f32(ix);
    // 2^-14 <= |x| <= 2: log1p(|x| + x^2 / (1 + sqrt(1 + x^2)))
    const float t = xa * xa;
    const float small = log1pf_fdlibm(xa + t / (1.0f + __builtin_sqrtf(1.0f + t)));
    // 2 < |x| <= 2^15: log(2|x| + 1 / (sqrt(x^2 + 1) + |x|)); above: log(|x|) + ln2
    const bool huge = ix > 0x47000000u;
    const float arg = 2.0f * xa + 1.0f / (__builtin_sqrtf(t + 1.0f) + xa);
    float big = logf_glibc<Fma>(huge ? xa : arg);
    big = huge ? big + 6.9314718246e-01f : big;
    float w = ix > 0x40000000u ? big : small;
    w = ix < 0x38000000u ? xa : w;  // |x| < 2^-14: x
    w = __builtin_copysignf(w, x);
    return ix >= 0x7f800000u ? x + x : w;  // inf, NaN
}

// asinhf_glibc for |x| <= 2 (and NaN-free): the log1p branch alone. Larger |x| give
// garbage (asinhf_glibc recomputes them).
MM_INLINE float asinhf_small(float x) {
    const std::uint32_t ix = as_u32(x) & 0x7fffffffu;
    const float xa = as_f32(ix);
    const float t = xa * xa;
    const float small = log1pf_fdlibm(xa + t / (1.0f + __builtin_sqrtf(1.0f + t)));
    const float w = ix < 0x38000000u ? xa : small;  // |x| < 2^-14: x
    return __builtin_copysignf(w, x);
}

// Whether asinhf_glibc(x) needs more than asinhf_small: |x| > 2, inf, NaN.
MM_INLINE bool asinh_big(float x) { return (as_u32(x) & 0x7fffffffu) > 0x40000000u; }

// The normalised argument of compress_one, 0 where sigma is not usable (asinh(0) = +0,
// the compressed value there).
MM_INLINE float compress_arg(float v, float level, float sigma) {
    const bool ok = sigma > 0.0f && sigma < 3.4e38f;  // false for NaN, inf, <= 0
    v = v != v ? 0.0f : v;
    v = v > 80000.0f ? 80000.0f : v;  // sanitize(), branch-free
    v = v < -500.0f ? -500.0f : v;
    const float x = (v - level) / (ok ? sigma : 1.0f);
    return ok ? x : 0.0f;
}

template <bool Fma>
MM_INLINE float compress_one(float v, float level, float sigma) {
    return asinhf_glibc<Fma>(compress_arg(v, level, sigma));
}

// Indices i in [0, m) of the xs[i] with asinh_big(xs[i]), in order, into idx; returns
// their count.
MM_INLINE std::int32_t big_indices_scalar(const float* xs, std::int64_t m, std::int32_t* idx) {
    std::int32_t nb = 0;
    std::int64_t i = 0;
    for (; i + 8 <= m; i += 8) {
        std::uint32_t any = 0;
        for (int q = 0; q < 8; ++q) any |= asinh_big(xs[i + q]);
        if (!any) continue;
        for (int q = 0; q < 8; ++q) {
            idx[nb] = static_cast<std::int32_t>(i + q);
            nb += asinh_big(xs[i + q]);
        }
    }
    for (; i < m; ++i) {
        idx[nb] = static_cast<std::int32_t>(i);
        nb += asinh_big(xs[i]);
    }
    return nb;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// The same with AVX2 comparisons, 8 lanes a step (called from the AVX2 + FMA variant).
__attribute__((target("avx2"))) std::int32_t big_indices_avx2(const float* xs, std::int64_t m,
                                                               std::int32_t* idx) {
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), two = _mm256_set1_epi32(0x40000000);
    std::int32_t nb = 0;
    std::int64_t i = 0;
    for (; i + 8 <= m; i += 8) {
        const __m256i u = _mm256_and_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + i)), absmask);
        unsigned mk = static_cast<unsigned>(
            _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(u, two))));
        while (mk) {
            idx[nb++] = static_cast<std::int32_t>(i) + __builtin_ctz(mk);
            mk &= mk - 1;
        }
    }
    for (; i < m; ++i) {
        idx[nb] = static_cast<std::int32_t>(i);
        nb += asinh_big(xs[i]);
    }
    return nb;
}
#define MM_BIG_AVX2 1
#endif

// compress_one over a span, in chunks: every pixel through the |x| <= 2 branch of asinhf
// (vectorised), then the few pixels with |x| > 2 (about 5% on sky) gathered, through the
// whole asinhf (vectorised) and scattered back. Same results as compress_one.
template <bool Fma, bool Avx2 = false>
MM_INLINE void compress_span(const float* image, const float* level, const float* sigma,
                             float* out, std::int64_t n) {
    constexpr std::int64_t C = 1024;
    alignas(64) float xs[C];
    alignas(64) float bx[C];
    std::int32_t idx[C];
    for (std::int64_t c0 = 0; c0 < n; c0 += C) {
        const std::int64_t m = n - c0 < C ? n - c0 : C;
        const float *im = image + c0, *lv = level + c0, *sg = sigma + c0;
        float* o = out + c0;
#pragma omp simd
        for (std::int64_t i = 0; i < m; ++i) {
            const float x = compress_arg(im[i], lv[i], sg[i]);
            xs[i] = x;
            o[i] = asinhf_small(x);
        }
        std::int32_t nb;
#ifdef MM_BIG_AVX2
        if constexpr (Avx2) {  // the AVX2 + FMA variant
            nb = big_indices_avx2(xs, m, idx);
        } else {
            nb = big_indices_scalar(xs, m, idx);
        }
#else
        nb = big_indices_scalar(xs, m, idx);
#endif
        if (!nb) continue;
        for (std::int32_t j = 0; j < nb; ++j) bx[j] = xs[idx[j]];
#pragma omp simd
        for (std::int32_t j = 0; j < nb; ++j) bx[j] = asinhf_glibc<Fma>(bx[j]);
        for (std::int32_t j = 0; j < nb; ++j) o[idx[j]] = bx[j];
    }
}

template <bool Fma>
MM_INLINE void asinh_span(const float* x, float* out, std::int64_t n) {
#pragma omp simd
    for (std::int64_t i = 0; i < n; ++i) out[i] = asinhf_glibc<Fma>(x[i]);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MM_X86_DISPATCH 1
__attribute__((target("avx2,fma"))) void compress_span_fma(const float* image,
                                                             const float* level,
                                                             const float* sigma, float* out,
                                                             std::int64_t n) {
    compress_span<true, true>(image, level, sigma, out, n);
}

__attribute__((target("avx2,fma"))) void asinh_span_fma(const float* x, float* out,
                                                          std::int64_t n) {
    asinh_span<true>(x, out, n);
}

// glibc uses its FMA logf where the CPU has AVX2 and FMA: so do we (same results).
bool use_fma() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}
#endif

// Without run-time dispatch: fused where the target has a fast fma (as glibc built for it).
#if defined(FP_FAST_FMA)
constexpr bool kStaticFma = true;
#else
constexpr bool kStaticFma = false;
#endif

}  // namespace

void glibc_asinhf(const float* x, float* out, std::int64_t n) {
#ifdef MM_X86_DISPATCH
    if (use_fma()) {
        asinh_span_fma(x, out, n);
        return;
    }
#endif
    asinh_span<kStaticFma>(x, out, n);
}

float asinh_compress_one(float v, float level, float sigma) {
    float out;
    asinh_compress_row(&v, &level, &sigma, &out, 1);
    return out;
}

void asinh_compress_row(const float* image, const float* level, const float* sigma,
                        float* out, std::int64_t n) {
#ifdef MM_X86_DISPATCH
    if (use_fma()) {
        compress_span_fma(image, level, sigma, out, n);
        return;
    }
#endif
    compress_span<kStaticFma>(image, level, sigma, out, n);
}

void asinh_compress(const float* image, const float* level, const float* sigma, float* out,
                    std::size_t n) {
    const std::int64_t count = static_cast<std::int64_t>(n);
    const std::int64_t chunk = 8192;
#pragma omp parallel for schedule(dynamic, 4)
    for (std::int64_t i = 0; i < count; i += chunk) {
        const std::int64_t m = count - i < chunk ? count - i : chunk;
        asinh_compress_row(image + i, level + i, sigma + i, out + i, m);
    }
}

}  // namespace maximask
