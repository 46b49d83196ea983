// Inpainting: replace masked pixels by an interpolation from the unmasked pixels around
// them (the CLEANED check-image).
#pragma once
#include <cstdint>

namespace maximask {

// How a masked pixel's value is estimated from the valid pixels of its search box.
enum class InpaintMethod : int {
    Gauss = 0,   // Gaussian-weighted mean, sigma = half the box radius
    Idw = 1,     // inverse-distance-squared weighted mean
    Plane = 2,   // Gaussian-weighted least-squares plane a + b dx + c dy, value a
    Median = 3,  // median
    Clipped = 4,  // Gaussian-weighted mean of the pixels within 3 MAD-sigmas of the median
    ClippedPlane = 5,  // Plane, fitted to the pixels Clipped keeps
};

// image, mask, out: h * w, row-major. A pixel is replaced where mask != 0; valid
// neighbours are unmasked finite pixels. For each masked pixel the search box is the
// (2r+1) x (2r+1) square centred on it, with r the smallest radius in [1, max_radius]
// holding at least min_valid valid pixels, or max_radius when none does. A masked pixel
// with no valid pixel within max_radius keeps its input value. Unmasked pixels are copied
// unchanged. out must not alias image. Returns the number of masked pixels left as they
// were. Uses all OpenMP threads.
std::int64_t inpaint(const float* image, const std::uint8_t* mask, std::int64_t h,
                     std::int64_t w, InpaintMethod method, std::int64_t max_radius,
                     std::int64_t min_valid, float* out);

}  // namespace maximask
