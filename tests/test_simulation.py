"""The contaminant simulator: each recipe against the paper's parameters (§2.1), the truth
rules, the API contract and seeding. Small images only."""
import dataclasses

import numpy as np
import pytest

from maximask import kernels
from maximask.classes import ABBREVIATIONS
from maximask.simulation import inject, parameter_names, parse_classes
from maximask.simulation import cosmics, defects, fringes, nebulosity, persistence, raster, saturation, trails
from maximask.simulation.scene import Scene
from maximask.simulation.synthetic import clean_field

SHAPE = (200, 240)
IDX = {a: k for k, a in enumerate(ABBREVIATIONS)}


@pytest.fixture(scope="module")
def clean():
    return clean_field(SHAPE, seed=7, fwhm=3.0, sky=800.0)


@pytest.fixture(scope="module")
def scene(clean):
    return Scene.measure(clean, saturation=40000.0, fwhm=3.0)


def brute_dilate(mask, rows):
    out = np.zeros_like(mask)
    h, w = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        for dy, hw in rows.items():
            if 0 <= y + dy < h:
                out[y + dy, max(x - hw, 0):x + hw + 1] = True
    return out


# ----------------------------------------------------------------------------- API


def test_inject_contract(clean):
    before = clean.copy()
    image, truth = inject(clean, seed=3)
    assert image.dtype == np.float32 and image.shape == clean.shape
    assert truth.dtype == bool and truth.shape == (14,) + clean.shape
    assert np.array_equal(clean, before)  # the input is never modified
    for abbr in ABBREVIATIONS[:12]:
        assert truth[IDX[abbr]].any(), abbr
    assert np.array_equal(truth[IDX["BG"]], ~truth[:13].any(axis=0))


def test_seeds_are_deterministic_and_classes_independent(clean):
    a = inject(clean, seed=11)
    b = inject(clean, seed=11)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = inject(clean, seed=12)
    assert not np.array_equal(a[0], c[0])
    # each class draws from its own stream: CR's truth does not depend on the others asked for
    cr_alone = inject(clean, "CR", seed=11, fwhm=3.0)[1][IDX["CR"]]
    cr_with_trail = inject(clean, ["TRL", "CR"], seed=11, fwhm=3.0)[1][IDX["CR"]]
    assert np.array_equal(cr_alone, cr_with_trail)


def test_class_selection_and_errors(clean):
    assert parse_classes("cr, TRL") == ["CR", "TRL"]
    assert parse_classes(None) == list(ABBREVIATIONS[:12])
    with pytest.raises(ValueError, match="cannot inject BBG"):
        inject(clean, "CR,BBG")
    with pytest.raises(TypeError, match="unknown simulation parameter"):
        inject(clean, "CR", k_x=3)
    with pytest.raises(ValueError, match="2-D"):
        inject(clean[0], "CR")
    assert "darks" in parameter_names()["CR"] and "k_t" in parameter_names()["TRL"]
    image, truth = inject(clean, "TRL", seed=2)
    injected = [a for a in ABBREVIATIONS[:12] if truth[IDX[a]].any()]
    assert injected == ["TRL"]


def test_bbg_and_bg_rules(clean):
    image, truth = inject(clean, "HP", seed=4)
    level, sigma = kernels.estimate_background(clean)
    expected = clean > level + 10 * np.median(sigma)
    assert expected.sum() > 50
    assert np.array_equal(truth[IDX["BBG"]], expected)
    assert np.array_equal(truth[IDX["BG"]], ~(expected | truth[IDX["HP"]]))


# ----------------------------------------------------------------------------- shared pixel operations


@pytest.mark.parametrize("rows", [raster.square_half_widths(3), raster.square_half_widths(7),
                                  raster.disk_half_widths(6), raster.disk_half_widths(22)])
def test_dilate_and_erode_match_brute_force(rows):
    mask = np.random.default_rng(0).random((60, 70)) > 0.995
    assert np.array_equal(raster.dilate(mask, rows), brute_dilate(mask, rows))
    blob = raster.dilate(mask, raster.disk_half_widths(12))
    # erosion = complement of the complement's dilation; outside pixels count as set
    assert np.array_equal(raster.erode(blob, rows), ~brute_dilate(~blob, rows))


