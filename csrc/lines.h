// Straight-line search for the trail stage: a binned significance map and a weighted
// Hough (discrete Radon) accumulator over its brightest pixels.
#pragma once
#include <cstdint>

namespace maximask {

// out (ceil(h / bin) x ceil(w / bin)): for each bin x bin block, the sum of
// (image - level) / sigma over its valid pixels divided by sqrt(their number), so pure
// noise gives unit variance. Valid: finite image, finite sigma > 0, mask == 0 (mask may be
// null). A block with no valid pixel gives NaN.
void binned_significance(const float* image, const float* level, const float* sigma,
                         const std::uint8_t* mask, std::int64_t h, std::int64_t w,
                         std::int64_t bin, float* out);

// acc (ntheta x nrho), zeroed first: every pixel (y, x) of z (h x w) with z > threshold
// (NaN never) adds min(z, cap) to acc[k][r], r = floor(x cos t_k + y sin t_k + rho0 + 0.5),
// t_k = pi k / ntheta, rho0 = (nrho - 1) / 2. Rows are computed in parallel.
void hough_accumulate(const float* z, std::int64_t h, std::int64_t w, float threshold,
                      float cap, std::int64_t ntheta, std::int64_t nrho, float* acc);

}  // namespace maximask
