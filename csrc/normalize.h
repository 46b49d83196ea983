// Background normalisation and asinh compression of image pixels.
#pragma once
#include <cstddef>

namespace maximask {

// out[i] = asinh((image[i] - level[i]) / sigma[i]) for i in [0, n).
// All arrays are float32, contiguous, of n elements; out may alias image.
// A non-positive or non-finite sigma gives 0 (the pixel carries no information).
void asinh_compress(const float* image, const float* level, const float* sigma, float* out,
                    std::size_t n);

}  // namespace maximask
