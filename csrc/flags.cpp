#include "flags.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace maximask {

namespace {

// Below this many selected values (pixels x classes) a call runs on the calling thread: a
// batch of a few tiles is less work than waking a thread team, and the pipeline
// (maximask.pipeline) stitches from one thread while others read, compress and run the
// network.
constexpr std::int64_t kParallelWork = std::int64_t{1} << 23;

// Whether the clipped rectangles [y0, y1) x [x0, x1) of rect (4 per tile) overlap.
bool any_overlap(const std::vector<std::int64_t>& rect) {
    const std::size_t n = rect.size() / 4;
    for (std::size_t a = 0; a < n; ++a)
        for (std::size_t b = a + 1; b < n; ++b)
            if (rect[4 * a] < rect[4 * b + 1] && rect[4 * b] < rect[4 * a + 1] &&
                rect[4 * a + 2] < rect[4 * b + 3] && rect[4 * b + 2] < rect[4 * a + 3])
                return true;
    return false;
}

}  // namespace

template <class T>
void stitch(const float* batch, std::int64_t n, std::int64_t channels, std::int64_t wh,
            std::int64_t ww, std::int64_t wy, std::int64_t wx, const std::int64_t* origins,
            std::int64_t h, std::int64_t w, const PostProcess& pp, T* out) {
    const std::int64_t plane = wh * ww;
    const std::int64_t image_plane = h * w;
    // each tile's part of the image, clipped: y0, y1, x0, x1 (empty when y1 <= y0)
    std::vector<std::int64_t> rect(4 * n);
    std::vector<std::int64_t> first_row(n + 1, 0);  // rows of tiles before tile b
    for (std::int64_t b = 0; b < n; ++b) {
        const std::int64_t oy = origins[2 * b] + wy, ox = origins[2 * b + 1] + wx;
        std::int64_t y0 = std::max<std::int64_t>(oy, 0), y1 = std::min(oy + wh, h);
        const std::int64_t x0 = std::max<std::int64_t>(ox, 0), x1 = std::min(ox + ww, w);
        if (y1 <= y0 || x1 <= x0) y1 = y0;
        rect[4 * b] = y0, rect[4 * b + 1] = y1, rect[4 * b + 2] = x0, rect[4 * b + 3] = x1;
        first_row[b + 1] = first_row[b] + (y1 - y0);
    }
    const std::int64_t rows = first_row[n];
    // one image row of one tile
    auto row = [&](std::int64_t b, std::int64_t y) {
        const std::int64_t oy = origins[2 * b] + wy, ox = origins[2 * b + 1] + wx;
        const std::int64_t x0 = rect[4 * b + 2], x1 = rect[4 * b + 3];
        const float* tb = batch + b * channels * plane;
        const std::int64_t len = x1 - x0;
        const std::int64_t src_off = (y - oy) * ww + (x0 - ox);
        if (pp.mode == OutputMode::Probability || pp.mode == OutputMode::Binary) {
            for (std::int64_t k = 0; k < pp.nsel; ++k) {
                const float* src = tb + pp.channel[k] * plane + src_off;
                T* dst = out + k * image_plane + y * w + x0;
                const float f = pp.factor ? pp.factor[k] : 0.0f;
                if (pp.mode == OutputMode::Probability) {
                    if (pp.factor)
                        for (std::int64_t i = 0; i < len; ++i)
                            dst[i] = static_cast<T>(src[i] / (src[i] + f * (1.0f - src[i])));
                    else
                        for (std::int64_t i = 0; i < len; ++i) dst[i] = static_cast<T>(src[i]);
                } else {
                    const float thr = pp.threshold[k];
                    if (pp.factor)
                        for (std::int64_t i = 0; i < len; ++i)
                            dst[i] = static_cast<T>(src[i] / (src[i] + f * (1.0f - src[i])) > thr);
                    else
                        for (std::int64_t i = 0; i < len; ++i) dst[i] = static_cast<T>(src[i] > thr);
                }
            }
        } else if constexpr (std::is_integral_v<T>) {
            T* dst = out + y * w + x0;
            const bool weight = pp.mode == OutputMode::Weight;
            std::fill(dst, dst + len, static_cast<T>(0));
            for (std::int64_t k = 0; k < pp.nsel; ++k) {
                if (pp.bit[k] == 0) continue;
                const float* src = tb + pp.channel[k] * plane + src_off;
                const float thr = pp.threshold[k];
                const float f = pp.factor ? pp.factor[k] : 0.0f;
                const T bit = weight ? static_cast<T>(1) : static_cast<T>(pp.bit[k]);
                if (pp.factor)
                    for (std::int64_t i = 0; i < len; ++i)
                        dst[i] |= (src[i] / (src[i] + f * (1.0f - src[i])) > thr) ? bit : T(0);
                else
                    for (std::int64_t i = 0; i < len; ++i) dst[i] |= (src[i] > thr) ? bit : T(0);
            }
            if (weight)
                for (std::int64_t i = 0; i < len; ++i) dst[i] = static_cast<T>(dst[i] == 0);
        }
    };
    std::int64_t work = 0;
    for (std::int64_t b = 0; b < n; ++b)
        work += (rect[4 * b + 1] - rect[4 * b]) * (rect[4 * b + 3] - rect[4 * b + 2]);
    const bool parallel = work * std::max<std::int64_t>(pp.nsel, 1) >= kParallelWork;
    if (!any_overlap(rect)) {
        // disjoint parts (the masker's windows): every row of every tile at once
#pragma omp parallel for schedule(static) if (parallel)
        for (std::int64_t r = 0; r < rows; ++r) {
            const std::int64_t b =
                std::upper_bound(first_row.begin(), first_row.end(), r) - first_row.begin() - 1;
            row(b, rect[4 * b] + (r - first_row[b]));
        }
    } else {
        // overlapping parts: tiles in batch order, later ones written over earlier ones
        for (std::int64_t b = 0; b < n; ++b) {
#pragma omp parallel for schedule(static) if (parallel)
            for (std::int64_t y = rect[4 * b]; y < rect[4 * b + 1]; ++y) row(b, y);
        }
    }
}

#define MAXIMASK_STITCH(T)                                                               \
    template void stitch<T>(const float*, std::int64_t, std::int64_t, std::int64_t,      \
                            std::int64_t, std::int64_t, std::int64_t, const std::int64_t*, \
                            std::int64_t, std::int64_t, const PostProcess&, T*);
MAXIMASK_STITCH(float)
MAXIMASK_STITCH(std::uint8_t)
MAXIMASK_STITCH(std::int16_t)
MAXIMASK_STITCH(std::int32_t)
#undef MAXIMASK_STITCH

}  // namespace maximask
