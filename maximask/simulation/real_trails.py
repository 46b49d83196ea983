"""Trails as real exposures show them (TRL, ``trail_style="real"``; issue 21).

The paper's recipe (``trails.py``) draws an even ridge, with at most a few smooth flares,
crossing the whole sample. Real trails differ in ways the published network has learnt to
miss. The one real trail measured for issue 21 (a 512x512 CCD frame): about 320 px long,
-5 deg, ridge about 9 sigma_U, FWHM 4.5-5 px against 3.9 px for the stars, ending inside the
frame, and a ridge that varies along its length: per-column peak std/mean 0.48 against 0.23
for a paper-recipe trail of the same angle, length, width and ridge (network: median raw TRL
0.0008 on the real one, 0.965 on the simulated one). Published statistics point the same way:
LEO satellites flare for a few seconds and change magnitude during a pass (Mallama et al.
2021, arXiv:2111.09735, 100 000 Starlink magnitudes); tumbling bodies (rocket bodies, dead
satellites) modulate their brightness periodically; a low orbit is out of focus for a large
telescope, the trail being as wide as the pupil seen from the satellite's distance,
theta = D / d (Tyson et al. 2020, AJ 160, 226: a Starlink at 550 km is about 3 arcsec wide
for the 8.4 m Rubin telescope); an aircraft leaves parallel lines of wing-tip and beacon
lights, blinking.

What this recipe draws, each trail (one per sample, two with probability 1/4):

- a **population** (``POPULATIONS``, with its probability): ``steady`` (an even satellite,
  the paper's), ``knotty`` (knots and glints of a few pixels on a ridge varying at all
  scales), ``tumbling`` (periodic modulation: period 6-150 px, depth 30-100 %),
  ``flaring`` (1-3 flares of 5-60 px, 2-10 times the ridge, over knots), ``defocused`` (a
  low orbit: the PSF convolved with the annular pupil of a D = 1-8 m telescope at
  d = 300-1500 km, i.e. 0.14-5.5 arcsec), ``aircraft`` (2-3 parallel lines 3-15 px apart,
  each dashed by blinking lights: period 8-60 px, duty 10-60 %) and ``meteor`` (the paper's
  defocus of eq. 7, its light rising and fading along a short segment);
- **brightness along the track**: the product of a log-normal field with structure on every
  scale from 2 to 200 px (log-amplitude ``variation``, drawn per population) and the
  population's modulation;
- **extent**: with probability ``SEGMENT_PROBABILITY`` (meteors: always) the trail begins
  or ends inside the sample (a satellite entering the Earth's shadow, a glint, a meteor):
  one end inside, the other, or both (1/3 each), its length uniform in 10-90 % of its chord
  through the sample; otherwise it crosses the sample;
- **ridge** (mean peak over the track, before noise): log-uniform in [1/6, 10] sigma_T,
  i.e. 1 to 60 sigma_U once scaled by k_T = 6: the faint end lies near the noise, where a
  trail is seen only by integrating along it.

``trail_light`` returns the noise-free image in sigma_T units, as ``trails.trail_image``
does, so the paper's scaling (eq. 8) and truth rule (threshold 0.1 sigma_T, dilated 7x7)
apply unchanged.
"""
import numpy as np

from .raster import annular_pupil, fft_convolve, splat

#: population: probability (they sum to 1)
POPULATIONS = {"steady": 0.15, "knotty": 0.25, "tumbling": 0.15, "flaring": 0.1, "defocused": 0.15,
               "aircraft": 0.1, "meteor": 0.1}
SEGMENT_PROBABILITY = 0.5
PEAK_RANGE = (1.0 / 6.0, 10.0)  # ridge in sigma_T (x k_T = 6: 1 to 60 sigma_U)
#: log-amplitude of the along-track brightness field per population (uniform in the range)
VARIATION = {"steady": (0.0, 0.1), "knotty": (0.3, 0.8), "tumbling": (0.05, 0.3), "flaring": (0.2, 0.5),
             "defocused": (0.1, 0.5), "aircraft": (0.0, 0.2), "meteor": (0.1, 0.3)}
SCALES = (2.0, 6.0, 20.0, 60.0, 200.0)  # px: correlation lengths of the brightness field
SPACING = 0.5  # px between the star images along the path
JITTER = 1.0  # px, the paper's turbulence jitter of each star image


def _smooth_noise(n, scale, rng):
    """Unit-variance Gaussian noise of n points correlated over `scale` points."""
    if n == 0:
        return np.zeros(0)
    white = rng.normal(size=n + int(6 * scale))
    half = int(3 * scale)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / scale) ** 2)
    smooth = np.convolve(white, kernel / np.sqrt((kernel ** 2).sum()), mode="same")
    return smooth[half:half + n]


