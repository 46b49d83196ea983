"""Saturated stars with bleed trails (SAT) and their diffraction spikes (SP), paper §2.1.9-10.

The paper takes SAT from the saturated pixels of its clean exposures and SP from spikes
measured around bright stars; with no such library here, we add bright stars ourselves:

- stars: circular Moffat (beta = 3) at the scene's FWHM, peak log-uniform in [1.5, 100]
  times the saturation level, 1 to 3 per 400x400 pixels (scaled with the area);
- bleeding: the charge above saturation in each column flows along the readout axis (rows
  by default, as in most CCDs), a fraction uniform in [0.3, 1] of it filling pixels to
  saturation, half each way from the saturated run;
- SAT truth: every pixel at the saturation level after all additive light (see `inject`);
- spikes: four arms at 90 degrees, oriented "+", "x" or at a random angle (equiprobable, as
  MegaCam, DECam and alt-az HSC show), each a Gaussian ridge of the PSF's width whose surface
  brightness falls as r^-2 from a peak log-uniform in [0.002, 0.02] times the star's peak;
  SP truth: pixels where the spike light exceeds 3 sigma_U, dilated 3x3, for spikes whose
  arms reach 5 FWHM at that level (the paper thresholds its cutouts at 3 sigma and drops
  spikes that come out too small). With 1 sigma_U and no minimum the published network's SP
  AUC was 0.85, with 2 sigma_U 0.88, with 3 sigma_U 0.90: the network sees arms about as
  far as they stand 3 sigma out, and it also calls our bleed trails spikes.
"""
import numpy as np

from .synthetic import stamp_offsets
from .raster import dilate, square_half_widths

BETA = 3.0
SPIKE_THRESHOLD = 3.0  # SP truth: spike light above this many sigma_U
MIN_SPIKE_LENGTH = 5.0  # shorter arms, in FWHM, are not labelled SP


def arm_length(light, scene):
    """Half the extent (px) of the spike light above the truth threshold: one arm's length."""
    ys, xs = np.nonzero(light > SPIKE_THRESHOLD * scene.sigma)
    return 0.5 * max(np.ptp(ys), np.ptp(xs)) if ys.size else 0.0


def _moffat_alpha(fwhm):
    return fwhm / (2 * np.sqrt(2 ** (1 / BETA) - 1))


def star_stamp(shape, y, x, peak, fwhm, floor):
    """A Moffat star of `peak` ADU at (y, x) down to `floor` ADU: (rows, cols, light) or None."""
    alpha = _moffat_alpha(fwhm)
    radius = int(min(alpha * np.sqrt(max((peak / floor) ** (1 / BETA) - 1, 0)) + 2, 400))
    stamp = stamp_offsets(shape, y, x, radius)
    if stamp is None:
        return None
    rows, cols, dx, dy = stamp
    return rows, cols, peak * (1 + (dy ** 2 + dx ** 2) / alpha ** 2) ** -BETA


def bleed(values, saturation, fraction, axis=0):
    """Pixels filled to saturation by the excess charge of `values`, along `axis` (bool).

    values: 2-D stamp (ADU) of sky + star. The excess above `saturation` in each column
    (axis 0) or row (axis 1), times `fraction`, fills whole pixels at the saturation level
    below (minus the local value) on both ends of the saturated run, half each way.
    """
    values = values if axis == 0 else values.T
    with np.errstate(invalid="ignore"):  # NaN pixels (no data) neither saturate nor bleed
        saturated = values >= saturation
        excess = fraction * np.fmax(values - saturation, 0).sum(axis=0)
    filled = saturated.copy()
    finite = values[np.isfinite(values)]
    headroom = max(saturation - float(np.median(finite)), 1.0) if finite.size else 1.0
    n = len(values)
    for col in np.nonzero(excess > 0)[0]:
        run = np.nonzero(saturated[:, col])[0]
        extra = int(excess[col] / headroom / 2)
        filled[max(run[0] - extra, 0):min(run[-1] + extra + 1, n), col] = True
    return filled if axis == 0 else filled.T


def saturated_star_footprint(scene, rng, peak_range=(1.5, 100.0)):
    """The saturated (+ bled) pixels of one random bright star, as a bool mask of the image."""
    h, w = scene.shape
    footprint = np.zeros(scene.shape, dtype=bool)
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    peak = scene.saturation * 10 ** rng.uniform(*np.log10(peak_range))
    stamp = star_stamp(scene.shape, y, x, peak, scene.fwhm, 0.5 * scene.saturation)
    if stamp is not None:
        rows, cols, light = stamp
        band = np.full((h, light.shape[1]), scene.sky)  # whole columns: the charge may bleed far
        band[rows] += light
        footprint[:, cols] = bleed(band, scene.saturation, rng.uniform(0.3, 1.0))
    return footprint


def _spike_light(shape, y, x, peak, scene, rng):
    """Four-armed spike light of a star of `peak` ADU at (y, x): (rows, cols, light)."""
    kind = rng.integers(3)
    angle = (0.0, np.pi / 4, rng.uniform(0, np.pi / 2))[kind]
    amplitude = peak * 10 ** rng.uniform(np.log10(0.002), np.log10(0.02))
    core = scene.fwhm
    width = scene.fwhm / 2.355 * rng.uniform(0.8, 1.5)
    length = core * np.sqrt(amplitude / (0.2 * scene.sigma))
    rows, cols, along, across = stamp_offsets(shape, y, x, int(min(length, 600)) + 3, angle)
    light = np.zeros(along.shape)
    for arms in ((along, across), (across, along)):  # the second pair at 90 degrees
        light += amplitude * np.exp(-0.5 * (arms[1] / width) ** 2) * (core / np.maximum(np.abs(arms[0]), core)) ** 2
    return rows, cols, light


def inject_saturated_stars(image, scene, rng, spikes=False, readout_axis=0):
    """Add saturated stars with bleed trails (and spikes) to `image` in place.

    Returns the SP truth (all False without spikes). The SAT truth is the pixels at the
    saturation level, which `inject` takes after all light is added.
    """
    h, w = image.shape
    spike_truth = np.zeros(image.shape, dtype=bool)
    nstars = max(1, int(round(rng.integers(1, 4) * h * w / 400.0 ** 2)))
    for _ in range(nstars):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        peak = scene.saturation * 10 ** rng.uniform(np.log10(1.5), 2.0)
        stamp = star_stamp(image.shape, y, x, peak, scene.fwhm, 0.05 * scene.sigma)
        if stamp is None:
            continue
        rows, cols, light = stamp
        if spikes:
            srows, scols, slight = _spike_light(image.shape, y, x, peak, scene, rng)
            image[srows, scols] += scene.photon_noise(slight, rng)
            if arm_length(slight, scene) >= MIN_SPIKE_LENGTH * scene.fwhm:
                spike_truth[srows, scols] |= slight > SPIKE_THRESHOLD * scene.sigma
        image[rows, cols] += scene.photon_noise(light, rng)
        band = image[:, cols] if readout_axis == 0 else image[rows, :]  # a view
        bled = bleed(band, scene.saturation, rng.uniform(0.3, 1.0), readout_axis)
        band[bled] = np.maximum(band[bled], scene.saturation)
    return dilate(spike_truth, square_half_widths(3)) if spikes else spike_truth
