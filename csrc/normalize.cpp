#include "normalize.h"

#include <cmath>
#include <cstdint>

namespace maximask {

void asinh_compress(const float* image, const float* level, const float* sigma, float* out,
                    std::size_t n) {
    const std::int64_t count = static_cast<std::int64_t>(n);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < count; ++i) {
        const float s = sigma[i];
        const float x = (s > 0.0f && std::isfinite(s)) ? (image[i] - level[i]) / s : 0.0f;
        out[i] = std::asinh(x);
    }
}

}  // namespace maximask
