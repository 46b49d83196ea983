"""The trail stage (maximask.trails, TRAIL_SEARCH): its C++ kernels against NumPy, real
trail-free frames, the shipped example's trail, diffraction spikes and trails the network
misses (knotty, ending inside the frame, faint)."""
import os

import numpy as np
import pytest
from astropy.io import fits

from maximask import kernels, trails
from maximask.simulation import synthetic
from maximask.simulation.real_trails import knotty_trail
from maximask.classes import ABBREVIATIONS
from maximask.simulation import inject

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TRL, SAT = ABBREVIATIONS.index("TRL"), ABBREVIATIONS.index("SAT")

# ------------------------------------------------------------ NumPy versions (reference)


def np_binned_significance(image, level, sigma, bin, mask=None):
    h, w = image.shape
    valid = np.isfinite(image) & np.isfinite(sigma) & (sigma > 0)
    if mask is not None:
        valid &= mask == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(valid, (image.astype(np.float64) - level) / sigma, 0.0)
    bh, bw = -(-h // bin), -(-w // bin)
    pad = ((0, bh * bin - h), (0, bw * bin - w))
    sums = np.pad(s, pad).reshape(bh, bin, bw, bin).sum(axis=(1, 3))
    counts = np.pad(valid, pad).reshape(bh, bin, bw, bin).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.sqrt(counts), np.nan)


def np_hough(z, threshold, cap, ntheta):
    rho0 = int(np.ceil(np.hypot(*z.shape)))
    acc = np.zeros((ntheta, 2 * rho0 + 1))
    with np.errstate(invalid="ignore"):
        ys, xs = np.nonzero(z > threshold)
    weights = np.minimum(z[ys, xs], cap).astype(np.float64)
    for k in range(ntheta):
        t = np.pi * k / ntheta
        r = np.floor(xs * np.cos(t) + ys * np.sin(t) + rho0 + 0.5).astype(np.int64)
        np.add.at(acc[k], r, weights)
    return acc


# ------------------------------------------------------------ kernels


@pytest.mark.parametrize("shape,bin", [((37, 53), 2), ((64, 64), 1), ((31, 17), 3), ((1, 1), 2)])
def test_binned_significance_matches_numpy(shape, bin):
    rng = np.random.default_rng(shape[0])
    image = rng.normal(100, 5, shape).astype(np.float32)
    level = np.full(shape, 99.0, np.float32) + rng.normal(0, 0.1, shape).astype(np.float32)
    sigma = rng.uniform(4, 6, shape).astype(np.float32)
    image.flat[::7] = np.nan
    sigma.flat[::11] = 0.0
    mask = (rng.random(shape) < 0.1).astype(np.uint8)
    for m in (None, mask):
        got = kernels.binned_significance(image, level, sigma, bin, m)
        ref = np_binned_significance(image, level, sigma, bin, m)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got[~np.isnan(got)], ref[~np.isnan(ref)], rtol=1e-5, atol=1e-5)


def test_binned_significance_is_unit_variance_on_noise_and_nan_without_data():
    rng = np.random.default_rng(1)
    image = rng.normal(0, 3, (400, 400)).astype(np.float32)
    z = kernels.binned_significance(image, np.zeros_like(image), np.full_like(image, 3.0), 2)
    assert abs(float(z.std()) - 1.0) < 0.02 and abs(float(z.mean())) < 0.02
    z = kernels.binned_significance(np.full((4, 4), np.nan, np.float32), np.zeros((4, 4)), np.ones((4, 4)), 2)
    assert np.isnan(z).all()
    with pytest.raises(ValueError):
        kernels.binned_significance(image, image[:10], image, 2)
    with pytest.raises(ValueError):
        kernels.binned_significance(image, image, image, 0)


@pytest.mark.parametrize("shape,ntheta", [((50, 70), 90), ((33, 33), 7), ((1, 5), 3)])
def test_hough_accumulate_matches_numpy(shape, ntheta):
    rng = np.random.default_rng(ntheta)
    z = rng.normal(0, 2, shape).astype(np.float32)
    z.flat[::5] = np.nan
    got = kernels.hough_accumulate(z, 1.5, 4.0, ntheta)
    ref = np_hough(z, 1.5, 4.0, ntheta)
    assert got.shape == ref.shape
    # a vote lands one offset apart where x cos t + y sin t sits on a half integer: rare
    close = np.isclose(got, ref, rtol=1e-5, atol=1e-4)
    assert close.mean() > 0.999
    np.testing.assert_allclose(got.sum(axis=1), ref.sum(axis=1), rtol=1e-5)


