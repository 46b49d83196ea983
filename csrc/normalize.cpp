#include "normalize.h"

#include <cstdint>

namespace maximask {

void asinh_compress(const float* image, const float* level, const float* sigma, float* out,
                    std::size_t n) {
    const std::int64_t count = static_cast<std::int64_t>(n);
    const std::int64_t chunk = 4096;
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < count; i += chunk) {
        const std::int64_t m = count - i < chunk ? count - i : chunk;
        asinh_compress_row(image + i, level + i, sigma + i, out + i, m);
    }
}

}  // namespace maximask