def brightness_profile(t, population, rng):
    """Relative brightness (mean about 1) at the positions t (px along the track) of one trail."""
    n = t.size
    low, high = VARIATION[population]
    sigma = rng.uniform(low, high)
    weights = rng.dirichlet(np.ones(len(SCALES)))
    field = sum(np.sqrt(wk) * _smooth_noise(n, s / SPACING, rng) for wk, s in zip(weights, SCALES))
    profile = np.exp(sigma * field - 0.5 * sigma ** 2)
    if population == "knotty":  # glints: a few pixels long, 1-5 times the ridge
        for _ in range(int(rng.integers(2, 12))):
            centre, width = rng.uniform(t[0], t[-1] + SPACING), rng.uniform(0.7, 3.0)
            profile += rng.uniform(1.0, 5.0) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    elif population == "tumbling":
        period, depth = 10 ** rng.uniform(np.log10(6), np.log10(150)), rng.uniform(0.3, 1.0)
        sharpness = rng.choice([1, 2, 4, 8])  # higher: short glints once per period
        wave = (0.5 + 0.5 * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))) ** sharpness
        profile *= 1.0 - depth + depth * wave / max(wave.mean(), 1e-9)
    elif population == "flaring":
        for _ in range(int(rng.integers(1, 4))):
            centre, width = rng.uniform(t[0], t[-1] + SPACING), rng.uniform(5, 60)
            profile += rng.uniform(2, 10) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    elif population == "meteor":  # rises and fades
        u = (t - t[0]) / max(t[-1] - t[0], SPACING)
        profile *= np.sin(np.pi * np.clip(u, 0, 1)) ** rng.uniform(0.5, 2.0) + 0.05
    return profile


def _chord(shape, rng, angle=None):
    """A random line through the sample (angle: radians, None: uniform): a point on it
    (y, x), its unit direction (dy, dx), and the parameters [t0, t1] (px) where it enters and
    leaves the image."""
    h, w = shape
    y, x = rng.uniform(0.25 * h, 0.75 * h), rng.uniform(0.25 * w, 0.75 * w)
    angle = rng.uniform(0, np.pi) if angle is None else angle
    dy, dx = np.sin(angle), np.cos(angle)
    lows, highs = [], []
    for p, d, size in ((y, dy, h), (x, dx, w)):
        if abs(d) > 1e-12:
            a, b = (-0.5 - p) / d, (size - 0.5 - p) / d
            lows.append(min(a, b))
            highs.append(max(a, b))
    return y, x, dy, dx, max(lows), min(highs)


