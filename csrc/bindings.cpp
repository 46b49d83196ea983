// The private maximask._kernels module: thin pybind11 wrappers around the C++ kernels.
// Arrays are float32 and C-contiguous (the Python side converts); the GIL is released
// while a kernel runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "normalize.h"

namespace py = pybind11;
using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

void check_same_size(const py::array& a, const py::array& b, const char* what) {
    if (a.size() != b.size()) {
        throw std::invalid_argument(std::string(what) + " must have the image's size");
    }
}

void asinh_compress(const farray& image, const farray& level, const farray& sigma,
                    py::array_t<float, py::array::c_style> out) {
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

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "C++ kernels of maximask (private; use maximask.kernels)";
    m.def("asinh_compress", &asinh_compress, py::arg("image"), py::arg("level"),
          py::arg("sigma"), py::arg("out"),
          "out = asinh((image - level) / sigma), float32, written into out.");
}
