"""Public wrappers of the C++ kernels (``maximask._kernels``).

Contract: images are 2-D float32 arrays, C-contiguous; other inputs are converted (copied)
to that layout first. Every kernel releases the GIL and uses all OpenMP threads.
"""
import numpy as np

from . import _kernels


def asinh_compress(image, level, sigma, out=None):
    """Normalise by the background and compress: ``asinh((image - level) / sigma)``.

    image, level, sigma: arrays of one shape (any), in ADU for image and level.
    out: optional float32 C-contiguous array of that shape to write into (may be image).
    Returns the float32 compressed array (dimensionless). Pixels whose sigma is not a
    positive finite number give 0.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    level = np.ascontiguousarray(level, dtype=np.float32)
    sigma = np.ascontiguousarray(sigma, dtype=np.float32)
    if level.shape != image.shape or sigma.shape != image.shape:
        raise ValueError(
            f"level {level.shape} and sigma {sigma.shape} must have the image's shape {image.shape}"
        )
    if out is None:
        out = np.empty_like(image)
    elif out.shape != image.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array of the image's shape")
    _kernels.asinh_compress(image, level, sigma, out)
    return out
