"""Seeded synthetic exposures with injected contaminants, for tests, benchmarks and examples.

Pixel values are ADU on a sky of ~1000 ADU with Gaussian read and Poisson-like noise.
Everything is drawn from ``numpy.random.default_rng(seed)``, so a (shape, seed) pair always
gives the same image on every machine.
"""
import numpy as np

SATURATION = 60000.0


def _add_star(image, y, x, flux, fwhm, elongation=1.0, angle=0.0):
    """Add a Moffat (beta = 3) star; elongation > 1 smears it along `angle` (radians)."""
    h, w = image.shape
    r = int(min(max(6 * fwhm * elongation, 8), 80))
    y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, h)
    x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - y, xx - x
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / elongation
    v = -dx * s + dy * c
    beta = 3.0
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    profile = (1 + (u * u + v * v) / alpha ** 2) ** -beta
    profile *= (beta - 1) / (np.pi * alpha ** 2 * elongation)
    image[y0:y1, x0:x1] += flux * profile


def add_saturated_star(image, y, x, flux=4e7, fwhm=4.0, elongation=1.0, angle=0.0, bleed=40):
    """Add a star bright enough to saturate, with diffraction spikes and a bleed column."""
    h, w = image.shape
    _add_star(image, y, x, flux, fwhm, elongation, angle)
    t = np.arange(-60, 61)
    for spike in (0, np.pi / 2):
        sy = np.clip((y + t * np.sin(spike)).astype(int), 0, h - 1)
        sx = np.clip((x + t * np.cos(spike)).astype(int), 0, w - 1)
        image[sy, sx] += 3000 * np.exp(-np.abs(t) / 40)
    iy, ix = int(y), int(x)
    image[max(iy - bleed, 0):min(iy + bleed, h), max(ix - 1, 0):min(ix + 2, w)] = SATURATION


def add_cosmic_ray(image, y, x, length=3, direction=(0, 1), energies=(8000.0,) * 5):
    """Add a sharp cosmic-ray hit of `length` pixels from (y, x) along `direction` (dy, dx)."""
    h, w = image.shape
    for k in range(length):
        cy, cx = y + k * direction[0], x + k * direction[1]
        if 0 <= cy < h and 0 <= cx < w:
            image[cy, cx] += energies[k % len(energies)]


def add_trail(image, x0, x1, peak=600.0, sigma=1.5):
    """Add a satellite trail from (0, x0) to (h - 1, x1): a line as wide as a star.

    Its cross-section is a Gaussian of `sigma` pixels (FWHM 3.5 px for 1.5) peaking at
    `peak` ADU. A trail one pixel wide would look like a cosmic ray to the network, which
    learnt trails as lines of the PSF (the paper's section 2.1.7).
    """
    h, w = image.shape
    y = np.arange(h, dtype=np.float64)
    centre = x0 + (x1 - x0) * y / max(h - 1, 1)
    cos = (h - 1) / np.hypot(h - 1, x1 - x0) if h > 1 else 1.0
    reach = int(np.ceil(5 * sigma / cos))
    cols = np.round(centre)[:, None].astype(np.int64) + np.arange(-reach, reach + 1)
    rows = np.broadcast_to(np.arange(h)[:, None], cols.shape)
    inside = (cols >= 0) & (cols < w)
    dist = (cols - centre[:, None]) * cos  # perpendicular distance to the line
    image[rows[inside], cols[inside]] += peak * np.exp(-0.5 * (dist[inside] / sigma) ** 2)


def make_field(shape=(1024, 1024), seed=0, sky=1000.0, nstars=None, ncosmics=None,
               trail=True, hot_column=True, saturated=3, tracking_error=False,
               gradient=0.2, elongation=None, dtype=np.float32):
    """A sky field of `shape` (h, w) with stars and contaminants; returns a `dtype` array (ADU).

    Contaminants: saturated stars with bleed columns and diffraction spikes, cosmic rays,
    a satellite trail, a hot column, hot and dead pixels. With tracking_error=True every
    star is smeared along one direction (by a factor 4, or `elongation`), as in an exposure
    whose guiding failed.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    area = h * w / 1e6
    if nstars is None:
        nstars = int(600 * area) + 5
    if ncosmics is None:
        ncosmics = int(150 * area) + 3
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.full(shape, sky, dtype=np.float64)
    image += sky * gradient * (0.6 * yy / max(h, 1) + 0.4 * xx / max(w, 1))

    if elongation is None:
        elongation = 4.0 if tracking_error else 1.0
    angle = rng.uniform(0, np.pi)
    for _ in range(nstars):
        flux = 10 ** rng.uniform(2.5, 5.5)
        _add_star(image, rng.uniform(0, h), rng.uniform(0, w), flux, rng.uniform(2.5, 4.0),
                  elongation, angle)
    saturated_at = [(rng.uniform(0.1 * h, 0.9 * h), rng.uniform(0.1 * w, 0.9 * w), int(rng.uniform(20, 60)))
                    for _ in range(saturated)]
    for y, x, bleed in saturated_at:
        add_saturated_star(image, y, x, elongation=elongation, angle=angle, bleed=bleed)

    noise = rng.normal(0, 1, shape) * np.sqrt(np.maximum(image, 0) + 25.0)
    image = np.minimum(image + noise, SATURATION)

    for _ in range(ncosmics):  # sharp, few-pixel hits that escape the PSF
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        add_cosmic_ray(image, y, x, int(rng.integers(1, 6)), rng.integers(-1, 2, size=2),
                       rng.uniform(2000, 20000, size=5))
    if trail:
        x0, x1 = rng.uniform(0, w, size=2)
        add_trail(image, x0, x1)
    if hot_column:
        cx = int(rng.integers(w // 4, 3 * w // 4))
        image[:, cx] += 5000
    for _ in range(int(20 * area) + 2):  # hot and dead pixels
        image[int(rng.integers(0, h)), int(rng.integers(0, w))] = rng.choice([40000.0, 0.0])
    return image.astype(dtype)
