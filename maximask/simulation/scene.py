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


#: header keywords read for the gain (e-/ADU) and the read noise (e-), first found wins
GAIN_KEYWORDS = ("GAIN", "EGAIN", "CCDGAIN")
READ_NOISE_KEYWORDS = ("RDNOISE", "READNOIS", "RON", "READNOISE")


def _header_value(header, names):
    for name in names:
        try:
            value = float(header[name]) if header is not None and name in header else None
        except (TypeError, ValueError):
            value = None
        if value is not None and np.isfinite(value) and value > 0:
            return value
    return None


def noise_model(clean, header=None, mesh_size=200):
    """(gain e-/ADU, read noise e-, where they come from) of a clean image (2-D, ADU).

    From the header when it has both (GAIN_KEYWORDS, READ_NOISE_KEYWORDS). Otherwise the
    background noise sigma_U (ADU) and sky level m_U (ADU) are measured as the simulator does
    and split as sigma_U^2 = m_U / g + (r / g)^2: with the header's gain, r follows; without
    it, g is the simulator's effective gain m_U / sigma_U^2 (``Scene.gain``, the photon noise
    it adds) and r = 0; a sky at or below 0 (background-subtracted data) gives g = 1 and
    r = sigma_U.
    """
    gain, read_noise = _header_value(header, GAIN_KEYWORDS), _header_value(header, READ_NOISE_KEYWORDS)
    if gain is not None and read_noise is not None:
        return gain, read_noise, "input header"
    level, sigma_map = kernels.estimate_background(np.ascontiguousarray(clean, dtype=np.float32), mesh_size)
    sigma, sky = float(np.median(sigma_map)), float(np.median(level))
    if gain is not None:
        return gain, gain * float(np.sqrt(max(sigma ** 2 - max(sky, 0.0) / gain, 0.0))), "header gain, noise model"
    if sky > 0 and sigma > 0:
        return sky / sigma ** 2, 0.0, "simulator noise model"
    return 1.0, sigma, "no sky: all noise as read noise"
