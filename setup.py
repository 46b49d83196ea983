"""Build the maximask._kernels extension from csrc/ (C++17, OpenMP when the compiler has it)."""
import os

from pybind11.setup_helpers import Pybind11Extension, build_ext, has_flag
from setuptools import setup


class BuildWithOpenMP(build_ext):
    """Add -fopenmp when the compiler accepts it; the kernels fall back to serial loops."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix" and has_flag(self.compiler, "-fopenmp"):
            for ext in self.extensions:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        elif self.compiler.compiler_type == "msvc":
            for ext in self.extensions:
                ext.extra_compile_args.append("/openmp")
        super().build_extensions()


sources = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp"))
man_pages = sorted(os.path.join("man", f) for f in os.listdir("man") if f.endswith(".1"))
headers = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".h"))

setup(
    ext_modules=[
        Pybind11Extension(
            "maximask._kernels",
            sources,
            include_dirs=["csrc"],
            depends=headers,
            cxx_std=17,
            extra_compile_args=["-O3", "-fno-math-errno"],  # no errno: sqrt vectorises
        )
    ],
    cmdclass={"build_ext": BuildWithOpenMP},
    # <prefix>/share/man/man1: where man finds them from a venv's bin/ on the PATH
    data_files=[("share/man/man1", man_pages)],
)