@pytest.mark.parametrize("diameter", [3, 6, 7, 22])
def test_disks_hold_the_offsets_within_the_radius(diameter):
    r = np.arange(-12, 13)
    inside = r[:, None] ** 2 + r[None, :] ** 2 <= (diameter / 2) ** 2
    rows = raster.disk_half_widths(diameter)
    assert sum(2 * hw + 1 for hw in rows.values()) == inside.sum()
    assert sum(2 * hw + 1 for hw in raster.square_half_widths(7).values()) == 49


def test_disk_mean_fft_convolve_and_splat():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(30, 40))
    rows = raster.disk_half_widths(7)
    y, x = 15, 20
    values = [image[y + dy, x + dx] for dy, hw in rows.items() for dx in range(-hw, hw + 1)]
    assert raster.disk_mean(image, 7)[y, x] == pytest.approx(np.mean(values), rel=1e-12)
    assert raster.disk_mean(image, 7)[0, 0] == pytest.approx(
        np.mean([image[dy, dx] for dy, hw in rows.items() if dy >= 0 for dx in range(0, hw + 1)]))
    kernel = rng.random((5, 5))
    direct = np.zeros_like(image)
    padded = np.pad(image, 2)
    for dy in range(5):
        for dx in range(5):
            direct += kernel[dy, dx] * padded[4 - dy:4 - dy + 30, 4 - dx:4 - dx + 40]
    assert np.allclose(raster.fft_convolve(image, kernel), direct, atol=1e-10)
    deposit = raster.splat((30, 40), [3.25, 10.0], [4.5, 39.0], [2.0, 1.0])
    assert deposit.sum() == pytest.approx(3.0)
    assert deposit[3, 4] == pytest.approx(2 * 0.75 * 0.5) and deposit[10, 39] == 1.0


def test_convex_polygon_fits_a_20px_box_and_is_convex():
    rng = np.random.default_rng(2)
    for _ in range(20):
        poly = raster.convex_polygon(rng)
        assert poly.shape == (20, 20) and poly.sum() >= 9
        for row in list(poly) + list(poly.T):  # convex: every row and column is one run
            runs = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
            assert len(runs) in (0, 2)


# ----------------------------------------------------------------------------- recipes


def test_cosmics_from_user_darks_follow_eq_1_2(clean, scene):
    rng = np.random.default_rng(5)
    dark = 50.0 + rng.normal(0, 4.0, SHAPE)
    hits = [(40, 50), (120, 200), (150, 30), (151, 31)]
    for y, x in hits:
        dark[y, x] += 800.0
    image = clean.astype(np.float64)
    truth = cosmics.inject_cosmics(image, scene, np.random.default_rng(9), darks=[dark])
    # 3-sigma detections dilated 3x3: each hit gives a 3x3 block (plus rare noise pixels)
    assert all(truth[y - 1:y + 2, x - 1:x + 2].all() for y, x in hits)
    level, sigma = kernels.estimate_background(dark.astype(np.float32))
    d, sigma_d = dark - level, np.median(sigma)
    assert sigma_d == pytest.approx(4.0, rel=0.1)
    # eq. 1 and the 3x3 dilation; 3-sigma noise pixels (0.13%) count too, as in the paper
    assert np.array_equal(truth, brute_dilate(d > np.median(d) + 3 * sigma_d, raster.square_half_widths(3)))
    added = image - clean
    assert np.all(added[~truth] == 0)
    expected = scene.sigma / sigma_d / 8 * d[truth]
    assert np.allclose(added[truth], expected, rtol=1e-5, atol=1e-3)  # eq. 2 (float32 darks)


