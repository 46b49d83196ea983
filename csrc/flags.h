// Stitching network outputs back into image planes, fused with the post-processing:
// prior correction, thresholding and bit packing, for the selected classes only.
#pragma once
#include <cstdint>

namespace maximask {

enum class OutputMode {
    Probability,  // out: (K, h, w) float32, probabilities (prior-corrected if factors)
    Binary,       // out: (K, h, w) uint8, 1 where p' > threshold
    Flags,        // out: (h, w) int16 or int32, sum of bits[k] where p'_k > threshold_k
    Weight,       // out: (h, w) uint8, 1 where no selected class with a bit is flagged
};

struct PostProcess {
    OutputMode mode;
    std::int64_t nsel;            // K selected classes
    const std::int32_t* channel;  // K channel indices into the network output
    const float* factor;          // K prior factors F (p' = p / (p + F (1 - p))), or null
    const float* threshold;       // K thresholds (Binary, Flags, Weight)
    const std::int64_t* bit;      // K bit values; 0: never flagged (Flags, Weight)
};

// batch: n x channels x wh x ww float32, the window [y0, y0 + wh) x [x0, x0 + ww) of
// each tile (tile coordinates); origins: n (y, x) pairs. Each tile writes its window at
// origin + (y0, x0) into `out` (h x w, clipped to it), in batch order where windows
// overlap (those of tile_windows do not). T is the output element type.
template <class T>
void stitch(const float* batch, std::int64_t n, std::int64_t channels, std::int64_t wh,
            std::int64_t ww, std::int64_t y0, std::int64_t x0, const std::int64_t* origins,
            std::int64_t h, std::int64_t w, const PostProcess& pp, T* out);

}  // namespace maximask