def test_hough_peaks_on_a_line_and_ignores_what_is_below_threshold():
    z = np.zeros((100, 100), np.float32)
    z[np.arange(100), np.arange(100)] = 10.0  # the diagonal: normal at 135 degrees, rho 0
    acc = kernels.hough_accumulate(z, 3.0, 5.0, 180)
    k, r = np.unravel_index(np.argmax(acc), acc.shape)
    assert k == 135 and r - (acc.shape[1] - 1) // 2 == 0
    assert acc[k, r] == pytest.approx(100 * 5.0)
    assert not kernels.hough_accumulate(np.full((10, 10), 2.0, np.float32), 3.0, 5.0, 8).any()


# ------------------------------------------------------------ real frames: nothing


def _first_image(path):
    with fits.open(path) as hdul:
        return next(h.data for h in hdul if h.data is not None and h.data.ndim == 2).astype(np.float32)


REAL_FRAMES = [os.path.join(HERE, "data", "decam_ooi_z_N2.fits"), os.path.join(HERE, "data", "sep_image.fits.gz"),
               os.path.join(HERE, "data", "gmos_sci.fits.gz"), os.path.join(ROOT, "examples", "ccdproc_a8280271.fits.fz")]


@pytest.mark.parametrize("path", REAL_FRAMES, ids=os.path.basename)
def test_real_trail_free_frames_get_no_trl(path):
    image = _first_image(path)
    out = np.zeros(image.shape, np.int16)
    segments = trails.flag_trails(image, out, "flags", [TRL, SAT], np.zeros(14))
    assert segments == [] and not out.any()


@pytest.fixture(scope="module")
def stage_maskers():
    """(on, off): maximask FLAGS with TRAIL_SEARCH Y and N, one ONNX Runtime session each
    for the whole module."""
    from maximask.masker import Masker

    return (Masker(TRAIL_SEARCH=True, VERBOSE_TYPE="QUIET", NTHREADS=2),
            Masker(TRAIL_SEARCH=False, VERBOSE_TYPE="QUIET", NTHREADS=2))


@pytest.mark.parametrize("path", REAL_FRAMES, ids=os.path.basename)
def test_real_trail_free_frames_get_no_trl_through_maximask(path, stage_maskers):
    """The same frames through the network and the stage (TRAIL_SEARCH Y, the network's
    flags left out of the search and its SP/BBG read): the output is the network's alone."""
    on, off = stage_maskers
    image = _first_image(path)
    assert np.array_equal(on.run(image), off.run(image))


def _example_trail(monkeypatch):
    """The shipped example's trail: (x0, x1), its columns at the first and last rows."""
    drawn = []
    monkeypatch.setattr(synthetic, "add_trail", lambda image, x0, x1: drawn.append((x0, x1)))
    synthetic.make_field((1024, 1024), seed=2020)
    (x0, x1), = drawn
    return x0, x1


def _distance_to_trail(ys, xs, x0, x1, height):
    """px from pixels (ys, xs) to the trail's line from (0, x0) to (height - 1, x1)."""
    centre = x0 + (x1 - x0) * ys / (height - 1)
    return np.abs(xs - centre) * (height - 1) / np.hypot(height - 1, x1 - x0)


def test_example_field_gets_its_trail_and_nothing_else(monkeypatch):
    """examples/field.fits.fz (tools/make_example.py, seed 2020) has one simulated trail
    from (0, x0) to (h - 1, x1): every flagged pixel is within 10 px of it, and the flags
    cover its whole length."""
    x0, x1 = _example_trail(monkeypatch)
    image = _first_image(os.path.join(ROOT, "examples", "field.fits.fz"))
    out = np.zeros(image.shape, np.int16)
    segments = trails.flag_trails(image, out, "flags", [TRL], np.zeros(14))
    assert len(segments) >= 1
    ys, xs = np.nonzero(out)
    assert _distance_to_trail(ys, xs, x0, x1, image.shape[0]).max() <= 10.0
    rows = np.unique(ys)
    assert rows.size >= 0.97 * image.shape[0]  # flagged over (nearly) all its length


def test_example_field_through_maximask_adds_trl_on_its_trail_only(monkeypatch, stage_maskers):
    """maximask's default (TRAIL_SEARCH Y) against N on the shipped example: the only
    pixels that differ gain the TRL bit, within 10 px of the trail; its stars, saturated
    cores, bleeds, hot column and cosmic rays keep the network's flags."""
    from maximask.masker import Masker

    x0, x1 = _example_trail(monkeypatch)
    image = _first_image(os.path.join(ROOT, "examples", "field.fits.fz"))
    on = Masker(VERBOSE_TYPE="QUIET", NTHREADS=2).run(image)  # the default: TRAIL_SEARCH Y
    off = stage_maskers[1].run(image)
    ys, xs = np.nonzero(on != off)
    assert ys.size > 0  # the stage adds to what the network flags TRL on this trail
    assert np.array_equal(on[ys, xs], off[ys, xs] | np.int16(1 << TRL))
    assert _distance_to_trail(ys, xs, x0, x1, image.shape[0]).max() <= 10.0