def test_builtin_cosmics_truth_rule_and_scaling(clean, scene):
    for noise in (0.0, 1.0):
        dark = cosmics.dark_frame(SHAPE, np.random.default_rng(3), 600, 0.5, noise)
        assert np.median(dark) == pytest.approx(0, abs=0.05)
        if noise:
            assert np.std(dark[np.abs(dark) < 5]) == pytest.approx(1.0, abs=0.1)
        else:
            assert np.mean(dark == 0) > 0.9
        image = clean.astype(np.float64)
        truth = cosmics.inject_cosmics(image, scene, np.random.default_rng(3), cosmic_rate=600,
                                       worm_fraction=0.5, dark_noise=noise)
        hits = dark > np.median(dark) + 3.0
        assert np.array_equal(truth, brute_dilate(hits, raster.square_half_widths(3)))
        assert np.allclose((image - clean)[truth], scene.sigma / 8 * dark[truth])
        assert np.all(image[~truth] == clean[~truth])
        if noise == 0:  # the hits alone: 29 of them, half worms of up to 80 px
            assert 0.01 < truth.mean() < 0.08
            alone = truth.mean()
        else:  # plus 3-sigma noise pixels: 0.13%, about 1.2% once dilated
            assert 0.005 < truth.mean() - alone < 0.02


def test_columns_and_lines_follow_2_1_4(scene):
    for seed in range(10):
        rng = np.random.default_rng(seed)
        masks = defects._columns_and_lines(SHAPE, rng)
        assert 1 <= len(masks) <= 4
        for m in masks:
            ys, xs = np.nonzero(m)
            extent = sorted([np.ptp(ys) + 1, np.ptp(xs) + 1])
            assert m.sum() == extent[0] * extent[1]  # a filled rectangle
            assert 1 <= extent[0] <= 3 and extent[1] >= 30


def test_hot_and_dead_values(clean, scene):
    image = clean.astype(np.float64)
    truth = defects.inject_hot_columns(image, scene, np.random.default_rng(1))
    excess = (image - scene.level)[truth] / scene.sigma
    assert excess.min() > 15 * 0.9 and excess.max() < 100 * 1.1
    seen = set()
    for seed in range(30):
        values = defects.dead_values(scene, np.random.default_rng(seed), 500)
        if np.all(values == 0):
            seen.add("zero")
        elif np.all(np.abs(values) < 0.1 * scene.sigma):
            seen.add("near zero")
        else:
            base = np.mean(values)
            assert 0.1 * scene.sky <= base <= 0.7 * scene.sky
            assert np.all(np.abs(values - base) < 0.1 * base)
            seen.add("fraction of sky")
    assert seen == {"zero", "near zero", "fraction of sky"}


def test_points_fraction_and_clusters():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        assert 0.0002 * 48000 - 1 <= defects._points(SHAPE, rng).sum() <= 0.0005 * 48000 + 1
        clusters = defects._clusters(SHAPE, rng)
        assert 1 <= len(clusters) <= 4
        for c in clusters:
            ys, xs = np.nonzero(c)
            assert np.ptp(ys) < 20 and np.ptp(xs) < 20


def test_static_defects_come_last_and_own_their_pixels(clean):
    image, truth = inject(clean, "CR,DCL,HCL", seed=8)
    for abbr in ("DCL", "HCL"):
        assert not (truth[IDX[abbr]] & truth[IDX["CR"]]).any()
    hcl, dcl = truth[IDX["HCL"]], truth[IDX["DCL"]]
    assert not (hcl & dcl).any()  # HCL first, then DCL over it
    # a dead value replaced the pixel whatever light was there
    cr_only = inject(clean, "CR", seed=8)[0]
    assert np.all(image[dcl] < 0.8 * np.median(clean))
    assert np.any(cr_only[dcl] != image[dcl])


def test_overscan_strips(clean):
    for seed in range(6):
        image, truth = inject(clean, "OV", seed=seed)
        ov = truth[IDX["OV"]]
        widths = [np.argmin(np.r_[strip.all(axis=1), False]) for strip in (ov, ov[::-1], ov.T, ov.T[::-1])]
        assert 1 <= sum(w > 0 for w in widths) <= 2
        assert all(w == 0 or 10 <= w <= 30 for w in widths)  # at most min(50, side / 8)
        assert np.array_equal(ov, _strips(widths))
        assert np.all(image[ov] < 0.8 * np.median(clean))


