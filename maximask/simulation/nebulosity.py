"""Nebulosity (NEB), paper §2.1.8, eq. 11.

The paper adds Herschel SPIRE 250 um maps of molecular clouds, relying on the scale
invariance of dust emission. Instead of the maps we draw that scale invariance directly: a
log-normal cloud ``exp(s g)`` where g is a Gaussian random field of power-law spectrum
P(k) ~ k^-beta, beta uniform in [2.6, 3.2] (Miville-Deschenes et al. 2016 measure about 2.7
for dust) and s uniform in [0.5, 1.5] (our choice: column-density PDFs of clouds are roughly
log-normal). As in the paper the cloud is background-subtracted with the SExtractor-like
background (the project's kernel, 200 px meshes) to give N, added as
``k_N (sigma_U / sigma_N) N`` with k_N = 1.3 and sigma_N the standard deviation of N; the
truth is N > sigma_N ("one sigma above 0"), eroded by a 6 px disk, then dilated by a 22 px disk.
"""
import numpy as np

from .. import kernels
from .raster import dilate, disk_half_widths, erode, gaussian_random_field

K_N = 1.3


def cloud(shape, rng):
    """A background-subtracted, scale-invariant cloud image N (h, w), arbitrary units."""
    beta = rng.uniform(2.6, 3.2)
    g = gaussian_random_field(shape, rng, lambda k: k ** -beta)
    emission = np.exp(rng.uniform(0.5, 1.5) * g).astype(np.float32)
    level, _ = kernels.estimate_background(emission)
    return emission.astype(np.float64) - level


def inject_nebulosity(image, scene, rng, k_n=K_N):
    """Add a nebulosity to `image` (float64, in place); returns the NEB truth mask."""
    n = cloud(image.shape, rng)
    sigma_n = n.std()
    image += k_n * scene.sigma / sigma_n * n  # about sigma_U: its photon noise is negligible
    core = erode(n > sigma_n, disk_half_widths(6))
    return dilate(core, disk_half_widths(22))
