"""Satellite and meteor trails (TRL), paper §2.1.6, eq. 7-8.

As in the paper, a trail is a row of close star images of one magnitude along a straight
path, each star's position jittered by a Gaussian of 1 px standard deviation (atmospheric
turbulence); a second population has "flares" (brightness bumps along the path); meteors
are defocused: their star images are convolved with the pupil (an annulus with a 30%
central obstruction) of apparent diameter theta = (180 / pi) 3600 D / d arcsec (eq. 7),
D uniform in [2, 8] m, d in [80 000, 120 000] m, seen at `pixel_scale` arcsec/px.

The paper draws each trail with SkyMaker, thresholds it "at a small threshold above the
background", dilates that 7x7 for the truth, and adds ``k_T (sigma_U / sigma_T) T`` with
k_T = 6. We render T without noise in units of the noise sigma_T SkyMaker would add, with a
ridge peak log-uniform in [1, 10] sigma_T (our choice: 6 to 60 sigma_U once scaled; with
[0.5, 5] the published network's TRL AUC fell to 0.90, faint trails going unseen, while
brighter ones reach the paper's 0.996); the truth threshold is 0.1 sigma_T. Populations: satellites 50%, flaring satellites 25%,
meteors 25%; one trail per image (two with probability 1/4).

``trail_style="real"`` draws the trails of ``real_trails`` instead (issue 21: knots,
glints, tumbling, flares, segments ending inside the sample, defocused low orbits,
aircraft, faint trails), with the same scaling and truth rule; "paper" (the default of
``inject``) is the recipe above.
"""
import numpy as np

from . import real_trails
from .raster import annular_pupil, dilate, fft_convolve, splat, square_half_widths

K_T = 6.0
TRAIL_STYLES = ("paper", "real")
TRUTH_THRESHOLD = 0.1  # in units of sigma_T


def _path(shape, rng):
    """A straight line across the image: start (y, x), unit direction and length, px."""
    h, w = shape
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0, np.pi)
    dy, dx = np.sin(angle), np.cos(angle)
    reach = 2 * np.hypot(h, w)
    return y - reach / 2 * dy, x - reach / 2 * dx, dy, dx, reach


def trail_image(scene, rng, pixel_scale=0.2, population=None):
    """A noise-free trail image T in sigma_T units (h, w) and its population name."""
    if population is None:
        population = rng.choice(["satellite", "satellite", "flare", "meteor"])
    y0, x0, dy, dx, length = _path(scene.shape, rng)
    spacing = 0.5
    t = np.arange(0.0, length, spacing)
    ys = y0 + t * dy + rng.normal(0, 1.0, t.size)
    xs = x0 + t * dx + rng.normal(0, 1.0, t.size)
    brightness = np.ones(t.size)
    if population == "flare":
        for _ in range(int(rng.integers(1, 4))):
            centre, width = rng.uniform(0, length), rng.uniform(5, 60)
            brightness += rng.uniform(2, 10) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    kernel = scene.psf()
    if population == "meteor":
        theta = 180 / np.pi * 3600 * rng.uniform(2, 8) / rng.uniform(80e3, 120e3)
        kernel = fft_convolve(np.pad(annular_pupil(theta / pixel_scale), kernel.shape[0] // 2), kernel)
        kernel /= kernel.sum()
    line = splat(scene.shape, ys, xs, brightness * spacing)
    trail = np.maximum(fft_convolve(line, kernel), 0.0)
    peak = 10 ** rng.uniform(0.0, 1.0)
    return trail * (peak / _ridge(kernel)), population


def _ridge(kernel):
    """Peak of the cross-section of a uniform line of unit density seen through `kernel`
    and the 1 px jitter: the trail's surface brightness before flares."""
    section = kernel.sum(axis=1)
    offsets = np.arange(-4, 5)
    jitter = np.exp(-0.5 * offsets ** 2)
    return float(np.convolve(section, jitter / jitter.sum()).max())


def inject_trails(image, scene, rng, k_t=K_T, pixel_scale=0.2, trail_style="paper"):
    """Add 1 or 2 trails to `image` (float64, in place); returns the TRL truth mask.

    pixel_scale: arcsec per pixel, for the meteors' defocus (eq. 7). trail_style: "paper"
    (this module's recipe) or "real" (``real_trails``).
    """
    style = str(trail_style).lower()
    if style not in TRAIL_STYLES:
        raise ValueError(f"trail_style: {' or '.join(TRAIL_STYLES)} expected, got {trail_style!r}")
    truth = np.zeros(image.shape, dtype=bool)
    for _ in range(1 + int(rng.random() < 0.25)):
        if style == "real":
            trail, _ = real_trails.trail_light(scene, rng, pixel_scale)
        else:
            trail, _ = trail_image(scene, rng, pixel_scale)
        image += scene.photon_noise(k_t * scene.sigma * trail, rng)
        truth |= dilate(trail > TRUTH_THRESHOLD, square_half_widths(7))
    return truth
