#include "tiles.h"

#include <algorithm>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

std::vector<std::int64_t> tile_spans(std::int64_t dim, std::int64_t tile, std::int64_t margin) {
    const std::vector<std::int64_t> o = tile_starts(dim, tile, margin);
    std::vector<std::int64_t> spans;
    for (std::size_t k = 0; k < o.size(); ++k) {
        const std::int64_t lo = k == 0 ? 0 : o[k] + margin;
        const std::int64_t hi = k + 1 < o.size() ? o[k + 1] + margin : dim;
        spans.push_back(lo - o[k]);
        spans.push_back(hi - o[k]);
    }
    return spans;
}

namespace {

#if defined(__SSE2__)
// dst[0, n) = src[0, n) with non-temporal stores (no read of the destination lines): for
// batches much larger than the caches, written once and read later.
void copy_stream(const float* src, float* dst, std::int64_t n) {
    std::int64_t i = 0;
    while (i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 15u)) {
        dst[i] = src[i];
        ++i;
    }
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; ++i) dst[i] = src[i];
}
#define MM_STREAM 1
#endif

}  // namespace

void extract_tiles(const float* image, const float* level, const float* sigma, std::int64_t h,
                   std::int64_t w, const std::int64_t* origins, std::int64_t n,
                   std::int64_t tile, float fill, float* out) {
    const bool compress = level != nullptr && sigma != nullptr;
    // a batch of more than 64 MiB (beyond any cache): copied with non-temporal stores
    const bool stream = !compress && n * tile * tile > (std::int64_t{16} << 20);
    (void)stream;
    // a batch of a few tiles is copied on the calling thread (see stitch's kParallelWork)
    const bool parallel = compress || n * tile * tile >= (std::int64_t{1} << 23);
#pragma omp parallel if (parallel)
    {
#pragma omp for collapse(2) schedule(dynamic, 64)
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
#ifdef MM_STREAM
                if (stream) {
                    copy_stream(image + off + x0, dst + x0, x1 - x0);
                    continue;
                }
#endif
                std::copy(image + off + x0, image + off + x1, dst + x0);
            }
        }
    }
#ifdef MM_STREAM
    if (stream) _mm_sfence();  // this thread's streamed stores, before the barrier
#endif
    }
}

}  // namespace maximask
