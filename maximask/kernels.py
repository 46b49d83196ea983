"""Public wrappers of the C++ kernels (``maximask._kernels``).

Contract: images are 2-D float32 arrays, C-contiguous; other inputs are converted (copied)
to that layout first. Output buffers passed by the caller must already have the stated
dtype, shape and C-contiguous layout (they are checked, never converted). Every kernel
releases the GIL and uses all OpenMP threads.

The path of one image::

    plane = compress_image(image)                          # background + asinh, h x w
    origins = tile_origins(h, w, 400, 100)                 # (N, 2) of (y, x)
    windows = tile_windows(h, w, 400, 100)                 # (N, 4) part each tile keeps
    # for each group of tiles i with the same window:
    batch = extract_tiles(plane, origins[i], 400)          # copies
    probs = network(batch, window)                         # (n, 14, y1 - y0, x1 - x0)
    stitch(probs, origins[i], out, window, mode="flags", ...)
"""
import numpy as np

from . import _kernels
from .classes import ABBREVIATIONS, NCLASSES, TRAINING_PRIORS

BACKGROUND_CLASS = ABBREVIATIONS.index("BG")
STITCH_MODES = ("proba", "binary", "flags", "weight")


def _image(image):
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    return image


def _check_out(out, shape, dtypes, what="out"):
    dtypes = tuple(np.dtype(d) for d in dtypes)
    if (
        not isinstance(out, np.ndarray)
        or out.shape != tuple(shape)
        or out.dtype not in dtypes
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        names = " or ".join(str(d) for d in dtypes)
        raise ValueError(f"{what} must be a writeable C-contiguous {names} array of shape {tuple(shape)}")


def asinh_compress(image, level, sigma, out=None):
    """Normalise by the background and compress: ``asinh((image - level) / sigma)``.

    image, level, sigma: arrays of one shape (any), in ADU for image and level.
    out: optional float32 C-contiguous array of that shape to write into (may be image).
    Returns the float32 compressed array (dimensionless).

    As in the reference preprocessing, image pixels are first sanitised: NaN becomes 0
    and values are clipped to [-500, 80000]. Pixels whose sigma is not a positive finite
    number give 0.

    The asinh is glibc's single-precision ``asinhf`` bit for bit (what the reference's
    graph and numpy's float32 ``arcsinh`` compute), reproduced by a vectorised kernel.
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
    else:
        _check_out(out, image.shape, (np.float32,))
    _kernels.asinh_compress(image, level, sigma, out)
    return out


def compress_image(image, mesh_size=200, out=None):
    """The network's input plane of an image: background estimation and compression.

    image: 2-D array (converted to float32), ADU. out: optional float32 C-contiguous
    (h, w) array to write into (it may be the image itself, if float32 C-contiguous).
    Returns the float32 (h, w) plane ``asinh_compress(image, *estimate_background(image,
    mesh_size))``, equal to it bit for bit, computed without level and sigma planes (each
    row of them is evaluated next to its pixels) and each pixel once: tile it with
    ``extract_tiles(plane, origins)``.
    """
    image = _image(image)
    if out is None:
        out = np.empty_like(image)
    else:
        _check_out(out, image.shape, (np.float32,))
    _kernels.compress_image(image, int(mesh_size), out)
    return out


def _glibc_asinhf(x):
    """glibc's ``asinhf`` of a float32 array, as the compression kernels compute it (tests)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _kernels.glibc_asinhf(x, out)
    return out


# --------------------------------------------------------------------------- background


def mesh_layout(height, width, mesh_size=200):
    """The background mesh grid of an image: ``(ny, nx, mesh_h, mesh_w, off_y, off_x)``.

    Meshes are whole ``mesh_h x mesh_w`` blocks, the grid centred on the image: mesh
    (i, j) covers rows ``off_y + i*mesh_h ...`` and columns ``off_x + j*mesh_w ...``, with
    ``off = (side % mesh) // 2``. Along an axis shorter than ``mesh_size`` a single mesh
    covers the whole axis (the reference has no mesh there and fails).
    """
    return _kernels.mesh_layout(int(height), int(width), int(mesh_size))


def mesh_statistics(image, mesh_size=200):
    """Per-mesh background estimates before cleaning: ``(level, sigma)``, float32 (ny, nx).

    Reproduces the reference (MaxiMask 1.4.1 ``utils.background_est(full=False)`` on the
    sanitised image) bit for bit, float32 arithmetic included: 3-sigma clipping about the
    median until the kept set stops changing; level = clipped mean if the clipped sigma is
    within 20% of the initial one, else ``2.5 median - 1.5 mean``; sigma = clipped std.
    An all-zero mesh gives level 0, sigma 1. NaN pixels count as 0; pixels are clipped
    to [-500, 80000] first.
    """
    return _kernels.mesh_statistics(_image(image), int(mesh_size))


def background_nodes(image, mesh_size=200):
    """The data of the background spline: ``(level, sigma)`` float64 (ny + 2, nx + 2).

    The per-mesh grids after outlier cleaning (up to 5 rounds of 3-sigma rejection about
    the grid median, rejected nodes replaced by the mean of their valid neighbours), edge
    padding by one node and a 3x3 median filter with zero padding (the reference's
    ``scipy.signal.medfilt``; as there, the four corner nodes always come out 0).
    """
    return _kernels.background_nodes(_image(image), int(mesh_size))


def estimate_background(image, mesh_size=200, level=None, sigma=None):
    """Background level and noise maps of an image: ``(level, sigma)``.

    image: 2-D array (converted to float32), ADU. mesh_size: mesh side in pixels.
    level, sigma: optional float32 C-contiguous (h, w) arrays to write into.
    Returns two float32 (h, w) arrays in ADU.

    This is the reference's preprocessing (``utils.background_est``): per-mesh statistics
    (``mesh_statistics``), grid cleaning and median filter (``background_nodes``), then a
    bicubic interpolating spline through the mesh centres (FITPACK's knots for s=0, the
    pad nodes half a mesh outside the mesh grid) evaluated at every pixel. On the
    reference's domain the result agrees with it to float32 rounding.

    NaN pixels are estimated as 0 (after clipping of all pixels to [-500, 80000]), as in
    the reference; level and sigma are smooth finite maps defined at every pixel, NaN
    pixels included. Beyond the reference's domain: an axis shorter than ``mesh_size``
    has one mesh covering it; an axis with a single mesh (2 pad nodes + 1) uses the
    interpolating parabola instead of the cubic spline (the reference needs 2 meshes).
    sigma may be 0 where meshes are constant (the compression then gives 0).
    """
    image = _image(image)
    if level is None:
        level = np.empty_like(image)
    else:
        _check_out(level, image.shape, (np.float32,), "level")
    if sigma is None:
        sigma = np.empty_like(image)
    else:
        _check_out(sigma, image.shape, (np.float32,), "sigma")
    _kernels.estimate_background(image, int(mesh_size), level, sigma)
    return level, sigma


# --------------------------------------------------------------------------- inpainting

#: Estimators of ``inpaint``, in the kernel's order.
INPAINT_METHODS = ("gauss", "idw", "plane", "median", "clipped", "clipped_plane")


def inpaint(image, mask, method="gauss", max_radius=8, min_valid=8, out=None):
    """Replace the masked pixels of an image by an interpolation of the valid ones around.

    image: 2-D array (converted to float32). mask: (h, w), nonzero where a pixel is to be
    replaced. Valid neighbours are unmasked finite pixels. Each masked pixel looks in the
    square box of radius r (side 2r + 1) centred on it, r the smallest radius in
    [1, max_radius] holding at least ``min_valid`` valid pixels (max_radius if none does),
    and takes, of the valid pixels in that box, by ``method``:

    - "gauss": the mean weighted by exp(-d^2 / 2s^2), s = r/2 pixels (d the distance);
    - "idw": the mean weighted by 1/d^2;
    - "plane": the value at the pixel of the plane fitted by least squares with the gauss
      weights (the gauss mean where the pixels are collinear);
    - "median": the median;
    - "clipped": the gauss mean of the pixels within 3 sigma of the median, sigma = 1.4826
      times the median absolute deviation (all of them when it is 0);
    - "clipped_plane": the plane fitted to the pixels "clipped" keeps.

    A masked pixel with no valid pixel within max_radius keeps its value. Unmasked pixels
    are copied bit for bit. out: optional float32 C-contiguous (h, w) array (not image).
    Returns ``(out, left)``: the float32 (h, w) image and the number of masked pixels left
    as they were.
    """
    image = _image(image)
    mask = np.ascontiguousarray(mask)
    if mask.shape != image.shape:
        raise ValueError(f"mask {mask.shape} must have the image's shape {image.shape}")
    mask = mask.view(np.uint8) if mask.dtype == np.bool_ else (mask != 0).astype(np.uint8)
    if method not in INPAINT_METHODS:
        raise ValueError(f"method must be one of {INPAINT_METHODS}, not {method!r}")
    if out is None:
        out = np.empty_like(image)
    else:
        _check_out(out, image.shape, (np.float32,))
        if np.shares_memory(out, image):
            raise ValueError("out must not share memory with image")
    left = _kernels.inpaint(image, mask, INPAINT_METHODS.index(method), int(max_radius),
                            int(min_valid), out)
    return out, int(left)


# --------------------------------------------------------------------------- tiles


def tile_starts(size, tile_size=400, margin=100):
    """Tile origins along one axis of ``size`` pixels (list of int).

    0, s, 2s, ... with stride ``s = tile_size - 2*margin`` while ``origin + tile_size <=
    size``, then a tile flush with the far edge if the last one falls short of it. An axis
    shorter than the tile has the single origin 0: the tile then extends past the image
    and ``extract_tiles`` pads it.
    """
    return _kernels.tile_starts(int(size), int(tile_size), int(margin))


def tile_origins(height, width, tile_size=400, margin=100):
    """All tile origins of an image, int64 (N, 2) of (y, x), row-major (y, then x).

    With tile_size=400 and margin=100 these are the reference's tiles (stride 200 plus a
    row and a column flush with the bottom and right edges), without its duplicates. What
    each tile writes back is given by ``tile_windows``, whose windows do not overlap, so
    the tiles may be stitched in any order.
    """
    ys = tile_starts(height, tile_size, margin)
    xs = tile_starts(width, tile_size, margin)
    out = np.empty((len(ys) * len(xs), 2), dtype=np.int64)
    out[:, 0] = np.repeat(ys, len(xs))
    out[:, 1] = np.tile(xs, len(ys))
    return out


def tile_windows(height, width, tile_size=400, margin=100):
    """The part of itself each tile writes back: int64 (N, 4) of (y0, x0, y1, x1).

    Rows follow ``tile_origins``; coordinates are relative to the tile's origin. Each tile
    keeps its centre ``[margin, tile_size - margin)`` on each axis, extended to the near
    edge of the image for the first tile of an axis and to the far edge for the last; where
    the last tile is flush with the far edge, the one before stops where the flush tile's
    part begins. The windows partition the image (each pixel is written by one tile), and
    the result is the reference's, where later tiles overwrite earlier ones.
    """
    ys = np.asarray(_kernels.tile_spans(int(height), int(tile_size), int(margin)), np.int64).reshape(-1, 2)
    xs = np.asarray(_kernels.tile_spans(int(width), int(tile_size), int(margin)), np.int64).reshape(-1, 2)
    out = np.empty((len(ys) * len(xs), 4), dtype=np.int64)
    out[:, 0::2] = np.repeat(ys, len(xs), axis=0)
    out[:, 1::2] = np.tile(xs, (len(ys), 1))
    return out


def extract_tiles(image, origins, tile_size=400, out=None, level=None, sigma=None, fill=0.0):
    """Copy tiles of an image into a contiguous batch (N, 1, T, T) float32.

    origins: (N, 2) (y, x) integers, as from ``tile_origins`` (any subset, any order).
    Each tile must lie inside the image, except along an axis shorter than the tile, where
    the tile starts at 0 and pixels past the image get ``fill``.
    With ``level`` and ``sigma`` (h, w) the tile holds the normalised, compressed pixels
    ``asinh((image - level) / sigma)`` (see ``asinh_compress``), in one pass: this saves
    a plane of memory but computes each pixel once per tile holding it (about 4 times at
    stride T/2), so ``compress_image`` into a plane then tiling is faster.
    out: optional float32 C-contiguous (N, 1, T, T) array to write into.
    """
    image = _image(image)
    origins = np.ascontiguousarray(origins, dtype=np.int64).reshape(-1, 2)
    shape = (len(origins), 1, int(tile_size), int(tile_size))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        _check_out(out, shape, (np.float32,))
    if (level is None) != (sigma is None):
        raise ValueError("give both level and sigma, or neither")
    if level is not None:
        level = np.ascontiguousarray(level, dtype=np.float32)
        sigma = np.ascontiguousarray(sigma, dtype=np.float32)
        if level.shape != image.shape or sigma.shape != image.shape:
            raise ValueError("level and sigma must have the image's shape")
    _kernels.extract_tiles(image, level, sigma, origins, int(tile_size), float(fill), out)
    return out


# --------------------------------------------------------------------------- stitching


def prior_factors(user_priors, training_priors=TRAINING_PRIORS):
    """Factors F_k = (t_k / (1 - t_k)) * ((1 - u_k) / u_k) of the prior correction, float32.

    The corrected probability is ``p / (p + F (1 - p))``.
    """
    t = np.asarray(training_priors, dtype=np.float64)
    u = np.asarray(user_priors, dtype=np.float64)
    return ((t / (1 - t)) * ((1 - u) / u)).astype(np.float32)


def output_array(mode, shape, nclasses=NCLASSES, dtype=np.int16):
    """A zeroed output array for ``stitch``: (K, h, w) float32 for "proba", (K, h, w) uint8
    for "binary", (h, w) ``dtype`` (int16 or int32) for "flags", (h, w) uint8 for "weight"."""
    h, w = shape
    if mode == "proba":
        return np.zeros((nclasses, h, w), np.float32)
    if mode == "binary":
        return np.zeros((nclasses, h, w), np.uint8)
    if mode == "flags":
        return np.zeros((h, w), dtype)
    if mode == "weight":
        return np.zeros((h, w), np.uint8)
    raise ValueError(f"mode must be one of {STITCH_MODES}, not {mode!r}")


def stitch(batch, origins, out, window=None, mode="proba", classes=None, factors=None,
           thresholds=None, background_class=BACKGROUND_CLASS):
    """Write a network output batch of tile windows into the output.

    batch: (N, C, y1 - y0, x1 - x0) float32 probabilities (C = 14 for MaxiMask), the
    ``window`` (y0, x0, y1, x1) of each tile (default: the whole tile, (0, 0) + the
    batch's plane shape). origins: (N, 2) (y, x) of the tiles. Each tile writes its window
    at its origin + (y0, x0), clipped to the image, in batch order (see ``tile_windows``
    for the windows that rebuild the reference's mosaic).
    classes: indices of the selected classes (default: all C), in output plane order.
    factors: per-class prior factors (length C, see ``prior_factors``) or None for no
    prior correction: ``p' = p / (p + F (1 - p))`` in float32.
    thresholds: per-class thresholds (length C); a class is flagged where ``p' > thr``.
    mode and out:

    - "proba": out (K, h, w) float32, p' of the K selected classes;
    - "binary": out (K, h, w) uint8, 1 where flagged;
    - "flags": out (h, w) int16 or int32, bit k set where class k is flagged (the
      background class is never set);
    - "weight": out (h, w) uint8, 1 where no selected class other than the background is
      flagged, else 0.

    Only the selected planes are read and only the output type is held: a "flags" run
    never holds float planes of the whole image. Returns out.
    """
    if mode not in STITCH_MODES:
        raise ValueError(f"mode must be one of {STITCH_MODES}, not {mode!r}")
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if batch.ndim != 4:
        raise ValueError(f"batch must be (N, C, h, w), got shape {batch.shape}")
    y0, x0 = 0, 0
    if window is not None:
        y0, x0, y1, x1 = (int(v) for v in window)
        if (y1 - y0, x1 - x0) != batch.shape[2:]:
            raise ValueError(f"window {tuple(window)} does not match the batch's "
                             f"{batch.shape[2]}x{batch.shape[3]} planes")
    nch = batch.shape[1]
    origins = np.ascontiguousarray(origins, dtype=np.int64).reshape(-1, 2)
    sel = np.arange(nch) if classes is None else np.asarray(classes, dtype=np.int64).ravel()
    if sel.size and (sel.min() < 0 or sel.max() >= nch):
        raise ValueError(f"class indices must be in [0, {nch})")
    planes = mode in ("proba", "binary")
    if planes:
        if not isinstance(out, np.ndarray) or out.ndim != 3:
            raise ValueError(f"out must be a (K, h, w) array for mode {mode!r}")
        _check_out(out, (len(sel),) + out.shape[1:], (np.float32,) if mode == "proba" else (np.uint8,))
    else:
        if not isinstance(out, np.ndarray) or out.ndim != 2:
            raise ValueError(f"out must be an (h, w) array for mode {mode!r}")
        _check_out(out, out.shape, (np.int16, np.int32) if mode == "flags" else (np.uint8,))
    if mode == "flags" and sel.size and sel[sel != background_class].max(initial=0) >= 8 * out.itemsize - 1:
        raise ValueError(f"class {sel.max()} does not fit a {out.dtype} flag plane")
    if thresholds is None:
        if mode != "proba":
            raise ValueError(f"mode {mode!r} needs thresholds")
        thr = np.zeros(len(sel), np.float32)
    else:
        thr = np.asarray(thresholds, dtype=np.float32).ravel()[sel]
    fac = None if factors is None else np.asarray(factors, dtype=np.float32).ravel()[sel]
    bits = np.where(sel == background_class, 0, np.left_shift(1, sel, dtype=np.int64))
    _kernels.stitch(batch, origins, y0, x0, mode, sel.astype(np.int32), fac, thr,
                    bits.astype(np.int64), out)
    return out


def binned_significance(image, level, sigma, bin=2, mask=None):
    """Significance of bin x bin blocks: the sum of ``(image - level) / sigma`` over the
    block's valid pixels divided by the square root of their number (pure noise: unit
    variance), for the trail stage.

    image, level, sigma: (h, w) arrays (ADU). mask: optional (h, w), nonzero where a pixel
    is left out. Valid pixels have a finite value, a finite sigma > 0 and no mask. Returns
    float32 (ceil(h / bin), ceil(w / bin)); a block with no valid pixel is NaN.
    """
    image = _image(image)
    level = np.ascontiguousarray(level, dtype=np.float32)
    sigma = np.ascontiguousarray(sigma, dtype=np.float32)
    if level.shape != image.shape or sigma.shape != image.shape:
        raise ValueError(f"level {level.shape} and sigma {sigma.shape} must have the image's shape {image.shape}")
    if mask is None:
        mask = np.zeros(0, dtype=np.uint8)
    else:
        mask = np.ascontiguousarray(mask)
        if mask.shape != image.shape:
            raise ValueError(f"mask {mask.shape} must have the image's shape {image.shape}")
        mask = mask.view(np.uint8) if mask.dtype == np.bool_ else (mask != 0).astype(np.uint8)
    bin = int(bin)
    if bin < 1:
        raise ValueError(f"bin must be >= 1, got {bin}")
    out = np.empty((-(-image.shape[0] // bin), -(-image.shape[1] // bin)), dtype=np.float32)
    _kernels.binned_significance(image, level, sigma, mask, bin, out)
    return out


def hough_accumulate(z, threshold, cap, ntheta):
    """Weighted Hough transform (a discrete Radon transform of the thresholded map).

    z: (h, w) significance map. Every pixel (y, x) with z > threshold (NaN never) adds
    ``min(z, cap)`` to ``acc[k, r]``, r = round(x cos t_k + y sin t_k) + rho0, for the
    angles t_k = pi k / ntheta, k < ntheta (the line's normal; x to the right, y down);
    rho0 = ceil(hypot(h, w)), nrho = 2 rho0 + 1 (rows of offsets -rho0..rho0, px).
    Returns float32 (ntheta, nrho).
    """
    z = _image(z)
    ntheta = int(ntheta)
    if ntheta < 1:
        raise ValueError(f"ntheta must be >= 1, got {ntheta}")
    rho0 = int(np.ceil(np.hypot(*z.shape)))
    acc = np.empty((ntheta, 2 * rho0 + 1), dtype=np.float32)
    _kernels.hough_accumulate(z, float(threshold), float(cap), acc)
    return acc