def _defocused(kernel, diameter_m, distance_m, pixel_scale):
    """The PSF convolved with the pupil seen from `distance_m` (eq. 7), normalised."""
    theta = 180 / np.pi * 3600 * diameter_m / distance_m
    out = fft_convolve(np.pad(annular_pupil(theta / pixel_scale), kernel.shape[0] // 2), kernel)
    return out / out.sum()


def _ridge(kernel):
    """Peak cross-section of a uniform line of unit density through `kernel` and the jitter."""
    section = kernel.sum(axis=1)
    offsets = np.arange(-4, 5)
    jitter = np.exp(-0.5 * (offsets / JITTER) ** 2)
    return float(np.convolve(section, jitter / jitter.sum()).max())


def trail_light(scene, rng, pixel_scale=0.2, population=None, segment=None, peak=None, angle=None):
    """A noise-free real-like trail T in sigma_T units (h, w) and a dict describing it.

    population: one of POPULATIONS (None: drawn). segment: True/False forces the trail to
    end inside the sample or to cross it (None: drawn, SEGMENT_PROBABILITY). peak: the ridge
    in sigma_T (None: log-uniform in PEAK_RANGE). angle: radians (None: uniform).
    info: population, peak, start and end (y, x) of the drawn track, its direction (dy, dx),
    whether it is a segment, the kernel's FWHM-like width (px) and, for aircraft, the lines.
    """
    if population is None:
        names = list(POPULATIONS)
        population = names[rng.choice(len(names), p=list(POPULATIONS.values()))]
    y, x, dy, dx, t_in, t_out = _chord(scene.shape, rng, angle)
    if segment is None:
        segment = population == "meteor" or rng.random() < SEGMENT_PROBABILITY
    chord = t_out - t_in
    t0, t1 = t_in - 10.0, t_out + 10.0  # across the sample, the PSF's wings beyond the edges
    if segment:  # one end inside (entering the Earth's shadow, a glint), or both (1/3 each)
        length = rng.uniform(0.1, 0.9) * chord
        ends = rng.integers(3)
        if ends == 0:
            t1 = t_in + length
        elif ends == 1:
            t0 = t_out - length
        else:
            t0 = rng.uniform(t_in, t_out - length)
            t1 = t0 + length
    t = np.arange(t0, t1, SPACING)
    if t.size < 2:
        t = np.array([t0, t0 + SPACING])

    kernel = scene.psf()
    if population == "defocused":
        kernel = _defocused(kernel, rng.uniform(1, 8), rng.uniform(300e3, 1500e3), pixel_scale)
    elif population == "meteor":
        kernel = _defocused(kernel, rng.uniform(2, 8), rng.uniform(80e3, 120e3), pixel_scale)

    offsets = [0.0]
    if population == "aircraft":
        offsets = list(np.cumsum(np.r_[0.0, rng.uniform(3, 15, int(rng.integers(1, 3)))]))
        offsets = [o - np.mean(offsets) for o in offsets]
    ys, xs, values = [], [], []
    for offset in offsets:
        profile = brightness_profile(t, population, rng)
        if population == "aircraft":  # blinking lights: on for `duty` of each period
            period, duty = rng.uniform(8, 60), rng.uniform(0.1, 0.6)
            phase = ((t - t0) / period + rng.uniform()) % 1.0
            profile = profile * (phase < duty) * rng.uniform(0.5, 2.0)
        ys.append(y + t * dy - offset * dx + rng.normal(0, JITTER, t.size))
        xs.append(x + t * dx + offset * dy + rng.normal(0, JITTER, t.size))
        values.append(profile * SPACING)
    line = splat(scene.shape, np.concatenate(ys), np.concatenate(xs), np.concatenate(values))
    trail = np.maximum(fft_convolve(line, kernel), 0.0)
    if peak is None:
        peak = 10 ** rng.uniform(*np.log10(PEAK_RANGE))
    info = {"population": population, "peak": float(peak), "segment": bool(segment),
            "start": (y + t[0] * dy, x + t[0] * dx), "end": (y + t[-1] * dy, x + t[-1] * dx),
            "direction": (dy, dx), "offsets": offsets, "width": _width(kernel)}
    return trail * (peak / _ridge(kernel)), info


def _width(kernel):
    """FWHM (px) of the cross-section of a line seen through `kernel` and the jitter."""
    offsets = np.arange(-4, 5)
    jitter = np.exp(-0.5 * (offsets / JITTER) ** 2)
    section = np.convolve(kernel.sum(axis=1), jitter / jitter.sum())
    half = section.max() / 2
    above = np.flatnonzero(section >= half)
    lo, hi = above[0], above[-1]
    left = lo - (section[lo] - half) / (section[lo] - section[lo - 1]) if lo > 0 else lo
    right = hi + (section[hi] - half) / (section[hi] - section[hi + 1]) if hi + 1 < section.size else hi
    return float(right - left)


def ridge_variation(image, start, end, half_width=3, step=1.0):
    """Std/mean of the ridge's peak along a track: at each `step` px from `start` to `end`
    ((y, x), px), the maximum of `image` over +-half_width px across the track (for a
    near-horizontal trail: the per-column peak). The statistic issue 21 measured on a real
    trail (0.48) and on a paper-recipe one (0.23). image: background-subtracted 2-D."""
    (y0, x0), (y1, x1) = start, end
    length = np.hypot(y1 - y0, x1 - x0)
    dy, dx = (y1 - y0) / length, (x1 - x0) / length
    h, w = image.shape
    peaks = []
    for s in np.arange(0.0, length, step):
        across = np.arange(-half_width, half_width + 1)
        yy = np.rint(y0 + s * dy - across * dx).astype(int)
        xx = np.rint(x0 + s * dx + across * dy).astype(int)
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        if inside.all():
            peaks.append(image[yy, xx].max())
    peaks = np.asarray(peaks)
    return float(peaks.std() / peaks.mean()) if peaks.size > 1 and peaks.mean() > 0 else float("nan")


def knotty_trail(shape, p0, p1, peak, fwhm, rng, knots=0.5, step=6.0):
    """A knotty trail segment like the real one of issue 21 (for tests and benchmarks): light (in units of the noise sigma) from p0
    to p1 (y, x) px, both inside the image, a Gaussian cross-section of `fwhm` px, a ridge
    of median `peak` modulated along by lognormal knots every `step` px (std of log
    `knots`). Returns (light, t, d): t along from p0, d across, px, for every pixel."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    (y0, x0), (y1, x1) = p0, p1
    length = np.hypot(y1 - y0, x1 - x0)
    uy, ux = (y1 - y0) / length, (x1 - x0) / length
    t = (yy - y0) * uy + (xx - x0) * ux
    d = (xx - x0) * uy - (yy - y0) * ux
    n = int(length // step) + 3
    modulation = rng.lognormal(0, knots, n)
    along = np.interp(t, np.arange(n) * step, modulation / np.median(modulation))
    ends = np.clip(np.minimum(t, length - t) / 2 + 0.5, 0, 1)
    return peak * along * ends * np.exp(-0.5 * (d / (fwhm / 2.355)) ** 2), t, d