def _strips(widths):
    mask = np.zeros(SHAPE, dtype=bool)
    top, bottom, left, right = widths
    mask[:top] = True
    mask[SHAPE[0] - bottom:] = True
    mask[:, :left] = True
    mask[:, SHAPE[1] - right:] = True
    return mask


def test_persistence_eq_5_integrates_eq_3():
    x_p, x_0, dx, gain, T, dt = 1.5e6, 9e4, 1.8e4, 10.0, 300.0, 50.0
    t = np.linspace(dt, dt + T, 200001)
    rate = 1 / (np.exp(-(x_p - x_0) / dx) + 1) * (x_p / x_0) ** persistence.ALPHA * (t / 1000) ** -persistence.GAMMA
    integral = np.sum((rate[1:] + rate[:-1]) / 2 * np.diff(t)) / gain
    assert persistence.fermi_persistence(x_p, x_0, dx, gain, T, dt) == pytest.approx(integral, rel=1e-6)


def test_persistence_levels(clean, scene):
    noiseless = dataclasses.replace(scene, gain=None)  # no photon noise on the added light
    image = clean.astype(np.float64)
    truth = persistence.inject_persistence(image, noiseless, np.random.default_rng(4))
    added = (image - clean)[truth]
    assert truth.sum() > 20 and np.all((image - clean)[~truth] == 0)
    assert added.max() == pytest.approx(5 * scene.sigma, rel=1e-9)  # eq. 6: k_P sigma_U at P_max
    assert added.min() > 0.2 * scene.sigma  # footprints differ by G and the time term only


def test_trail_truth_and_scaling(clean, scene):
    rng = np.random.default_rng(6)
    trail, population = trails.trail_image(scene, rng, population="satellite")
    ridge = np.percentile(trail[trail > 0.3 * trail.max()], 90)
    assert 0.8 < ridge < 12.0  # peak in [1, 10] sigma_T, +- jitter
    image = clean.astype(np.float64)
    truth = trails.inject_trails(image, scene, np.random.default_rng(6))
    rng = np.random.default_rng(6)  # the same draws: one trail (the 1/4 chance of two not taken)
    assert rng.random() >= 0.25
    trail, _ = trails.trail_image(scene, rng)
    assert np.array_equal(truth, brute_dilate(trail > trails.TRUTH_THRESHOLD, raster.square_half_widths(7)))
    added = image - clean
    assert np.allclose(added, 6 * scene.sigma * trail, atol=6 * np.sqrt(6 * scene.sigma * trail.max() / scene.gain))
    # a band: about (FWHM-wide core + 6) px wide across the image
    width = truth.sum() / max(np.ptp(np.nonzero(truth)[1]) + 1, np.ptp(np.nonzero(truth)[0]) + 1)
    assert 7 <= width <= 30