# ------------------------------------------------------------ spikes: nothing


def _spiky_field(seed):
    clean = synthetic.clean_field((512, 512), seed=200 + seed)
    return inject(clean, classes="SAT,SP", seed=seed)


@pytest.mark.parametrize("seed", range(16))
def test_saturated_stars_with_spikes_get_no_trl(seed):
    """Saturated stars (1.5-100 times saturation) with four-armed spikes, "+", "x" or any
    angle, arms up to hundreds of px: the stage flags none of them (no network flags)."""
    image, truth = _spiky_field(seed)
    out = np.zeros(image.shape, np.int16)
    trails.flag_trails(image, out, "flags", [TRL], np.zeros(14))
    assert not out.any()


@pytest.mark.parametrize("seed", range(16))
def test_saturated_stars_with_spikes_get_no_trl_through_maximask(seed, stage_maskers):
    """The same fields through the network and the stage (TRAIL_SEARCH Y): the output is
    the network's alone (its SAT left out of the search, its SP and BBG read)."""
    on, off = stage_maskers
    image, truth = _spiky_field(seed)
    assert np.array_equal(on.run(image), off.run(image))


# ------------------------------------------------------------ chains of sources: nothing

BBG = ABBREVIATIONS.index("BBG")


def _chain_field():
    """A held-out field of the trail benchmark (seed 9501) where five stars and galaxies
    line up over 110 px, from about (163, 386) to (213, 288)."""
    return synthetic.clean_field((512, 512), seed=9501, fwhm=4.0)


def test_a_line_through_a_chain_of_sources_gets_no_trl(stage_maskers):
    """With the network's flags of the 12 local classes alone (its SAT etc. left out of the
    search) the stage makes a segment of that chain (so the test can fail); given the
    every-class flags (BBG: the network's sources) it drops it; and maximask with
    TRAIL_SEARCH Y (default CLASSES) gives the network's output unchanged there."""
    from maximask.masker import Masker

    image = _chain_field()
    every = Masker(TRAIL_SEARCH=False, VERBOSE_TYPE="QUIET", NTHREADS=2, CLASSES=",".join(ABBREVIATIONS))
    all_flags = every.run(image)
    local = all_flags & np.int16(sum(1 << k for k in range(12)))
    classes = list(range(12))
    without = trails.flag_trails(image, local.copy(), "flags", classes, every.thresholds)
    assert len(without) == 1  # the chain, its ends within 5 px of (163, 386) and (213, 288)
    assert np.abs(np.array([without[0].y0, without[0].x0, without[0].y1, without[0].x1]) - (163, 386, 213, 288)).max() <= 5
    assert trails.flag_trails(image, local.copy(), "flags", classes, every.thresholds, also=all_flags.copy()) == []
    assert np.array_equal(stage_maskers[0].run(image), local)


@pytest.mark.parametrize("fraction,kept", [(0.0, True), (0.5, True), (0.7, False), (1.0, False)])
def test_a_segment_whose_bright_axis_the_network_calls_sources_is_dropped(fraction, kept):
    """A knotty trail with the first `fraction` of its axis flagged BBG in the every-class
    flags (`also`): kept up to MAX_SOURCE_FRACTION (0.6), dropped beyond."""
    image, t, d, length = _trail_field(1, 5.0)
    also = np.zeros(image.shape, np.int16)
    also[(np.abs(d) <= 3) & (t < fraction * length)] = 1 << BBG
    out = np.zeros(image.shape, np.int16)
    segments = trails.flag_trails(image, out, "flags", [TRL], np.zeros(14), also=also)
    assert (len(segments) == 1) is kept
    assert bool(((also >> TRL) & 1).any()) is kept  # `also` gets the TRL bit of what is kept


# ------------------------------------------------------------ trails the network misses


def _trail_field(seed, peak, length=320.0):
    rng = np.random.default_rng(seed)
    clean = synthetic.clean_field((512, 512), seed=300 + seed, fwhm=3.5)
    _, sigma = kernels.estimate_background(clean, 200)
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(150, 362, 2)
    half = length / 2 * np.array([np.sin(angle), np.cos(angle)])
    p0, p1 = (cy, cx) - half, (cy, cx) + half
    light, t, d = knotty_trail(clean.shape, p0, p1, peak, 4.5, rng)
    return (clean + light * np.median(sigma)).astype(np.float32), t, d, length


ALONG_TOLERANCE = 40.0   # px flagged beyond an end at most (running median, gap bridging)
ACROSS_TOLERANCE = 12.0  # px flagged from the axis at most (FWHM 4.5 px)


