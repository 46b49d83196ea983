"""Cosmic rays (CR), paper §2.1.3, eq. 1-2.

The paper cuts cosmic-ray hits out of long dark frames D (thick and thin CCDs): the mask is
``D > median(D) + 3 sigma_D`` dilated 3x3, and the masked dark, background-subtracted, is
added as ``k_C (sigma_U / sigma_D) D * M`` with k_C = 1/8. Pass your own dark frames
(`darks`) to do exactly that. The paper's dark library is private, so without darks a
built-in generator makes the dark frame: unit read noise (sigma_D = 1) plus hits, a mix of
1-4 pixel dots (thin, blue-sensitive CCDs) and wandering "worm" tracks of varied length,
width and energy (thick, deep-depletion CCDs); the same 3-sigma + 3x3 rule then gives the
truth. The generator's free choices (rates, energies, shapes) are stated in `dark_frame`; its
dark has no read noise by default (see `dark_noise`). ``cosmic_source="imsim"`` takes the
hits from the shipped catalogue of real ones instead (``cosmic_library``).
"""
import numpy as np

from .. import kernels
from .cosmic_library import library_dark
from .raster import dilate, splat, square_half_widths

K_C = 1.0 / 8.0
COSMIC_SOURCES = ("builtin", "imsim")


def inject_cosmics(image, scene, rng, darks=None, k_c=K_C, cosmic_rate=None, worm_fraction=None,
                   dark_noise=0.0, cosmic_source="builtin"):
    """Add cosmic-ray hits to `image` (float64, in place); returns the CR truth mask.

    darks: optional sequence of 2-D dark frames (ADU); one is drawn and a random window of
    the image's shape is cut from it (it must be at least that large). cosmic_rate: hits per
    million pixels of the built-in generator (default log-uniform in [100, 1000]);
    worm_fraction: the fraction of hits that are worms (default uniform in [0.1, 0.7]).
    dark_noise: read noise of the built-in dark in units of sigma_D. Default 0: only the hits
    pass the 3-sigma rule. With 1, as in a real dark, 0.13% of the pixels pass on noise alone
    and join the truth (1.2% of the image once dilated, as many as the hits), though after
    the 1/8 scaling they are invisible: the network's CR AUC on such samples drops from
    0.97 to 0.85 (benchmarks/simulation_realism.py).
    cosmic_source: without darks, "builtin" (the generator) or "imsim" (real hits of the
    shipped catalogue, ``cosmic_library.library_dark``, at `cosmic_rate`; `dark_noise` adds
    read noise to it as to the built-in dark).
    """
    source = str(cosmic_source).lower()
    if source not in COSMIC_SOURCES:
        raise ValueError(f"cosmic_source: {' or '.join(COSMIC_SOURCES)} expected, got {cosmic_source!r}")
    if darks is not None and len(darks):
        dark, sigma_d = _dark_window(darks[rng.integers(len(darks))], scene.shape, rng)
    elif source == "imsim":
        dark, sigma_d = library_dark(scene.shape, rng, cosmic_rate), 1.0
        if dark_noise:
            dark += dark_noise * rng.normal(size=scene.shape)
    else:
        dark, sigma_d = dark_frame(scene.shape, rng, cosmic_rate, worm_fraction, dark_noise), 1.0
    hits = dark > np.median(dark) + 3.0 * sigma_d
    truth = dilate(hits, square_half_widths(3))
    image[truth] += k_c * scene.sigma / sigma_d * dark[truth]
    return truth


def _dark_window(dark, shape, rng):
    """A background-subtracted window of a user's dark frame and its noise sigma_D."""
    dark = np.asarray(dark, dtype=np.float32)
    h, w = shape
    if dark.ndim != 2 or dark.shape[0] < h or dark.shape[1] < w:
        raise ValueError(f"dark frames must be 2-D and at least {h}x{w}, got {dark.shape}")
    y0 = int(rng.integers(0, dark.shape[0] - h + 1))
    x0 = int(rng.integers(0, dark.shape[1] - w + 1))
    window = np.ascontiguousarray(dark[y0:y0 + h, x0:x0 + w])
    level, sigma = kernels.estimate_background(window)
    return window.astype(np.float64) - level, float(np.median(sigma))


def dark_frame(shape, rng, cosmic_rate=None, worm_fraction=None, noise=1.0):
    """A background-subtracted dark frame with cosmic-ray hits (h, w), in units of sigma_D.

    noise: its Gaussian read noise (1 = sigma_D; 0 for hits alone).
    Hits per million pixels: `cosmic_rate` (default log-uniform in [100, 1000], about 0.1%
    to 1% of the pixels after dilation, the training set's CR fraction being 1%).
    Dots: 1 to 4 adjacent pixels, peak 30 to 3000 sigma_D (log-uniform). Worms: curved
    tracks 4 to 80 px long (log-uniform), of 0.3 to 1.0 px diffusion width, 50 to 1000
    sigma_D per pixel of track (log-uniform) with +-50% fluctuations along it. (A minimum
    ionising particle leaves ~80 e- per micron of silicon: ~1000 e- per 15 um pixel crossed,
    up to ~10^4 e- in one spot on a thick CCD, against a dark noise of a few e-.)
    """
    h, w = shape
    if cosmic_rate is None:
        cosmic_rate = 10 ** rng.uniform(2.0, 3.0)
    if worm_fraction is None:
        worm_fraction = rng.uniform(0.1, 0.7)
    nhits = rng.poisson(cosmic_rate * h * w / 1e6)
    nworms = rng.binomial(nhits, worm_fraction)
    dark = noise * rng.normal(size=shape)
    dark += _dots(shape, rng, nhits - nworms)
    dark += _worms(shape, rng, nworms)
    return dark


def _dots(shape, rng, n):
    """n compact hits of 1-4 pixels: a seed pixel plus up to 3 of its 8 neighbours."""
    h, w = shape
    out = np.zeros(shape)
    if n == 0:
        return out
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    peaks = 10 ** rng.uniform(np.log10(30), np.log10(3000), n)
    sizes = rng.integers(1, 5, n)
    neighbours = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    for y, x, peak, size in zip(ys, xs, peaks, sizes):
        out[y, x] += peak
        for dy, dx in neighbours[rng.choice(8, size - 1, replace=False)]:
            if 0 <= y + dy < h and 0 <= x + dx < w:
                out[y + dy, x + dx] += peak * rng.uniform(0.1, 0.8)
    return out


def _worms(shape, rng, n):
    """n wandering tracks, drawn as dense sub-pixel deposits along a curved path."""
    if n == 0:
        return np.zeros(shape)
    h, w = shape
    ys, xs, vs = [], [], []
    for _ in range(n):
        length = 10 ** rng.uniform(np.log10(4), np.log10(80))
        steps = int(length * 4)
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.04, steps))
        y = rng.uniform(0, h) + np.cumsum(0.25 * np.sin(heading))
        x = rng.uniform(0, w) + np.cumsum(0.25 * np.cos(heading))
        per_pixel = 10 ** rng.uniform(np.log10(50), 3)
        fluctuation = np.exp(np.cumsum(rng.normal(0, 0.1, steps)))
        fluctuation = np.clip(fluctuation / fluctuation.mean(), 0.5, 1.5)
        width = rng.uniform(0.3, 1.0)
        ys.append(y + rng.normal(0, width, steps))
        xs.append(x + rng.normal(0, width, steps))
        vs.append(0.25 * per_pixel * fluctuation)
    return splat(shape, np.concatenate(ys), np.concatenate(xs), np.concatenate(vs))
