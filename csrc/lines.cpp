#include "lines.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace maximask {

void binned_significance(const float* image, const float* level, const float* sigma,
                         const std::uint8_t* mask, std::int64_t h, std::int64_t w,
                         std::int64_t bin, float* out) {
    const std::int64_t bh = (h + bin - 1) / bin, bw = (w + bin - 1) / bin;
#pragma omp parallel for schedule(static)
    for (std::int64_t by = 0; by < bh; ++by) {
        std::vector<double> sum(bw, 0.0);
        std::vector<std::int64_t> count(bw, 0);
        const std::int64_t y1 = std::min((by + 1) * bin, h);
        for (std::int64_t y = by * bin; y < y1; ++y) {
            const std::int64_t row = y * w;
            for (std::int64_t x = 0; x < w; ++x) {
                const std::int64_t i = row + x;
                const float v = image[i], s = sigma[i];
                if (!std::isfinite(v) || !(s > 0.0f) || !std::isfinite(s)) continue;
                if (mask && mask[i]) continue;
                sum[x / bin] += static_cast<double>(v - level[i]) / s;
                ++count[x / bin];
            }
        }
        for (std::int64_t bx = 0; bx < bw; ++bx)
            out[by * bw + bx] = count[bx] ? static_cast<float>(sum[bx] / std::sqrt(double(count[bx])))
                                          : NAN;
    }
}

void hough_accumulate(const float* z, std::int64_t h, std::int64_t w, float threshold,
                      float cap, std::int64_t ntheta, std::int64_t nrho, float* acc) {
    std::vector<std::int32_t> ys, xs;
    std::vector<float> weights;
    for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x) {
            const float v = z[y * w + x];
            if (v > threshold) {  // false for NaN
                ys.push_back(static_cast<std::int32_t>(y));
                xs.push_back(static_cast<std::int32_t>(x));
                weights.push_back(std::min(v, cap));
            }
        }
    const double rho0 = 0.5 * static_cast<double>(nrho - 1);
    const double pi = 3.14159265358979323846;
    const std::size_t n = weights.size();
#pragma omp parallel for schedule(dynamic, 8)
    for (std::int64_t k = 0; k < ntheta; ++k) {
        float* row = acc + k * nrho;
        std::fill(row, row + nrho, 0.0f);
        const double t = pi * static_cast<double>(k) / static_cast<double>(ntheta);
        const double c = std::cos(t), s = std::sin(t);
        for (std::size_t i = 0; i < n; ++i) {
            const auto r = static_cast<std::int64_t>(std::floor(xs[i] * c + ys[i] * s + rho0 + 0.5));
            if (r >= 0 && r < nrho) row[r] += weights[i];
        }
    }
}

}  // namespace maximask
