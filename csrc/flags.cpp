#include "flags.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace maximask {

template <class T>
void stitch(const float* batch, std::int64_t n, std::int64_t channels, std::int64_t wh,
            std::int64_t ww, std::int64_t wy, std::int64_t wx, const std::int64_t* origins,
            std::int64_t h, std::int64_t w, const PostProcess& pp, T* out) {
    const std::int64_t plane = wh * ww;
    const std::int64_t image_plane = h * w;
    for (std::int64_t b = 0; b < n; ++b) {
        const std::int64_t oy = origins[2 * b] + wy, ox = origins[2 * b + 1] + wx;
        const std::int64_t y0 = std::max<std::int64_t>(oy, 0), y1 = std::min(oy + wh, h);
        const std::int64_t x0 = std::max<std::int64_t>(ox, 0), x1 = std::min(ox + ww, w);
        if (y1 <= y0 || x1 <= x0) continue;
        const float* tb = batch + b * channels * plane;
        const std::int64_t len = x1 - x0;
#pragma omp parallel for schedule(static)
        for (std::int64_t y = y0; y < y1; ++y) {
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
