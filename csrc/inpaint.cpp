#include "inpaint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace maximask {

namespace {

inline bool valid(const float* image, const std::uint8_t* mask, std::int64_t i) {
    return mask[i] == 0 && std::isfinite(image[i]);
}

// The median of v (reordered), the mean of the two middle values when the size is even.
double median_of(std::vector<float>& v) {
    const std::size_t n = v.size(), m = n / 2;
    std::nth_element(v.begin(), v.begin() + m, v.end());
    if (n % 2) return v[m];
    const float lo = *std::max_element(v.begin(), v.begin() + m);
    return 0.5 * (static_cast<double>(lo) + v[m]);
}

// Valid pixels on the ring at Chebyshev distance r of (y, x), clipped to the image.
std::int64_t ring_count(const float* image, const std::uint8_t* mask, std::int64_t h,
                        std::int64_t w, std::int64_t y, std::int64_t x, std::int64_t r) {
    std::int64_t n = 0;
    for (std::int64_t dy = -r; dy <= r; ++dy) {
        const std::int64_t yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        const bool edge = dy == -r || dy == r;
        const std::int64_t step = edge ? 1 : 2 * r;
        for (std::int64_t dx = -r; dx <= r; dx += step) {
            const std::int64_t xx = x + dx;
            if (xx >= 0 && xx < w && valid(image, mask, yy * w + xx)) ++n;
        }
    }
    return n;
}

// The estimate at (y, x) from the valid pixels of the box of radius r.
float estimate(const float* image, const std::uint8_t* mask, std::int64_t h, std::int64_t w,
               std::int64_t y, std::int64_t x, std::int64_t r, InpaintMethod method,
               std::vector<float>& scratch) {
    const std::int64_t ya = std::max<std::int64_t>(y - r, 0), yb = std::min(y + r, h - 1);
    const std::int64_t xa = std::max<std::int64_t>(x - r, 0), xb = std::min(x + r, w - 1);
    double lo = -HUGE_VAL, hi = HUGE_VAL;  // the values kept
    const bool clip = method == InpaintMethod::Clipped || method == InpaintMethod::ClippedPlane;
    const bool plane = method == InpaintMethod::Plane || method == InpaintMethod::ClippedPlane;
    if (method == InpaintMethod::Median || clip) {
        scratch.clear();
        for (std::int64_t yy = ya; yy <= yb; ++yy)
            for (std::int64_t xx = xa; xx <= xb; ++xx)
                if (valid(image, mask, yy * w + xx)) scratch.push_back(image[yy * w + xx]);
        const double med = median_of(scratch);
        if (method == InpaintMethod::Median) return static_cast<float>(med);
        for (float& v : scratch) v = static_cast<float>(std::fabs(v - med));
        const double spread = 3.0 * 1.4826 * median_of(scratch);
        if (spread > 0) {
            lo = med - spread;
            hi = med + spread;
        }
    }
    const double s = 0.5 * static_cast<double>(r);
    const double inv2s2 = 1.0 / (2.0 * s * s);
    // Weighted moments: sum w, w dx, w dy, w dx^2, w dx dy, w dy^2, w v, w dx v, w dy v.
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0, sv = 0, sxv = 0, syv = 0;
    for (std::int64_t yy = ya; yy <= yb; ++yy) {
        const double dy = static_cast<double>(yy - y);
        for (std::int64_t xx = xa; xx <= xb; ++xx) {
            const std::int64_t i = yy * w + xx;
            if (!valid(image, mask, i) || !(image[i] >= lo && image[i] <= hi)) continue;
            const double dx = static_cast<double>(xx - x), d2 = dx * dx + dy * dy;
            const double wt = method == InpaintMethod::Idw ? 1.0 / d2 : std::exp(-d2 * inv2s2);
            const double v = image[i];
            sw += wt;
            sv += wt * v;
            if (plane) {
                sx += wt * dx; sy += wt * dy;
                sxx += wt * dx * dx; sxy += wt * dx * dy; syy += wt * dy * dy;
                sxv += wt * dx * v; syv += wt * dy * v;
            }
        }
    }
    if (plane) {
        // Solve [sw sx sy; sx sxx sxy; sy sxy syy] (a, b, c) = (sv, sxv, syv) for a.
        const double c00 = sxx * syy - sxy * sxy, c01 = sy * sxy - sx * syy,
                     c02 = sx * sxy - sy * sxx;
        const double det = sw * c00 + sx * c01 + sy * c02;
        if (std::fabs(det) > 1e-9 * sw * sw * sw * (1.0 + r * r) * (1.0 + r * r))
            return static_cast<float>((c00 * sv + c01 * sxv + c02 * syv) / det);
        // collinear pixels: the plane is undetermined, the weighted mean is not
    }
    return static_cast<float>(sv / sw);
}

}  // namespace

std::int64_t inpaint(const float* image, const std::uint8_t* mask, std::int64_t h,
                     std::int64_t w, InpaintMethod method, std::int64_t max_radius,
                     std::int64_t min_valid, float* out) {
    std::memcpy(out, image, sizeof(float) * static_cast<std::size_t>(h * w));
    std::int64_t left = 0;
#pragma omp parallel reduction(+ : left)
    {
        std::vector<float> scratch;
#pragma omp for schedule(dynamic, 16)
        for (std::int64_t y = 0; y < h; ++y) {
            const std::uint8_t* mrow = mask + y * w;
            for (std::int64_t x = 0; x < w; ++x) {
                if (!mrow[x]) continue;
                std::int64_t found = 0, r = 0;
                while (r < max_radius && found < min_valid) {
                    ++r;
                    found += ring_count(image, mask, h, w, y, x, r);
                }
                if (found == 0) {
                    ++left;
                    continue;
                }
                out[y * w + x] = estimate(image, mask, h, w, y, x, r, method, scratch);
            }
        }
    }
    return left;
}

}  // namespace maximask