def test_meteor_pupil_width_eq_7(scene):
    pupil = raster.annular_pupil(180 / np.pi * 3600 * 8 / 80e3 / 0.2)  # 103 px at 0.2"/px
    ys, xs = np.nonzero(pupil)
    assert np.ptp(xs) + 1 == pytest.approx(103, abs=2) and pupil[pupil.shape[0] // 2, pupil.shape[1] // 2] == 0


def test_fringes_follow_eq_9_10(clean, scene):
    image = clean.astype(np.float64)
    truth = fringes.inject_fringes(image, scene, np.random.default_rng(3))
    rng = np.random.default_rng(3)  # the same draws, recomputed from the recipe's parts
    pattern = raster.disk_mean(fringes.fringe_pattern(SHAPE, rng), 7)
    e = fringes.envelope(SHAPE, rng)
    assert e.min() == pytest.approx(-1) and e.max() == pytest.approx(1)
    expected = 0.6 * scene.sigma / pattern.std() * pattern / (1 + np.exp(-5 * e))
    assert np.allclose(image - clean, expected, atol=1e-3)
    assert np.array_equal(truth, e > -0.20)


def test_nebulosity_eq_11_and_truth(clean, scene):
    image = clean.astype(np.float64)
    truth = nebulosity.inject_nebulosity(image, scene, np.random.default_rng(2))
    added = image - clean
    assert added.std() == pytest.approx(1.3 * scene.sigma, rel=1e-3)
    n = added / added.std()
    expected = raster.dilate(raster.erode(n > 1, raster.disk_half_widths(6)), raster.disk_half_widths(22))
    assert np.array_equal(truth, expected)
    assert 0.02 < truth.mean() < 0.9


def test_saturated_stars_bleed_along_columns(clean):
    image, truth = inject(clean, "SAT", seed=5, saturation=40000.0, fwhm=3.0)
    sat = truth[IDX["SAT"]]
    assert np.array_equal(sat, image >= 40000.0) and image.max() == 40000.0
    assert not truth[IDX["SP"]].any()
    ys, xs = np.nonzero(sat)
    assert np.ptp(ys) > np.ptp(xs) or len(np.unique(xs)) < 30  # bleeds run along the columns
    sideways = inject(clean, "SAT", seed=5, saturation=40000.0, fwhm=3.0, readout_axis=1)[1][IDX["SAT"]]
    assert sideways.sum(axis=1).max() > sat.sum(axis=1).max()


def test_spikes_around_saturated_stars(clean):
    image, truth = inject(clean, "SP", seed=5, saturation=40000.0, fwhm=3.0)
    sp, sat = truth[IDX["SP"]], truth[IDX["SAT"]]
    assert sp.any() and sat.any()  # the spikes' stars saturate
    assert sp.sum() > sat.sum()  # arms reach beyond the saturated cores
    # with SAT asked too, the stars come from SAT's stream; some of them have spikes long enough
    assert any(inject(clean, "SAT,SP", seed=s, saturation=40000.0, fwhm=3.0)[1][IDX["SP"]].any()
               for s in range(5))


def test_spike_truth_is_light_above_3_sigma(clean, scene):
    rng = np.random.default_rng(1)
    rows, cols, light = saturation._spike_light(SHAPE, 100.0, 120.0, 1e8, scene, rng)
    above = light > 3 * scene.sigma
    length = saturation.arm_length(light, scene)
    ys, xs = np.nonzero(above)
    assert length == 0.5 * max(np.ptp(ys), np.ptp(xs)) and length >= 5 * scene.fwhm
    image = clean.astype(np.float64)
    truth = saturation.inject_saturated_stars(image, scene, np.random.default_rng(3), spikes=True)
    assert truth.sum() > 0
    # every labelled pixel lies within one pixel of spike light above 3 sigma_U
    assert np.all((image - clean)[raster.erode(truth, raster.square_half_widths(3))] > 3 * scene.sigma * 0.5)


def test_masker_runs_on_a_given_compressed_plane(clean):
    from maximask.masker import Masker

    masker = Masker(OUTPUT_TYPE="PROBA", PRIOR_CORRECTION=False, CLASSES=list(ABBREVIATIONS), VERBOSE_TYPE="QUIET")
    image = inject(clean, "OV", seed=1)[0]
    assert np.array_equal(masker.run_compressed(kernels.compress_image(image)), masker.run(image))
    level, sigma = kernels.estimate_background(clean)  # the realism check's clean background
    other = masker.run_compressed(kernels.asinh_compress(image, level, sigma))
    assert other.shape == (14,) + SHAPE and not np.array_equal(other, masker.run(image))


def test_no_data_pixels_stay_no_data(clean):
    holed = clean.copy()
    holed[50:60, 70:90] = np.nan
    image, truth = inject(holed, seed=6, saturation=40000.0)
    static = truth[[IDX[a] for a in ("HCL", "DCL", "HP", "DP", "OV")]].any(axis=0)
    assert np.array_equal(np.isnan(image), np.isnan(holed) & ~static)
    assert not truth[IDX["BBG"]][50:60, 70:90].any()
