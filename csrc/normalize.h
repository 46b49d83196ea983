// Background normalisation and asinh compression of image pixels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "background.h"

namespace maximask {

// One pixel: asinh((sanitize(v) - level) / sigma), as the reference's image_norm followed
// by the network's first op. sanitize() maps NaN to 0 and clips to [-500, 80000]. A
// non-positive or non-finite sigma gives 0 (the pixel carries no information).
//
// asinh is glibc's single-precision asinhf, which the reference's graph calls (and
// numpy's float32 arcsinh): not the correctly rounded value (it differs from it on about
// 15% of inputs, by up to 2 ulp), so it is reproduced operation for operation: the
// fdlibm asinhf / log1pf float arithmetic and glibc's table-driven logf (evaluated in
// double, with fused multiply-adds where glibc's FMA variant has them, which glibc selects
// on CPUs with AVX2 and FMA), branch-free so that the loops vectorise. See normalize.cpp.
// out[i] = asinhf(x[i]) for i in [0, n) (out may alias x).
void glibc_asinhf(const float* x, float* out, std::int64_t n);

// One pixel as above, scalar (reference for tests; the row kernels are vectorised).
float asinh_compress_one(float v, float level, float sigma);

// out[i] = asinh_compress_one(image[i], level[i], sigma[i]) for i in [0, n), vectorised,
// on the calling thread. Any of the arrays may alias out.
void asinh_compress_row(const float* image, const float* level, const float* sigma,
                        float* out, std::int64_t n);

// The same over n elements with all OpenMP threads.
void asinh_compress(const float* image, const float* level, const float* sigma, float* out,
                    std::size_t n);

}  // namespace maximask
