"""The trail stage: straight segments found in the image -> TRL, after the network.

    segments = find_trails(image, level, sigma, excluded=saturated)   # list of Segment
    mask = segments_mask(image.shape, segments)                          # bool (h, w)

The published network misses real satellite trails that are knotty or end inside the frame
(issue 21: 0% TRL on a real 9-sigma trail). This stage looks for them in the image itself:

1. the image, background-subtracted and in noise units, is binned BIN x BIN
   (``kernels.binned_significance``: unit variance in pure noise); pixels the caller
   excludes (saturated, defects the network flagged) are left out; what the background
   mesh left (corner swings on small images) is removed with medians over FLAT_BLOCK
   binned px, the noise rescaled by their median absolute deviation;
2. the binned pixels above VOTE_SIGMA vote, with weight min(z, VOTE_CAP) so bright stars do
   not dominate, into a Hough accumulator (``kernels.hough_accumulate``); each cell is
   scored against the votes a line of its length through the frame gets by chance;
3. each of the best CANDIDATES lines is followed: the ridge (mean over +-1 binned px across
   the line) is smoothed by a running median over SMOOTH binned px along it (a star on
   the line does not raise it) and compared with the same ridge
   on parallel lines beside it (their median at each position: the local background);
   the runs above RUN_SIGMA times the noise of those lines,
   merged across gaps of up to GAP px (knots, glints), give the segment's extent;
4. a segment is kept when it is long (>= MIN_LENGTH px), mostly above noise (>= COVERAGE
   of its length), even (the upper quartile of its unsmoothed ridge within SPREAD times
   the lower: a line through a chain of stars and their wings is not), a ridge of
   consistent width, and not peaked: a diffraction spike (or a
   galaxy) falls steeply away from its star's core on each side, so a segment whose outer
   third is below DECLINE times its inner third, on every arm from its brightest point, is
   rejected, and so is one with a star's core on its line (saturated, left out, or above
   CORE_SIGMA) from which the ridge falls faster than r^SPIKE_SLOPE (spikes fall as r^-2,
   a trail crossing a star does not fall); so are segments along a pixel axis and a binned pixel wide (bad columns);
5. TRL is flagged within MARGIN px of where the median cross profile stands above noise
   (3 sigma, and a tenth of its centre) about the segment's axis, over its extent (+-MARGIN),
   never along the whole line across the frame.

Everything is in pixels of the full image unless said "binned".
"""
import functools
import warnings
from dataclasses import dataclass

import numpy as np

from . import kernels
from .classes import ABBREVIATIONS

BIN = 2              # binning of the significance map
VOTE_SIGMA = 2.5     # binned significance of the pixels that vote
VOTE_CAP = 6.0       # the largest vote of one binned pixel
MIN_SCORE = 5.0      # Hough score (sigma of chance votes) of a candidate line
CANDIDATES = 40      # candidate lines followed, best first
MIN_LENGTH = 100.0   # px
RUN_SIGMA = 3.0      # smoothed ridge above this many noise sigma: on the trail
COVERAGE = 0.7       # fraction of the extent with the smoothed ridge above 2 sigma
GAP = 24.0           # px of ridge below noise bridged inside one segment
SMOOTH = 16          # binned px of the running median along the line
HALF_WIDTH = 13      # binned px sampled on each side of the line
SIDES = (8, 12)      # binned px: the parallel lines that tell the noise
MAX_EXCLUDED = 0.1   # largest fraction of a segment's axis on left-out pixels
SPREAD = 5.0         # largest ratio of the ridge's upper to lower quartile along a trail
CORE_SIGMA = 100.0   # binned significance of a star's core on a segment's axis
SPIKE_SLOPE = -0.5   # the ridge falling faster than r^this from a core on it: a spike
MAX_SPIKE_FRACTION = 0.5  # a segment with more of its pixels flagged SP is a spike
MAX_SOURCE_FRACTION = 0.6  # a segment whose bright axis is more than this BBG is a chain of sources
SOURCE_SIGMA = 3.0   # axis pixels above this many noise sigma are the bright axis
DECLINE = 0.3        # outer / inner ridge ratio below which an arm is a spike's
EXCLUDE_GROW = 1     # px by which the excluded pixels are grown
FLAT_BLOCK = 32      # binned px of the blocks of the local background and noise
MARGIN = 3.0         # px flagged beyond the ridge's FWHM and the segment's ends
AXIS_DEGREES = 1.0   # a segment this close to a pixel axis is taken for a detector's line
#: classes whose flagged pixels the search leaves out (the network knows them better)
EXCLUDED_CLASSES = ("HCL", "DCL", "SAT", "OV")
TRL = ABBREVIATIONS.index("TRL")


