"""Real cosmic-ray hits from a shipped catalogue (CR, ``cosmic_source="imsim"``; issue 21).

The paper (§2.1.3) cuts its hits out of real dark frames; its library is private. This
package ships 1,764 real hits harvested by imSim from dark frames of LSST ITL sensors (thick,
deep-depletion CCDs, 10 um pixels; ``data/README.md``, BSD-3). ``library_dark`` pastes hits
drawn from it at random places of an empty dark, each turned by a random multiple of 90
degrees and possibly mirrored, so that ``cosmics.inject_cosmics`` applies eq. 1-2 unchanged.

Scaling (eq. 2, ``k_C sigma_U / sigma_D D``): the catalogue is in electrons, so D and sigma_D
are both taken in electrons and the ratio D / sigma_D needs no gain: a hit keeps the
significance it had in its dark, divided by 1 / k_C = 8, the paper's choice. sigma_D is the
dark's noise, the read noise of an ITL sensor: ``ITL_READ_NOISE`` = 6 e- (LSSTCam ITL
sensors measure 5-7 e-; the catalogue's faintest pixel, 49 e-, is then at 8 sigma_D, so every
catalogue pixel passes eq. 1's 3 sigma_D rule and the truth is the hits dilated 3x3). A hit
of the median pixel value, 431 e-, lands at 431 / 6 / 8 = 9 sigma_U; the brightest, 27,790
e-, at 580 sigma_U. The number of hits per sample follows the built-in generator's rate
(``cosmic_rate``, hits per million pixels, default log-uniform in [100, 1000]), not the
catalogue's exposure time: the class balance of the samples, not the ITL dark current, is
what the rate sets.
"""
import functools
import os

import numpy as np

CATALOGUE = os.path.join(os.path.dirname(__file__), "data", "imSim_cosmic_rays_itl_2017.fits.gz")
ITL_READ_NOISE = 6.0  # e-, sigma_D of the catalogue's darks


@functools.lru_cache(maxsize=1)
def load_hits(path=CATALOGUE):
    """The catalogue's hits: a tuple of (dy, dx, electrons) int/int/float arrays, each hit's
    pixels relative to its first pixel's row and its leftmost column."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        table = hdul["COSMIC_RAYS"].data
        ids = np.asarray(table["fp_id"])
        x0s, y0s = np.asarray(table["x0"], dtype=np.int64), np.asarray(table["y0"], dtype=np.int64)
        values = [np.asarray(v, dtype=np.float64) for v in table["pixel_values"]]
    hits = {}
    for hit, x0, y0, span in zip(ids, x0s, y0s, values):
        ys, xs, vs = hits.setdefault(int(hit), ([], [], []))
        ys.append(np.full(span.size, y0))
        xs.append(x0 + np.arange(span.size))
        vs.append(span)
    out = []
    for ys, xs, vs in hits.values():
        y, x = np.concatenate(ys), np.concatenate(xs)
        out.append((y - y.min(), x - x.min(), np.concatenate(vs)))
    return tuple(out)


def library_dark(shape, rng, cosmic_rate=None, sigma_d=ITL_READ_NOISE):
    """A noise-free background-subtracted dark (h, w) in units of sigma_D, holding real hits.

    cosmic_rate: hits per million pixels (None: log-uniform in [100, 1000]). Each hit is drawn
    from the catalogue with replacement, turned by k x 90 degrees (k uniform), mirrored with
    probability 1/2 and placed uniformly (partly outside the sample if it falls so).
    """
    h, w = shape
    if cosmic_rate is None:
        cosmic_rate = 10 ** rng.uniform(2.0, 3.0)
    hits = load_hits()
    dark = np.zeros(shape)
    for k in rng.integers(len(hits), size=rng.poisson(cosmic_rate * h * w / 1e6)):
        dy, dx, electrons = hits[k]
        for _ in range(int(rng.integers(4))):  # a quarter turn: (y, x) -> (x, -y)
            dy, dx = dx, dy.max() - dy
        if rng.random() < 0.5:
            dx = dx.max() - dx
        y = int(rng.integers(-dy.max(), h)) + dy
        x = int(rng.integers(-dx.max(), w)) + dx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        np.add.at(dark, (y[inside], x[inside]), electrons[inside] / sigma_d)
    return dark
