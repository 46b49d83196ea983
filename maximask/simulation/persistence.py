"""Persistence (P), paper §2.1.5, eq. 3-6 and Table 2: the Fermi model of Long et al. (2015).

Footprints are the saturated (and bled) pixels of bright stars of a previous exposure,
simulated like our SAT stars but brighter (peak 10 to 10^4 times saturation, log-uniform;
the paper binarises SkyMaker images of saturated stars);
1 to 3 footprints per 400x400 pixels (scaled with the area; our choice). Within a footprint
the Table 2 parameters are drawn once (x_m, x_0, delta_x, G) and x_p per pixel; exposure time
T and delay Delta t are not in Table 2: we draw T uniform in [30, 600] s and Delta t in
[10, 300] s. P_min in eq. 6 is taken over the whole image, where P = 0 outside the
footprints: the normalisation then preserves the footprints' relative levels, the brightest
remnant reaching k_P sigma_U (k_P = 5). Normalising over the footprint pixels only would make
P a random speckle (x_p varies by 0.1% within a footprint), not a remnant.
"""
import numpy as np

from .saturation import saturated_star_footprint

K_P = 5.0
ALPHA, GAMMA = 0.178, 1.078


def fermi_persistence(x_p, x_0, delta_x, gain, exposure, delay, a_p=1.0):
    """ADU collected between delay and delay + exposure (s) by eq. 5; x_p, x_0, delta_x in e-."""
    fermi = 1000.0 ** GAMMA / (np.exp(-(x_p - x_0) / delta_x) + 1)
    decay = ((delay + exposure) ** (1 - GAMMA) - delay ** (1 - GAMMA)) / (1 - GAMMA)
    return a_p / gain * fermi * (x_p / x_0) ** ALPHA * decay


def inject_persistence(image, scene, rng, k_p=K_P):
    """Add persistence remnants to `image` (float64, in place); returns the P truth mask."""
    h, w = image.shape
    persistence = np.zeros(image.shape)
    truth = np.zeros(image.shape, dtype=bool)
    for _ in range(max(1, int(round(rng.integers(1, 4) * h * w / 400.0 ** 2)))):
        footprint = saturated_star_footprint(scene, rng, peak_range=(10.0, 1e4))
        n = int(footprint.sum())
        if n == 0:
            continue
        x_m = rng.normal(15e5, 0.02 * 15e5)
        x_p = rng.poisson(x_m, n).astype(np.float64)
        value = fermi_persistence(x_p, rng.normal(9e4, 0.02 * 9e4), rng.normal(18e3, 0.02 * 18e3),
                                  rng.normal(10.0, 1.0), rng.uniform(30, 600), rng.uniform(10, 300))
        persistence[footprint] = np.maximum(persistence[footprint], value)
        truth |= footprint
    if truth.any():
        image += scene.photon_noise(k_p * scene.sigma * persistence / persistence.max(), rng)
    return truth