@dataclass(frozen=True)
class Segment:
    """A straight trail segment: ends (y0, x0) and (y1, x1) in px (pixel centres at
    integers), ridge FWHM in px, median ridge significance (binned sigma) and the half
    width (px) over which the median cross profile stands above noise."""

    y0: float
    x0: float
    y1: float
    x1: float
    fwhm: float
    significance: float
    half_width: float = 0.0

    @property
    def length(self):
        return float(np.hypot(self.y1 - self.y0, self.x1 - self.x0))

    @property
    def angle(self):
        """Direction in degrees in [0, 180), from the x axis towards y."""
        return float(np.degrees(np.arctan2(self.y1 - self.y0, self.x1 - self.x0)) % 180.0)


def _line_lengths(thetas, rhos, h, w):
    """Length (binned px) of each line x cos t + y sin t = rho inside [-0.5, w - 0.5] x
    [-0.5, h - 0.5]: (len(thetas), len(rhos))."""
    c, s = np.cos(thetas)[:, None], np.sin(thetas)[:, None]
    ux, uy = -s, c  # direction along the line; the foot of the normal is rho (c, s)
    px, py = rhos[None, :] * c, rhos[None, :] * s
    lo = np.full(np.broadcast(px, c).shape, -np.inf)
    hi = np.full_like(lo, np.inf)
    for p, u, a, b in ((px, ux, -0.5, w - 0.5), (py, uy, -0.5, h - 0.5)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (a - p) / u, (b - p) / u
        flat = np.abs(u) < 1e-12
        inside = (p >= a) & (p <= b)
        t1 = np.where(flat, np.where(inside, -np.inf, np.inf), t1)
        t2 = np.where(flat, np.where(inside, np.inf, -np.inf), t2)
        lo = np.maximum(lo, np.minimum(t1, t2))
        hi = np.minimum(hi, np.maximum(t1, t2))
    return np.maximum(hi - lo, 0.0)


@functools.lru_cache(maxsize=8)
def _hough_lengths(ntheta, nrho, h, w):
    """_line_lengths of every Hough cell (ntheta, nrho) of an h x w binned image, read-only:
    the same for every HDU of a camera, so computed once per shape (0.3 s at 2048 x 2048)."""
    thetas = np.pi * np.arange(ntheta) / ntheta
    lengths = _line_lengths(thetas, np.arange(nrho) - (nrho - 1) // 2, h, w)
    lengths.flags.writeable = False
    return lengths


def _candidates(z, ntheta):
    """Candidate lines (theta, rho) in binned px, best Hough score first."""
    h, w = z.shape
    acc = kernels.hough_accumulate(z, VOTE_SIGMA, VOTE_CAP, ntheta)
    votes = z[z > VOTE_SIGMA]
    valid = max(int(np.isfinite(z).sum()), 1)
    if votes.size == 0:
        return []
    weights = np.minimum(votes, VOTE_CAP).astype(np.float64)
    mean, second = weights.sum() / valid, (weights ** 2).sum() / valid
    thetas = np.pi * np.arange(ntheta) / ntheta
    rho0 = (acc.shape[1] - 1) // 2
    rhos = np.arange(acc.shape[1]) - rho0
    lengths = _hough_lengths(ntheta, acc.shape[1], h, w)
    score = (acc - mean * lengths) / np.sqrt(second * np.maximum(lengths, 1.0))
    score[lengths < MIN_LENGTH / BIN] = 0.0
    found = []
    dt, dr = max(ntheta // 128, 2), 4  # neighbourhood taken by one peak
    for _ in range(CANDIDATES):
        k, r = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[k, r] < MIN_SCORE:
            break
        found.append((thetas[k], float(rhos[r])))
        ks = np.arange(k - dt, k + dt + 1) % ntheta
        wrapped = (np.arange(k - dt, k + dt + 1) < 0) | (np.arange(k - dt, k + dt + 1) >= ntheta)
        for kk, flip in zip(ks, wrapped):  # theta wraps to theta - pi with rho -> -rho
            rc = 2 * rho0 - r if flip else r
            score[kk, max(rc - dr, 0):rc + dr + 1] = 0.0
    return found


def _sample(z, ys, xs):
    """Bilinear samples of z at (ys, xs) (binned px); NaN outside or next to NaN."""
    h, w = z.shape
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    fy, fx = ys - y0, xs - x0
    out = np.full(ys.shape, np.nan, dtype=np.float64)
    ok = (y0 >= 0) & (x0 >= 0) & (y0 < h - 1) & (x0 < w - 1)
    y0, x0, fy, fx = y0[ok], x0[ok], fy[ok], fx[ok]
    out[ok] = (z[y0, x0] * (1 - fy) * (1 - fx) + z[y0, x0 + 1] * (1 - fy) * fx
               + z[y0 + 1, x0] * fy * (1 - fx) + z[y0 + 1, x0 + 1] * fy * fx)
    return out


def _running_median(values, n):
    """Median over a centred window of n samples, NaNs left out (NaN where fewer than a
    third are finite): a star on the line moves it less than half the window would."""
    half = n // 2
    padded = np.concatenate([np.full(half, np.nan), values, np.full(n - 1 - half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)
    finite = np.isfinite(windows)
    ordered = np.sort(np.where(finite, windows, np.inf), axis=1)  # NaNs last
    counts = finite.sum(axis=1)
    out = np.full(values.shape, np.nan)
    ok = counts > n / 3
    rows = np.flatnonzero(ok)
    lo, hi = (counts[ok] - 1) // 2, counts[ok] // 2
    out[ok] = 0.5 * (ordered[rows, lo] + ordered[rows, hi])
    return out


def _nanmean(a, axis):
    finite = np.isfinite(a)
    counts = finite.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(finite, a, 0.0).sum(axis=axis) / counts, np.nan)


def _nanmedian(a):
    """Median over axis 0 of the finite values (NaN where none)."""
    out = np.full(a.shape[1], np.nan)
    for j in range(a.shape[1]):
        column = a[:, j][np.isfinite(a[:, j])]
        if column.size:
            out[j] = np.median(column)
    return out


def _runs(flags):
    """(start, stop) index pairs of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


class _Line:
    """Samples of z on a grid along and across a line (binned px)."""

    def __init__(self, z, theta, rho, t0=None, t1=None):
        h, w = z.shape
        self.c, self.s = np.cos(theta), np.sin(theta)
        self.theta, self.rho = theta, rho
        if t0 is None:
            length = _line_lengths(np.array([theta]), np.array([rho]), h, w)[0, 0]
            # the foot of the normal, then the t range inside the frame
            ts = np.arange(-np.hypot(h, w) - 1, np.hypot(h, w) + 1, 1.0)
            x, y = rho * self.c - ts * self.s, rho * self.s + ts * self.c
            inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
            if not inside.any() or length <= 0:
                t0, t1 = 0.0, -1.0
            else:
                t0, t1 = ts[inside][0], ts[inside][-1]
        self.t = np.arange(t0, t1 + 0.5, 1.0)
        self.d = np.arange(-HALF_WIDTH, HALF_WIDTH + 0.25, 0.5)
        tt, dd = np.meshgrid(self.t, self.d, indexing="ij")
        xs = (rho + dd) * self.c - tt * self.s
        ys = (rho + dd) * self.s + tt * self.c
        self.p = _sample(z, ys, xs)  # (len(t), len(d))
        axis = self.d == 0
        ya, xa = ys[:, axis][:, 0], xs[:, axis][:, 0]
        inside = (ya >= 0) & (xa >= 0) & (ya <= h - 1) & (xa <= w - 1)
        # a star's core on the axis: left out (saturated) or very bright
        with np.errstate(invalid="ignore"):
            self.core = inside & (~np.isfinite(self.p[:, axis][:, 0]) | (self.p[:, axis][:, 0] >= CORE_SIGMA))

    def band(self, lo, hi):
        """Mean over t of the samples with lo <= |d| <= hi (or d in [lo, hi] if lo < 0)."""
        sel = (self.d >= lo) & (self.d <= hi) if lo < 0 else (np.abs(self.d) >= lo) & (np.abs(self.d) <= hi)
        return _nanmean(self.p[:, sel], axis=1)

    def point(self, t):
        """(y, x) in binned px of the position t on the axis."""
        return self.rho * self.s + t * self.c, self.rho * self.c - t * self.s


def _width(profile, d, level=None):
    """FWHM (binned px) of a cross profile about d = 0: the span above half its centre
    (above `level` if given)."""
    central = profile[np.abs(d) <= 0.5]
    central = central[np.isfinite(central)]
    centre = central.mean() if central.size else np.nan
    if not centre > 0:
        return np.nan
    above = np.where(np.isfinite(profile), profile, 0.0) >= (0.5 * centre if level is None else level)
    mid = int(np.argmin(np.abs(d)))
    lo = mid
    while lo > 0 and above[lo - 1]:
        lo -= 1
    hi = mid
    while hi < len(d) - 1 and above[hi + 1]:
        hi += 1
    return (hi - lo + 1) * (d[1] - d[0])


def _declines(ridge, peak):
    """True when the ridge falls below DECLINE of its inner level on every arm from `peak`
    that is long enough to tell (a spike's r^-2 fall, a galaxy's profile)."""
    verdicts = []
    for arm in (ridge[peak::-1], ridge[peak:]):
        arm = arm[np.isfinite(arm)]
        if arm.size < 12:
            continue
        third = arm.size // 3
        inner, outer = np.median(arm[:third]), np.median(arm[-third:])
        verdicts.append(inner > 0 and outer < DECLINE * inner)
    return bool(verdicts) and all(verdicts)


def _is_spike(line, ridge, i0, i1):
    """True when a star's core lies on the segment's line (any of them) and the ridge
    falls with the distance r from it as a power steeper than SPIKE_SLOPE:
    a diffraction spike, whose light falls as r^-2, where a trail crossing a star stays."""
    ok = np.isfinite(ridge) & (ridge > 0)
    for a, b in _runs(line.core):
        core = 0.5 * (line.t[a] + line.t[b - 1])  # the run's middle: the star's centre
        r = np.abs(line.t[i0:i1] - core)
        use = ok & (r >= 4)
        if use.sum() >= 8 and np.polyfit(np.log(r[use]), np.log(ridge[use]), 1)[0] < SPIKE_SLOPE:
            return True
    return False


def _follow(z, theta, rho):
    """The kept segments on one candidate line: list of (line, t0, t1, fwhm_b, ridge)."""
    found = []
    line = _Line(z, theta, rho)
    if line.t.size < MIN_LENGTH / BIN:
        return found
    for t0, t1 in _extents(line):
        # refine the axis on the segment: the ridge's centroid across, fitted along
        sub = _Line(z, theta, rho, line.t[t0] - GAP / BIN, line.t[t1 - 1] + GAP / BIN)
        inner = np.abs(sub.d) <= 4
        weights = np.clip(np.nan_to_num(sub.p[:, inner]), 0, None)
        total = weights.sum(axis=1)
        good = total > 3 * inner.sum() ** 0.5
        if good.sum() >= 8:
            centres = (weights * sub.d[inner]).sum(axis=1)[good] / total[good]
            slope, offset = np.polyfit(sub.t[good], centres, 1)
            # the fitted axis through its points at both ends of the samples
            (ya, xa), (yb, xb) = ([p + (offset + slope * t) * n for p, n in zip(sub.point(t), (sub.s, sub.c))]
                                  for t in (sub.t[0], sub.t[-1]))
            theta2 = np.arctan2(xa - xb, yb - ya) % np.pi  # the normal of direction (yb - ya, xb - xa)
            c2, s2 = np.cos(theta2), np.sin(theta2)
            sub = _Line(z, theta2, xa * c2 + ya * s2)  # the whole line: its cores count
        for s0, s1 in _extents(sub):
            kept = _verify(sub, s0, s1)
            if kept is not None:
                found.append(kept)
    return found


def _contrast(line):
    """The ridge against its surroundings along the line: (smoothed, raw, sigma).

    smoothed: the running median (SMOOTH binned px) of the ridge (mean over +-1 binned px
    across) minus that of the parallel lines SIDES binned px away on both sides, their
    median at each position (a star or a halo beside the line raises one side, not the
    ridge's background); raw: the same before the running median of the ridge; sigma: the
    noise of `smoothed`, from each side line against the others (1.4826 MAD).
    """
    sides = np.array([_running_median(_nanmean(line.p[:, np.abs(line.d - o) <= 1], axis=1), SMOOTH)
                      for off in SIDES for o in (-off, off)])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # positions with no sample: NaN
        background = np.nanmedian(sides, axis=0) if np.isfinite(sides).any() else np.full(line.t.shape, np.nan)
        others = np.array([np.nanmedian(np.delete(sides, k, axis=0), axis=0) for k in range(len(sides))])
    spread = (sides - others).ravel()
    spread = spread[np.isfinite(spread)]
    if spread.size < 16:
        return None, None, np.nan
    sigma = max(1.4826 * float(np.median(np.abs(spread - np.median(spread)))), 0.05)
    raw = line.band(0, 1) - background
    return _running_median(line.band(0, 1), SMOOTH) - background, raw, sigma


def _extents(line):
    """Index ranges [i0, i1) of the line's t where the smoothed ridge stands above noise."""
    ridge, _, sigma = _contrast(line)
    if not np.isfinite(sigma):
        return []
    above = np.nan_to_num(ridge, nan=-np.inf) > RUN_SIGMA * sigma
    runs = _runs(above)
    merged = []
    for start, stop in runs:
        if merged and start - merged[-1][1] <= GAP / BIN:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged if b - a >= MIN_LENGTH / BIN]


def _verify(line, i0, i1):
    """(line, t0, t1, fwhm_b, ridge) when the extent [i0, i1) is a trail, else None."""
    ridge, raw, sigma = _contrast(line)
    if not np.isfinite(sigma):
        return None
    ridge, raw = ridge[i0:i1], raw[i0:i1]
    if np.mean(~np.isfinite(line.p[i0:i1, line.d == 0])) > MAX_EXCLUDED:
        return None  # a line through what was left out (stars the network flagged), not a trail
    if np.mean(np.nan_to_num(ridge) > 2 * sigma) < COVERAGE:
        return None
    raw = raw[np.isfinite(raw)]
    q25, q75 = np.quantile(raw, (0.25, 0.75)) if raw.size else (0.0, 0.0)
    if not q25 > 0 or q75 > SPREAD * q25:  # a chain of stars and their wings, not a ridge
        return None
    profile = _nanmedian(line.p[i0:i1])  # medians: stars along the line do not count
    centre = np.nanmean(profile[np.abs(line.d) <= 1])
    side = np.nanmean(profile[(np.abs(line.d) >= 7)])
    if not centre > 0 or side > 0.5 * centre:  # no ridge: a gradient or a blob
        return None
    # consistent width: chunks of the segment have widths near the whole one's
    fwhm = _width(profile, line.d)
    chunk = 16
    widths = [_width(_nanmedian(line.p[a:a + chunk]), line.d)
              for a in range(i0, i1 - chunk // 2, chunk)]
    widths = np.array([x for x in widths if np.isfinite(x)])
    if widths.size and np.mean((widths > 2.5 * fwhm) | (widths < fwhm / 2.5)) > 1 - COVERAGE:
        return None
    if _declines(ridge, int(np.nanargmax(ridge))) or _is_spike(line, ridge, i0, i1):
        return None
    # across: as far as the median profile stands 3 sigma above noise (the median of n
    # unit-variance samples has sigma 1.25 / sqrt(n)), and above a tenth of its centre
    level = max(3 * 1.25 * sigma * np.sqrt(SMOOTH / max(i1 - i0, 1)), 0.1 * centre)
    half = _width(profile, line.d, level) / 2
    return line, line.t[i0], line.t[i1 - 1], fwhm, float(np.nanmedian(ridge)), half


def _flatten(z, block=FLAT_BLOCK):
    """z minus its median in blocks of `block` binned px, over 1.4826 times their median
    absolute deviation, both interpolated bilinearly between block centres: float32.

    The background mesh (BACK_SIZE px, a spline between mesh centres) can leave gradients of
    tens of sigma in the corners of a small image; over a line they add up to a candidate.
    """
    h, w = z.shape
    ny, nx = max(int(round(h / block)), 1), max(int(round(w / block)), 1)
    ey, ex = np.linspace(0, h, ny + 1).astype(int), np.linspace(0, w, nx + 1).astype(int)
    med = np.zeros((ny, nx))
    mad = np.ones((ny, nx))
    for i in range(ny):
        for j in range(nx):
            v = z[ey[i]:ey[i + 1], ex[j]:ex[j + 1]]
            v = v[np.isfinite(v)]
            if v.size >= 16:
                med[i, j] = np.median(v)
                mad[i, j] = max(1.4826 * np.median(np.abs(v - med[i, j])), 0.3)
            else:
                med[i, j], mad[i, j] = np.nan, np.nan
    for grid, fill in ((med, 0.0), (mad, 1.0)):  # blocks without data take the others' median
        bad = ~np.isfinite(grid)
        grid[bad] = np.median(grid[~bad]) if (~bad).any() else fill

    def axis(n, edges):  # each pixel between two block centres: lower index and weight
        centres = 0.5 * (edges[:-1] + edges[1:]) - 0.5
        pos = np.interp(np.arange(n), centres, np.arange(len(centres)))
        lo = np.minimum(np.floor(pos).astype(int), max(len(centres) - 2, 0))
        return lo, np.minimum(lo + 1, len(centres) - 1), pos - lo

    (y0, y1, fy), (x0, x1, fx) = axis(h, ey), axis(w, ex)
    fy, fx = fy[:, None], fx[None, :]

    def upsample(grid):
        return ((grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx) * (1 - fy)
                + (grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx) * fy)

    return ((z - upsample(med)) / upsample(mad)).astype(np.float32)


def _to_pixels(yb, xb):
    """Binned coordinates to full-image pixel coordinates (block centres)."""
    return (yb + 0.5) * BIN - 0.5, (xb + 0.5) * BIN - 0.5


def find_trails(image, level=None, sigma=None, excluded=None, back_size=200, ntheta=None):
    """Straight trail segments of an image.

    image: (h, w) pixel values (ADU). level, sigma: its background level and noise maps
    (ADU, (h, w)); None computes them as the network's preprocessing does
    (``kernels.estimate_background`` with back_size). excluded: optional (h, w), nonzero
    where pixels must not count (saturated pixels, defects; grown by EXCLUDE_GROW px). ntheta: Hough angles (default:
    the binned image's larger side, at least 180). Returns a list of :class:`Segment`,
    longest first, overlapping ones merged.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 2 or min(image.shape) < 2 * BIN:
        return []
    if level is None or sigma is None:
        level, sigma = kernels.estimate_background(image, back_size)
    # The mesh's spline can swing to sigma <= 0 beside a bright wide trail on a small
    # image: its edge would look like a line. Noise is never taken below half the median.
    positive = sigma[np.isfinite(sigma) & (sigma > 0)]
    if positive.size:
        sigma = np.maximum(sigma, np.float32(0.5 * np.median(positive)))
    if excluded is not None:  # the wings of saturated stars and bleeds go with them
        excluded = _grow(np.asarray(excluded, dtype=bool), EXCLUDE_GROW)
    z = kernels.binned_significance(image, level, sigma, BIN, excluded)
    if min(z.shape) < 8 or not np.isfinite(z).any():
        return []
    z = _flatten(z)
    ntheta = int(ntheta or max(max(z.shape), 180))
    segments = []
    candidates = _candidates(z, ntheta)
    for theta, rho in candidates:
        for line, t0, t1, fwhm, ridge, half in _follow(z, theta, rho):
            (ya, xa), (yb, xb) = _to_pixels(*line.point(t0)), _to_pixels(*line.point(t1))
            segment = Segment(float(ya), float(xa), float(yb), float(xb), float(fwhm * BIN), ridge,
                              float(max(half * BIN, fwhm * BIN / 2)))
            if not any(_overlaps(segment, other) for other in segments):
                segments.append(segment)
    return sorted(_drop_patterns(segments, image.shape), key=lambda s: -s.length)


def _drop_patterns(segments, shape):
    """Leave out segments within AXIS_DEGREES of a pixel axis (bad columns and rows,
    bleed trails, overscan edges, a spectrum's sky lines, "+" spikes: far more common there
    than trails, which fall there 1% of the time) and, where three or more of those are
    found, every segment within 5 degrees of that axis (the rest of the pattern)."""
    kept, axes = [], []
    for seg in segments:
        for axis in (0.0, 90.0):
            if min(abs(seg.angle - axis), 180.0 - abs(seg.angle - axis)) < AXIS_DEGREES:
                axes.append(axis)
                break
        else:
            kept.append(seg)
    for axis in (0.0, 90.0):
        if axes.count(axis) >= 3:
            kept = [s for s in kept if min(abs(s.angle - axis), 180.0 - abs(s.angle - axis)) >= 5.0]
    return kept


def saturated_pixels(image, level, sigma, radius=2):
    """bool (h, w): the plateau at the image's maximum, when it looks like saturation (at
    least 4 pixels within 1e-4 of a maximum 50 sigma above the background), grown by
    `radius` px; all False otherwise."""
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=bool)
    top = float(np.max(image[finite]))
    with np.errstate(invalid="ignore"):
        plateau = image >= top - max(1e-4 * abs(top), 1e-3)
    if plateau.sum() < 4 or not top > float(np.median(level)) + 50 * float(np.median(sigma)):
        return np.zeros(image.shape, dtype=bool)
    return _grow(plateau, radius)


def _grow(mask, radius):
    """Dilation of a bool mask by a (2 radius + 1) square, separably."""
    grown = mask.copy()
    for axis in (0, 1):
        src = grown.copy()
        n = src.shape[axis]
        for shift in range(1, radius + 1):
            if shift >= n:
                break
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - shift), slice(shift, n)
            grown[tuple(lo)] |= src[tuple(hi)]
            grown[tuple(hi)] |= src[tuple(lo)]
    return grown


def network_flags(out, mode, classes, thresholds, names=EXCLUDED_CLASSES):
    """bool (h, w): pixels the masker's output `out` flags with one of the classes `names`
    (None when the output cannot tell: WEIGHT, or none of them selected).

    mode: "flags", "binary" or "proba" (maximask.masker.OUTPUT_TYPES); classes: the class
    indices of the output's planes; thresholds: the 14 class thresholds (for "proba")."""
    wanted = [ABBREVIATIONS.index(a) for a in names]
    planes = [(p, k) for p, k in enumerate(classes) if k in wanted]
    if mode == "weight" or not planes:
        return None
    if mode == "flags":
        bits = sum(1 << int(k) for _, k in planes)
        return (out & bits) != 0
    if mode == "binary":
        return np.any([out[p] != 0 for p, _ in planes], axis=0)
    return np.any([out[p] > thresholds[k] for p, k in planes], axis=0)


def flag_trails(image, out, mode, classes, thresholds, level=None, sigma=None, back_size=200, also=None):
    """The trail stage on one masked plane: find segments in `image` and flag TRL in `out`
    (the masker's output of that plane, modified in place) over them. Returns the segments.

    image: (h, w) ADU. out, mode, classes, thresholds: as :func:`network_flags`; TRL must
    be among `classes` (else nothing is searched). FLAGS gets the TRL bit, MASKS 1 in the
    TRL plane, PROBA probability 1 there, WEIGHT 0. Saturated pixels (the image's plateau
    and the network's SAT) and the network's HCL, DCL and OV pixels are left out of the
    search; a segment more than MAX_SPIKE_FRACTION of whose pixels the network flags SP is
    dropped (the real trail of issue 21 had 21% SP), and so is one whose axis, where it
    stands above SOURCE_SIGMA, the network flags BBG (stars, galaxies) for more than
    MAX_SOURCE_FRACTION: a line through a chain of sources (0.93-0.95 on such chains,
    at most 0.32 on simulated and knotty trails, issue 21). level, sigma: the background
    maps if already computed (else computed here).
    also: optional (h, w) int FLAGS array of every class, as the network flagged them (the
    masker's, with check-images or TRAIL_SEARCH): SP and BBG are read there when `out`
    lacks them, and it gets the TRL bit too.
    """
    classes = [int(k) for k in classes]
    if TRL not in classes:
        return []
    image = np.ascontiguousarray(image, dtype=np.float32)
    if level is None or sigma is None:
        level, sigma = kernels.estimate_background(image, back_size)
    excluded = saturated_pixels(image, level, sigma)
    flagged = network_flags(out, mode, classes, thresholds)
    if flagged is not None:
        excluded |= flagged
    segments = find_trails(image, level, sigma, excluded)
    spikes, sources = (_network_class(out, mode, classes, thresholds, also, name) for name in ("SP", "BBG"))
    if spikes is not None:  # the network's spikes: a segment mostly on them is one
        segments = [seg for seg in segments if spikes[segments_mask(image.shape, [seg])].mean() <= MAX_SPIKE_FRACTION]
    if sources is not None:  # the network's sources: a segment whose bright axis is mostly on them
        segments = [seg for seg in segments
                    if _source_fraction(seg, image, level, sigma, sources) <= MAX_SOURCE_FRACTION]
    if not segments:
        return segments
    mask = segments_mask(image.shape, segments)
    plane = classes.index(TRL)
    if mode == "flags":
        out[mask] |= out.dtype.type(1 << TRL)
    elif mode == "binary":
        out[plane][mask] = 1
    elif mode == "proba":
        out[plane][mask] = 1.0
    else:
        out[mask] = 0
    if also is not None:
        also[mask] |= also.dtype.type(1 << TRL)
    return segments


def _network_class(out, mode, classes, thresholds, also, name):
    """bool (h, w): where the network flags class `name`, from `out` when it holds that
    class, else from the every-class FLAGS array `also`; None when neither tells."""
    flagged = network_flags(out, mode, classes, thresholds, (name,))
    if flagged is None and also is not None:
        flagged = (also & (1 << ABBREVIATIONS.index(name))) != 0
    return flagged


def _source_fraction(segment, image, level, sigma, sources):
    """Fraction of a segment's axis pixels above SOURCE_SIGMA noise sigma (image, level,
    sigma: ADU, (h, w)) that are in `sources` (bool); 0 when none is above. Only the axis
    pixels are put in noise units."""
    n = max(int(segment.length), 2)
    t = np.linspace(0.0, 1.0, n)
    h, w = image.shape
    ys = np.clip(np.rint(segment.y0 + t * (segment.y1 - segment.y0)).astype(int), 0, h - 1)
    xs = np.clip(np.rint(segment.x0 + t * (segment.x1 - segment.x0)).astype(int), 0, w - 1)
    z = (image[ys, xs] - level[ys, xs]) / np.maximum(sigma[ys, xs], np.float32(1e-30))
    bright = z > SOURCE_SIGMA
    return float(sources[ys, xs][bright].mean()) if bright.any() else 0.0


def _overlaps(a, b):
    """True when segment a lies mostly within b's flagged band (the same trail found twice)."""
    ts = np.linspace(0, 1, 21)
    ys, xs = a.y0 + ts * (a.y1 - a.y0), a.x0 + ts * (a.x1 - a.x0)
    t, d = _coordinates(b, ys, xs)
    inside = (np.abs(d) <= b.half_width + MARGIN) & (t >= -MARGIN) & (t <= b.length + MARGIN)
    return inside.mean() > 0.5


def _coordinates(segment, ys, xs):
    """(t along from the first end, d across) of points (ys, xs), px."""
    length = max(segment.length, 1e-9)
    uy, ux = (segment.y1 - segment.y0) / length, (segment.x1 - segment.x0) / length
    dy, dx = ys - segment.y0, xs - segment.x0
    return dy * uy + dx * ux, dx * uy - dy * ux


def segments_mask(shape, segments, out=None):
    """bool (h, w): True within half_width + MARGIN px of each segment's axis, from MARGIN px
    before its first end to MARGIN px after its last (a stadium-free band, not the line)."""
    h, w = shape
    out = np.zeros(shape, dtype=bool) if out is None else out
    for seg in segments:
        half = seg.half_width + MARGIN
        reach = half + MARGIN
        y0 = int(max(np.floor(min(seg.y0, seg.y1) - reach), 0))
        y1 = int(min(np.ceil(max(seg.y0, seg.y1) + reach) + 1, h))
        x0 = int(max(np.floor(min(seg.x0, seg.x1) - reach), 0))
        x1 = int(min(np.ceil(max(seg.x0, seg.x1) + reach) + 1, w))
        if y1 <= y0 or x1 <= x0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        t, d = _coordinates(seg, ys, xs)
        out[y0:y1, x0:x1] |= (np.abs(d) <= half) & (t >= -MARGIN) & (t <= seg.length + MARGIN)
    return out
