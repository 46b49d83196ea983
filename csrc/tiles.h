// Cutting an image into overlapping square tiles and choosing what each tile writes back.
#pragma once
#include <cstdint>
#include <vector>

namespace maximask {

// Tile origins along one axis of `dim` pixels, for tiles of `tile` pixels keeping a
// margin of `margin` pixels on each side: 0, s, 2s, ... (s = tile - 2 * margin) while
// origin + tile <= dim, then one tile flush with the far edge when the last one does not
// reach it. An axis shorter than the tile has the single origin 0 (the tile is padded).
std::vector<std::int64_t> tile_starts(std::int64_t dim, std::int64_t tile, std::int64_t margin);

// The part of an axis each tile of tile_starts(dim, tile, margin) writes back, relative to
// its origin: (lo, hi) pairs, one per origin. Tile k keeps [origin + margin, next origin +
// margin), from 0 for the first tile and to dim for the last, so the ranges partition
// [0, dim): each pixel comes from exactly one tile. Where the last tile is flush with the
// far edge it overlaps the one before by more than 2 * margin, and the flush tile's range
// wins, as in the reference (which lets the later tile overwrite).
std::vector<std::int64_t> tile_spans(std::int64_t dim, std::int64_t tile, std::int64_t margin);

// Copy tiles (origins as n (y, x) pairs) of an h x w image into out (n x tile x tile).
// Pixels outside the image get `fill`. With level and sigma (both h x w, or null), the
// tile holds asinh((sanitize(image) - level) / sigma) instead (normalize.h).
void extract_tiles(const float* image, const float* level, const float* sigma, std::int64_t h,
                   std::int64_t w, const std::int64_t* origins, std::int64_t n,
                   std::int64_t tile, float fill, float* out);

}  // namespace maximask
