#include "tiles.h"

#include <algorithm>
#include <stdexcept>

#include "normalize.h"

namespace maximask {

std::vector<std::int64_t> tile_starts(std::int64_t dim, std::int64_t tile, std::int64_t margin) {
    if (tile < 1 || margin < 0 || 2 * margin >= tile)
        throw std::invalid_argument("need tile_size >= 1 and 0 <= margin < tile_size / 2");
    if (dim < 1) throw std::invalid_argument("the image is empty");
    std::vector<std::int64_t> o;
    if (dim <= tile) {
        o.push_back(0);
        return o;
    }
    const std::int64_t step = tile - 2 * margin;
    for (std::int64_t s = 0; s + tile <= dim; s += step) o.push_back(s);
    if (o.back() + tile < dim) o.push_back(dim - tile);
    return o;
}

void extract_tiles(const float* image, const float* level, const float* sigma, std::int64_t h,
                   std::int64_t w, const std::int64_t* origins, std::int64_t n,
                   std::int64_t tile, float fill, float* out) {
    const bool compress = level != nullptr && sigma != nullptr;
#pragma omp parallel for collapse(2) schedule(static)
    for (std::int64_t b = 0; b < n; ++b) {
        for (std::int64_t r = 0; r < tile; ++r) {
            const std::int64_t oy = origins[2 * b], ox = origins[2 * b + 1];
            float* dst = out + (b * tile + r) * tile;
            const std::int64_t y = oy + r;
            const std::int64_t x0 = std::max<std::int64_t>(0, -ox);
            const std::int64_t x1 = std::max(x0, std::min<std::int64_t>(tile, w - ox));
            if (y < 0 || y >= h) {
                std::fill(dst, dst + tile, fill);
                continue;
            }
            std::fill(dst, dst + x0, fill);
            std::fill(dst + x1, dst + tile, fill);
            const std::int64_t off = y * w + ox;
            if (compress) {
                asinh_compress_row(image + off + x0, level + off + x0, sigma + off + x0,
                                   dst + x0, x1 - x0);
            } else {
                std::copy(image + off + x0, image + off + x1, dst + x0);
            }
        }
    }
}

}  // namespace maximask
