"""What every recipe needs to know about the clean image: its background and noise.

The background is the project's own estimate (``maximask.kernels.estimate_background``, the
network's preprocessing), so "sigma_U" means the same thing here as in the network's input.
"""
from dataclasses import dataclass

import numpy as np

from .. import kernels
from .raster import moffat_kernel


@dataclass(frozen=True)
class Scene:
    """The clean image's background statistics and the instrument choices of one sample.

    level: float32 (h, w) background map, ADU. sigma: sigma_U, the median of the background
    noise map, ADU. sky: m_U, the median of the background level, ADU. saturation: the
    saturation level, ADU. fwhm: seeing of the injected stars, trails and spikes, pixels.
    gain: effective gain (e-/ADU) for the photon noise of added light, sky / sigma^2 (the
    largest gain the clean background allows), or None when the sky is not positive.
    """

    shape: tuple
    level: np.ndarray
    sigma: float
    sky: float
    saturation: float
    fwhm: float
    gain: object

    @classmethod
    def measure(cls, clean, saturation=None, fwhm=None, rng=None, mesh_size=200):
        """The scene of a clean image; fwhm None draws it uniformly in [2, 6] px from rng."""
        level, sigma_map = kernels.estimate_background(clean, mesh_size)
        sigma = float(np.median(sigma_map))
        if not sigma > 0:
            finite = clean[np.isfinite(clean)]
            sigma = float(np.std(finite)) if finite.size else 1.0
            sigma = sigma if sigma > 0 else 1.0
        sky = float(np.median(level))
        if saturation is None:  # above every clean pixel: no clean pixel counts as saturated
            top = float(np.nanmax(clean)) if np.isfinite(clean).any() else sky
            saturation = max(sky + 2000.0 * sigma, top + sigma)
        if fwhm is None:
            fwhm = float(rng.uniform(2.0, 6.0))
        gain = sky / sigma ** 2 if sky > 0 else None
        return cls(clean.shape, level, sigma, sky, float(saturation), float(fwhm), gain)

    def psf(self, radius=None):
        """The normalised PSF stamp of the injected light (Moffat, beta = 3)."""
        return moffat_kernel(self.fwhm, radius=radius)

    def photon_noise(self, light, rng):
        """`light` (ADU, >= 0) with Poisson-like noise at the scene's effective gain."""
        if self.gain is None:
            return light
        return light + rng.normal(size=light.shape) * np.sqrt(np.maximum(light, 0) / self.gain)
