// The private maximask._kernels module: thin pybind11 wrappers around the C++ kernels.
// Arrays are float32 and C-contiguous (the Python side converts and checks shapes); the
// GIL is released while a kernel runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "background.h"
#include "flags.h"
#include "inpaint.h"
#include "lines.h"
#include "normalize.h"
#include "tiles.h"

namespace py = pybind11;
using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using i64array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using i32array = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;
using u8array = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>;
template <class T>
using outarray = py::array_t<T, py::array::c_style>;

namespace {

void check_same_size(const py::array& a, const py::array& b, const char* what) {
    if (a.size() != b.size()) {
        throw std::invalid_argument(std::string(what) + " must have the image's size");
    }
}

void check_2d(const py::array& a, const char* what) {
    if (a.ndim() != 2) throw std::invalid_argument(std::string(what) + " must be 2-D");
}

void asinh_compress(const farray& image, const farray& level, const farray& sigma,
                    outarray<float> out) {
    check_same_size(image, level, "level");
    check_same_size(image, sigma, "sigma");
    check_same_size(image, out, "out");
    const float* im = image.data();
    const float* lv = level.data();
    const float* sg = sigma.data();
    float* o = out.mutable_data();
    const auto n = static_cast<std::size_t>(image.size());
    py::gil_scoped_release release;
    maximask::asinh_compress(im, lv, sg, o, n);
}

void glibc_asinhf(const farray& x, outarray<float> out) {
    check_same_size(x, out, "out");
    const float* xp = x.data();
    float* o = out.mutable_data();
    const auto n = static_cast<std::int64_t>(x.size());
    py::gil_scoped_release release;
    maximask::glibc_asinhf(xp, o, n);
}

void compress_image(const farray& image, std::int64_t mesh_size, outarray<float> out) {
    check_2d(image, "image");
    check_same_size(image, out, "out");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    const float* im = image.data();
    float* o = out.mutable_data();
    py::gil_scoped_release release;
    maximask::compress_image(im, h, w, mesh_size, o);
}

py::tuple mesh_layout(std::int64_t h, std::int64_t w, std::int64_t mesh_size) {
    const auto L = maximask::mesh_layout(h, w, mesh_size);
    return py::make_tuple(L.ny, L.nx, L.mesh_h, L.mesh_w, L.off_y, L.off_x);
}

py::tuple mesh_statistics(const farray& image, std::int64_t mesh_size) {
    check_2d(image, "image");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    const auto L = maximask::mesh_layout(h, w, mesh_size);
    outarray<float> level({L.ny, L.nx}), sigma({L.ny, L.nx});
    const float* im = image.data();
    float* lv = level.mutable_data();
    float* sg = sigma.mutable_data();
    {
        py::gil_scoped_release release;
        maximask::mesh_statistics(im, h, w, L, lv, sg);
    }
    return py::make_tuple(level, sigma);
}

// The spline's data: cleaned, padded and median-filtered grids ((ny+2) x (nx+2) float64).
py::tuple background_nodes(const farray& image, std::int64_t mesh_size) {
    check_2d(image, "image");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    const auto L = maximask::mesh_layout(h, w, mesh_size);
    outarray<double> lnodes({L.ny + 2, L.nx + 2}), snodes({L.ny + 2, L.nx + 2});
    const float* im = image.data();
    double* lo = lnodes.mutable_data();
    double* so = snodes.mutable_data();
    {
        py::gil_scoped_release release;
        maximask::background_nodes(im, h, w, L, lo, so);
    }
    return py::make_tuple(lnodes, snodes);
}

void estimate_background(const farray& image, std::int64_t mesh_size, outarray<float> level,
                         outarray<float> sigma) {
    check_2d(image, "image");
    check_same_size(image, level, "level");
    check_same_size(image, sigma, "sigma");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    const float* im = image.data();
    float* lv = level.mutable_data();
    float* sg = sigma.mutable_data();
    py::gil_scoped_release release;
    maximask::estimate_background(im, h, w, mesh_size, lv, sg);
}

std::vector<std::int64_t> tile_starts(std::int64_t dim, std::int64_t tile, std::int64_t margin) {
    return maximask::tile_starts(dim, tile, margin);
}

std::vector<std::int64_t> tile_spans(std::int64_t dim, std::int64_t tile, std::int64_t margin) {
    return maximask::tile_spans(dim, tile, margin);
}

void check_origins(const i64array& origins, std::int64_t h, std::int64_t w, std::int64_t tile) {
    if (origins.ndim() != 2 || origins.shape(1) != 2)
        throw std::invalid_argument("origins must be an (N, 2) array of (y, x)");
    const std::int64_t* o = origins.data();
    for (py::ssize_t b = 0; b < origins.shape(0); ++b) {
        const std::int64_t oy = o[2 * b], ox = o[2 * b + 1];
        if (oy < 0 || ox < 0 || (oy > 0 && oy + tile > h) || (ox > 0 && ox + tile > w))
            throw std::invalid_argument("tile origin (" + std::to_string(oy) + ", " +
                                        std::to_string(ox) + ") is outside the image");
    }
}

void extract_tiles(const farray& image, const py::object& level_obj,
                   const py::object& sigma_obj, const i64array& origins, std::int64_t tile,
                   float fill, outarray<float> out) {
    check_2d(image, "image");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    check_origins(origins, h, w, tile);
    const std::int64_t n = origins.shape(0);
    if (out.ndim() != 4 || out.shape(0) != n || out.shape(1) != 1 || out.shape(2) != tile ||
        out.shape(3) != tile)
        throw std::invalid_argument("out must have shape (N, 1, tile_size, tile_size)");
    farray level, sigma;
    const float* lv = nullptr;
    const float* sg = nullptr;
    if (!level_obj.is_none()) {
        level = farray::ensure(level_obj);
        sigma = farray::ensure(sigma_obj);
        if (!level || !sigma) throw std::invalid_argument("level and sigma must be float32 arrays");
        check_same_size(image, level, "level");
        check_same_size(image, sigma, "sigma");
        lv = level.data();
        sg = sigma.data();
    }
    const float* im = image.data();
    const std::int64_t* org = origins.data();
    float* o = out.mutable_data();
    py::gil_scoped_release release;
    maximask::extract_tiles(im, lv, sg, h, w, org, n, tile, fill, o);
}

template <class T>
void stitch(const farray& batch, const i64array& origins, std::int64_t y0, std::int64_t x0,
            const std::string& mode, const i32array& channels, const py::object& factors_obj,
            const farray& thresholds, const i64array& bits, outarray<T> out) {
    if (batch.ndim() != 4)
        throw std::invalid_argument("batch must have shape (N, C, h, w)");
    const std::int64_t n = batch.shape(0), nch = batch.shape(1);
    if (origins.ndim() != 2 || origins.shape(0) != n || origins.shape(1) != 2)
        throw std::invalid_argument("origins must be an (N, 2) array, one row per tile");
    maximask::PostProcess pp;
    if (mode == "proba") pp.mode = maximask::OutputMode::Probability;
    else if (mode == "binary") pp.mode = maximask::OutputMode::Binary;
    else if (mode == "flags") pp.mode = maximask::OutputMode::Flags;
    else if (mode == "weight") pp.mode = maximask::OutputMode::Weight;
    else throw std::invalid_argument("unknown mode " + mode);
    const std::int64_t k = channels.size();
    const bool planes = pp.mode == maximask::OutputMode::Probability ||
                        pp.mode == maximask::OutputMode::Binary;
    if ((planes && out.ndim() != 3) || (planes && out.shape(0) != k) || (!planes && out.ndim() != 2))
        throw std::invalid_argument("out has the wrong number of dimensions or planes");
    const std::int64_t h = out.shape(out.ndim() - 2), w = out.shape(out.ndim() - 1);
    if (thresholds.size() != k || bits.size() != k)
        throw std::invalid_argument("thresholds and bits need one value per selected class");
    const std::int32_t* ch = channels.data();
    for (std::int64_t i = 0; i < k; ++i)
        if (ch[i] < 0 || ch[i] >= nch) throw std::invalid_argument("class index out of range");
    farray factors;
    pp.factor = nullptr;
    if (!factors_obj.is_none()) {
        factors = farray::ensure(factors_obj);
        if (!factors || factors.size() != k)
            throw std::invalid_argument("prior factors need one value per selected class");
        pp.factor = factors.data();
    }
    pp.nsel = k;
    pp.channel = ch;
    pp.threshold = thresholds.data();
    pp.bit = bits.data();
    const float* bt = batch.data();
    const std::int64_t* org = origins.data();
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    maximask::stitch<T>(bt, n, nch, batch.shape(2), batch.shape(3), y0, x0, org, h, w, pp, o);
}

std::int64_t inpaint(const farray& image, const u8array& mask, int method,
                     std::int64_t max_radius, std::int64_t min_valid, outarray<float> out) {
    check_2d(image, "image");
    check_same_size(image, mask, "mask");
    check_same_size(image, out, "out");
    if (method < 0 || method > static_cast<int>(maximask::InpaintMethod::ClippedPlane))
        throw std::invalid_argument("unknown inpainting method " + std::to_string(method));
    if (max_radius < 1 || min_valid < 1)
        throw std::invalid_argument("max_radius and min_valid must be >= 1");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    const float* im = image.data();
    const std::uint8_t* mk = mask.data();
    float* o = out.mutable_data();
    py::gil_scoped_release release;
    return maximask::inpaint(im, mk, h, w, static_cast<maximask::InpaintMethod>(method),
                             max_radius, min_valid, o);
}

void binned_significance(const farray& image, const farray& level, const farray& sigma,
                         const u8array& mask, std::int64_t bin, outarray<float> out) {
    check_2d(image, "image");
    check_same_size(image, level, "level");
    check_same_size(image, sigma, "sigma");
    if (mask.size() != 0) check_same_size(image, mask, "mask");
    if (bin < 1) throw std::invalid_argument("bin must be >= 1");
    const std::int64_t h = image.shape(0), w = image.shape(1);
    check_2d(out, "out");
    if (out.shape(0) != (h + bin - 1) / bin || out.shape(1) != (w + bin - 1) / bin)
        throw std::invalid_argument("out must be (ceil(h / bin), ceil(w / bin))");
    const float* im = image.data();
    const float* lv = level.data();
    const float* sg = sigma.data();
    const std::uint8_t* mk = mask.size() ? mask.data() : nullptr;
    float* o = out.mutable_data();
    py::gil_scoped_release release;
    maximask::binned_significance(im, lv, sg, mk, h, w, bin, o);
}

void hough_accumulate(const farray& z, float threshold, float cap, outarray<float> acc) {
    check_2d(z, "z");
    check_2d(acc, "acc");
    const std::int64_t ntheta = acc.shape(0), nrho = acc.shape(1);
    if (ntheta < 1 || nrho < 1) throw std::invalid_argument("acc must not be empty");
    const std::int64_t h = z.shape(0), w = z.shape(1);
    const float* zp = z.data();
    float* a = acc.mutable_data();
    py::gil_scoped_release release;
    maximask::hough_accumulate(zp, h, w, threshold, cap, ntheta, nrho, a);
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "C++ kernels of maximask (private; use maximask.kernels)";
    m.def("asinh_compress", &asinh_compress, py::arg("image"), py::arg("level"),
          py::arg("sigma"), py::arg("out"),
          "out = asinh((clip(nan_to_0(image)) - level) / sigma), float32, written into out.");
    m.def("glibc_asinhf", &glibc_asinhf, py::arg("x"), py::arg("out"),
          "out = asinhf(x) as glibc computes it, float32 (vectorised; for tests).");
    m.def("compress_image", &compress_image, py::arg("image"), py::arg("mesh_size"),
          py::arg("out"), "Background estimation and compression into out (h, w).");
    m.def("mesh_layout", &mesh_layout, py::arg("h"), py::arg("w"), py::arg("mesh_size"),
          "(ny, nx, mesh_h, mesh_w, off_y, off_x) of the background mesh grid.");
    m.def("mesh_statistics", &mesh_statistics, py::arg("image"), py::arg("mesh_size"),
          "Per-mesh (level, sigma) float32 grids before cleaning.");
    m.def("background_nodes", &background_nodes, py::arg("image"), py::arg("mesh_size"),
          "Cleaned, padded, median-filtered (level, sigma) node grids, float64.");
    m.def("estimate_background", &estimate_background, py::arg("image"), py::arg("mesh_size"),
          py::arg("level"), py::arg("sigma"), "Level and sigma maps written into level, sigma.");
    m.def("tile_starts", &tile_starts, py::arg("dim"), py::arg("tile"), py::arg("margin"),
          "Tile origins along one axis.");
    m.def("tile_spans", &tile_spans, py::arg("dim"), py::arg("tile"), py::arg("margin"),
          "(lo, hi) pairs, relative to each origin, of the part of the axis each tile writes.");
    m.def("extract_tiles", &extract_tiles, py::arg("image"), py::arg("level"), py::arg("sigma"),
          py::arg("origins"), py::arg("tile"), py::arg("fill"), py::arg("out"),
          "Copy (or normalise and compress) tiles into out (N, 1, T, T).");
    m.def("inpaint", &inpaint, py::arg("image"), py::arg("mask"), py::arg("method"),
          py::arg("max_radius"), py::arg("min_valid"), py::arg("out").noconvert(),
          "Replace the masked pixels by interpolation into out; returns the number left.");
    m.def("binned_significance", &binned_significance, py::arg("image"), py::arg("level"),
          py::arg("sigma"), py::arg("mask"), py::arg("bin"), py::arg("out").noconvert(),
          "Block sums of (image - level) / sigma over sqrt(valid count) into out.");
    m.def("hough_accumulate", &hough_accumulate, py::arg("z"), py::arg("threshold"),
          py::arg("cap"), py::arg("acc").noconvert(),
          "Weighted Hough accumulator (ntheta, nrho) of the pixels of z above threshold.");
    const char* sd = "Stitch a batch (N, C, h, w) of tile windows at (y0, x0) into out.";
#define MAXIMASK_DEF_STITCH(T)                                                                 \
    m.def("stitch", &stitch<T>, py::arg("batch"), py::arg("origins"), py::arg("y0"),          \
          py::arg("x0"), py::arg("mode"), py::arg("channels"), py::arg("factors"),            \
          py::arg("thresholds"), py::arg("bits"), py::arg("out").noconvert(), sd);
    MAXIMASK_DEF_STITCH(float)
    MAXIMASK_DEF_STITCH(std::uint8_t)
    MAXIMASK_DEF_STITCH(std::int16_t)
    MAXIMASK_DEF_STITCH(std::int32_t)
#undef MAXIMASK_DEF_STITCH
}