@pytest.mark.parametrize("seed,peak", [(1, 5.0), (2, 5.0), (3, 5.0), (1, 3.0), (2, 3.0)])
def test_knotty_trail_ending_inside_is_flagged_over_its_extent_only(seed, peak):
    """A 320 px knotty trail ending inside the frame, ridge 5 or 3 sigma (3 sigma: a
    faint one): TRL over >= 95% of its axis, nothing beyond the tolerances."""
    image, t, d, length = _trail_field(seed, peak)
    out = np.zeros(image.shape, np.int16)
    segments = trails.flag_trails(image, out, "flags", [TRL], np.zeros(14))
    flagged = out != 0
    assert len(segments) == 1
    axis = (np.abs(d) <= 2) & (t >= 0) & (t <= length)
    assert flagged[axis].mean() >= 0.95
    assert np.abs(d[flagged]).max() <= ACROSS_TOLERANCE
    assert t[flagged].min() >= -ALONG_TOLERANCE and t[flagged].max() <= length + ALONG_TOLERANCE


def test_noise_below_one_sigma_trail_is_not_invented():
    image, t, d, length = _trail_field(0, 0.0)  # the same field, no trail
    out = np.zeros(image.shape, np.int16)
    assert trails.flag_trails(image, out, "flags", [TRL], np.zeros(14)) == [] and not out.any()


def test_segments_mask_is_a_band_not_the_whole_line():
    seg = trails.Segment(50.0, 20.0, 50.0, 120.0, fwhm=4.0, significance=10.0, half_width=3.0)
    mask = trails.segments_mask((100, 200), [seg])
    ys, xs = np.nonzero(mask)
    assert xs.min() == 20 - int(trails.MARGIN) and xs.max() == 120 + int(trails.MARGIN)
    assert ys.min() == 50 - 6 and ys.max() == 50 + 6  # half_width + MARGIN


def test_flag_trails_writes_each_output_type():
    image, t, d, length = _trail_field(1, 5.0)
    classes = [TRL, SAT]
    flags = np.zeros(image.shape, np.int16)
    trails.flag_trails(image, flags, "flags", classes, np.zeros(14))
    band = flags != 0
    assert np.all(flags[band] == 1 << TRL)
    masks = np.zeros((2,) + image.shape, np.uint8)
    trails.flag_trails(image, masks, "binary", classes, np.zeros(14))
    assert np.array_equal(masks[0] == 1, band) and not masks[1].any()
    proba = np.zeros((2,) + image.shape, np.float32)
    trails.flag_trails(image, proba, "proba", classes, np.full(14, 0.5))
    assert np.array_equal(proba[0] == 1.0, band)
    weight = np.ones(image.shape, np.uint8)
    trails.flag_trails(image, weight, "weight", classes, np.zeros(14))
    assert np.array_equal(weight == 0, band)
    untouched = np.zeros(image.shape, np.int16)
    assert trails.flag_trails(image, untouched, "flags", [SAT], np.zeros(14)) == [] and not untouched.any()


def test_masker_with_trail_search_flags_the_trail_and_says_so(tmp_path):
    """Through maximask (network + stage): the knotty trail the network does not flag is
    flagged TRL; the header holds MM_TRAIL and MM_NTRL; without TRAIL_SEARCH neither card."""
    from maximask.masker import Masker

    image, t, d, length = _trail_field(1, 5.0)
    path = tmp_path / "trail.fits"
    fits.PrimaryHDU(image).writeto(path)
    on = Masker(TRAIL_SEARCH=True, VERBOSE_TYPE="QUIET", NTHREADS=2, OUTPUT_SUFFIX=".on.fits")
    off = Masker(TRAIL_SEARCH=False, VERBOSE_TYPE="QUIET", NTHREADS=2, OUTPUT_SUFFIX=".off.fits")
    with fits.open(on.run_file(str(path))) as hdul:
        header, flags_on = hdul[0].header, hdul[0].data
    with fits.open(off.run_file(str(path))) as hdul:
        header_off, flags_off = hdul[0].header, hdul[0].data
    axis = (np.abs(d) <= 2) & (t >= 0) & (t <= length)
    assert header["MM_TRAIL"] is True and header["MM_NTRL"] == 1
    assert "MM_TRAIL" not in header_off and "MM_NTRL" not in header_off
    assert ((flags_on[axis] >> TRL) & 1).mean() >= 0.95
    assert ((flags_off[axis] >> TRL) & 1).mean() < 0.5  # the network alone misses most of it
    # the stage only adds TRL: every other bit is the network's
    assert np.array_equal(flags_on & ~np.int16(1 << TRL), flags_off & ~np.int16(1 << TRL))
