"""Residual fringes (FR), paper §2.1.7, eq. 9-10.

The paper uses real fringe maps (ALAMBIC) smoothed by a 7 px top-hat; those are private, so
we synthesise the thin-film interference they show: F = cos(phase), with the phase
proportional to a smooth random thickness field (Gaussian spectrum of correlation length
uniform in [40, 150] px), scaled so that the median fringe spacing (2 pi / |grad phase|) is
uniform in [15, 60] px (our choices, from the look of MegaCam and DECam i/z fringes), then
smoothed by the 7 px top-hat as in the paper. The envelope E is a random 3rd-degree 2-D
polynomial (coefficients N(0, 1) on [-1, 1]^2 coordinates), flattened by the sigmoid of
eq. 9, and ``k_F (sigma_U / sigma_F) F * E^(F)`` is added, k_F = 0.6. The truth is where the
envelope normalised to [-1, 1] (the sigmoid's argument / 5) exceeds -0.20.
"""
import numpy as np

from .raster import disk_mean, gaussian_random_field

K_F = 0.6
ENVELOPE_THRESHOLD = -0.20


def fringe_pattern(shape, rng):
    """A unit-amplitude thin-film fringe pattern (h, w), before the top-hat smoothing."""
    correlation = rng.uniform(40, 150)
    thickness = gaussian_random_field(shape, rng, lambda k: np.exp(-(k * correlation) ** 2 * 2 * np.pi ** 2))
    gy, gx = np.gradient(thickness)
    spacing = rng.uniform(15, 60)
    phase = thickness * (2 * np.pi / spacing) / max(np.median(np.hypot(gy, gx)), 1e-12)
    return np.cos(phase + rng.uniform(0, 2 * np.pi))


def envelope(shape, rng):
    """A random cubic 2-D polynomial over the image, normalised to [-1, 1] (h, w)."""
    h, w = shape
    y = np.linspace(-1, 1, h)[:, None]
    x = np.linspace(-1, 1, w)[None, :]
    e = sum(rng.normal() * y ** i * x ** j for i in range(4) for j in range(4 - i))
    e = np.broadcast_to(e, shape)
    return (2 * e - e.max() - e.min()) / max(e.max() - e.min(), 1e-12)


def inject_fringes(image, scene, rng, k_f=K_F):
    """Add a fringe pattern under a random envelope to `image` (in place); returns FR truth."""
    pattern = disk_mean(fringe_pattern(image.shape, rng), 7)
    e = envelope(image.shape, rng)
    flattened = 1.0 / (1.0 + np.exp(-5.0 * e))  # eq. 9
    light = k_f * scene.sigma / pattern.std() * pattern * flattened
    image += light
    return e > ENVELOPE_THRESHOLD
