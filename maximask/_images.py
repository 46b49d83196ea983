"""Checks of the pixel arrays given to the Python API (Masker.run, Tracker.score).

The commands read FITS files through maximask.fitsio, which says what is wrong with a file
in one line; these are the same checks for arrays, raised as TypeError / ValueError in the
API's own terms.
"""
import numpy as np

from .errors import InputError
from .fitsio import check_data


def pixel_array(image, what="image"):
    """`image` as a float32-convertible 2-D image (h, w) or 3-D cube (planes, h, w) of pixels.

    Raises TypeError for a path, a non-numeric or complex array, and ValueError for another
    number of dimensions, an empty axis, or pixels that are all zero or all NaN/infinite
    (nothing to mask or score); returns the array (not copied).
    """
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise TypeError(f"{what} must be a pixel array, not a path ({image!r}): use the *_file "
                        "methods for FITS files")
    array = np.asarray(image)
    if array.dtype.kind == "c":
        raise TypeError(f"{what} is complex ({array.dtype}): give the real pixel values")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers, not {array.dtype}")
    if array.ndim not in (2, 3) or min(array.shape) < 1:
        raise ValueError(f"{what} must be a 2-D image (h, w) or a 3-D cube (planes, h, w), "
                         f"got shape {array.shape}")
    try:
        check_data(array, what)
    except InputError as exc:
        raise ValueError(f"{what}: {exc.problem}: nothing to process") from None
    return array
