"""Seeded synthetic exposures with injected contaminants, for tests, benchmarks and examples.

Pixel values are ADU on a sky of ~1000 ADU with Gaussian read and Poisson-like noise.
Everything is drawn from ``numpy.random.default_rng(seed)``, so a (shape, seed) pair always
gives the same image on every machine.
"""
import numpy as np

SATURATION = 60000.0


def stamp_offsets(shape, y, x, radius, angle=0.0):
    """Pixel offsets from (y, x) within `radius` px, inside an image of `shape` (h, w).

    Returns ``(rows, cols, u, v)``: the stamp's slices of the image and the offsets along
    `angle` (radians from the x axis) and across it, float arrays of the stamp's shape; or
    None when the stamp misses the image.
    """
    h, w = shape
    rows = slice(max(int(y) - radius, 0), min(int(y) + radius + 1, h))
    cols = slice(max(int(x) - radius, 0), min(int(x) + radius + 1, w))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return None
    yy, xx = np.mgrid[rows, cols]
    dy, dx = yy - y, xx - x
    c, s = np.cos(angle), np.sin(angle)
    return rows, cols, dx * c + dy * s, -dx * s + dy * c


def _add_star(image, y, x, flux, fwhm, elongation=1.0, angle=0.0):
    """Add a Moffat (beta = 3) star; elongation > 1 smears it along `angle` (radians)."""
    stamp = stamp_offsets(image.shape, y, x, int(min(max(6 * fwhm * elongation, 8), 80)), angle)
    if stamp is None:
        return
    rows, cols, u, v = stamp
    u = u / elongation
    beta = 3.0
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    profile = (1 + (u * u + v * v) / alpha ** 2) ** -beta
    profile *= (beta - 1) / (np.pi * alpha ** 2 * elongation)
    image[rows, cols] += flux * profile


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


def _add_galaxy(image, y, x, flux, scale, axis_ratio, angle):
    """Add an exponential-disk galaxy of scale length `scale` px, seen at `axis_ratio`."""
    stamp = stamp_offsets(image.shape, y, x, int(min(8 * scale + 3, 120)), angle)
    if stamp is None:
        return
    rows, cols, u, v = stamp
    image[rows, cols] += flux / (2 * np.pi * scale ** 2 * axis_ratio) * np.exp(-np.hypot(u, v / axis_ratio) / scale)


def clean_field(shape=(400, 400), seed=0, fwhm=3.0, star_density=1000.0, galaxy_density=500.0,
                sky=1000.0, read_noise=5.0, gain=1.0, gradient=0.0, dtype=np.float32):
    """A contaminant-free exposure of `shape` (h, w) for simulations; `dtype` array (ADU).

    Stars (Moffat, beta = 3, at `fwhm` px) and exponential galaxies, both `*_density` per
    million pixels with fluxes log-uniform in [10^2.5, 10^5.5] ADU (no star saturates), on a
    sky of `sky` ADU tilted by `gradient` (fraction of the sky across the image), with photon
    noise at `gain` e-/ADU and `read_noise` ADU. The galaxies' scale lengths are uniform in
    [0.5, 2] fwhm.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    area = h * w / 1e6
    yy, xx = np.mgrid[0:h, 0:w]
    image = sky * (1 + gradient * (0.6 * yy / max(h, 1) + 0.4 * xx / max(w, 1)))
    for _ in range(rng.poisson(star_density * area)):
        _add_star(image, rng.uniform(0, h), rng.uniform(0, w), 10 ** rng.uniform(2.5, 5.5), fwhm)
    for _ in range(rng.poisson(galaxy_density * area)):
        _add_galaxy(image, rng.uniform(0, h), rng.uniform(0, w), 10 ** rng.uniform(2.5, 5.0),
                    fwhm * rng.uniform(0.5, 2.0), rng.uniform(0.3, 1.0), rng.uniform(0, np.pi))
    noise = np.sqrt(np.maximum(image, 0) / gain + read_noise ** 2)
    return (image + rng.normal(size=shape) * noise).astype(dtype)
