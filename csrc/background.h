// Background level and noise maps: a C++ re-implementation of MaxiMask 1.4.1's
// utils.background_est (per-mesh clipped statistics, grid cleaning, 3x3 median filter,
// bicubic interpolating spline through the mesh centres).
#pragma once
#include <cstdint>
#include <vector>

namespace maximask {

// How an h x w image is cut into meshes. Meshes are whole mesh_h x mesh_w blocks, the
// grid centred on the image (origin ((h % mesh_h) / 2, (w % mesh_w) / 2)). Along an axis
// shorter than the mesh size, a single mesh covers the whole axis.
struct MeshLayout {
    std::int64_t ny, nx;          // meshes per axis (>= 1 for a non-empty image)
    std::int64_t mesh_h, mesh_w;  // mesh size per axis, in pixels
    std::int64_t off_y, off_x;    // pixel origin of mesh (0, 0)
};

MeshLayout mesh_layout(std::int64_t h, std::int64_t w, std::int64_t mesh_size);

// The pixel value the reference estimates from: NaN -> 0, then clipped to [-500, 80000].
inline float sanitize(float v) {
    if (v != v) return 0.0f;
    if (v > 80000.0f) return 80000.0f;
    if (v < -500.0f) return -500.0f;
    return v;
}

// Per-mesh level and sigma (ny * nx each, row-major), with the reference's float32
// arithmetic reproduced bit for bit (numpy's pairwise summation, median of float32).
void mesh_statistics(const float* image, std::int64_t h, std::int64_t w, const MeshLayout& L,
                     float* level, float* sigma);

// Outlier cleaning of a grid of ny * nx nodes, in place (reference clean_grid, float64).
void clean_grid(double* grid, std::int64_t ny, std::int64_t nx);

// Edge-pad by one node and 3x3 median filter with zero padding (np.pad + medfilt):
// writes (ny + 2) * (nx + 2) nodes.
void filter_grid(const double* grid, std::int64_t ny, std::int64_t nx, double* padded);

// Statistics, cleaning and filter of the level and sigma grids: the spline's data,
// (ny + 2) * (nx + 2) nodes each.
void background_nodes(const float* image, std::int64_t h, std::int64_t w, const MeshLayout& L,
                      double* level_nodes, double* sigma_nodes);

// The interpolating spline (degree min(3, nodes - 1) per axis, FITPACK's s=0 knots)
// through the padded nodes, ready to evaluate row by row: the coefficients evaluated
// along x at every column (D, one row of w values per node row), and the y basis.
struct SplineRows {
    std::vector<double> D;
    std::vector<std::int64_t> fy;
    std::vector<double> wy;
    int ky1 = 0;
    std::int64_t w = 0;
};
SplineRows spline_rows(const double* padded, const MeshLayout& L, std::int64_t h,
                       std::int64_t w);
// Row y (w values) of the spline.
void spline_row(const SplineRows& S, std::int64_t y, float* out);

// Statistics, cleaning, filter and spline preparation of the level and sigma maps.
void background_splines(const float* image, std::int64_t h, std::int64_t w,
                        std::int64_t mesh_size, SplineRows* level, SplineRows* sigma);

// All of the above: level and sigma maps (h * w float32 each).
void estimate_background(const float* image, std::int64_t h, std::int64_t w,
                         std::int64_t mesh_size, float* level, float* sigma);

// Background estimation and compression in one pass: out = asinh_compress(image, level,
// sigma) (normalize.h) without level and sigma planes (each row of them is evaluated
// next to its pixels). out (h * w) may be image.
void compress_image(const float* image, std::int64_t h, std::int64_t w,
                    std::int64_t mesh_size, float* out);

}  // namespace maximask
