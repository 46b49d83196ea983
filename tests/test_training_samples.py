"""Training samples: the §2.3.4 augmentations, the §2.3.3 compression, the validation split."""
import numpy as np
import pytest

from maximask import kernels
from maximask.classes import ABBREVIATIONS
from maximask.simulation import inject
from maximask.simulation.synthetic import clean_field
from maximask.training.samples import (CleanField, SampleSet, TileSet, compress, estimate_fwhm, rebin2,
                                       split_fields)

CR, HCL, TRL, FR, NEB = (ABBREVIATIONS.index(a) for a in ("CR", "HCL", "TRL", "FR", "NEB"))


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_quarter_turns_rotate_cr_fringe_and_nebulosity_patterns_only(turns):
    flat = np.full((160, 160), 1000.0, np.float32)  # rotation-invariant scene: same draws either way
    _, plain = inject(flat, "CR,FR,NEB,HCL", seed=5)
    _, turned = inject(flat, "CR,FR,NEB,HCL", seed=5, quarter_turns=turns)
    columns = turned[HCL] | np.rot90(plain[HCL], -turns)  # hot columns own their pixels, in both
    for k in (CR, FR, NEB):
        assert plain[k].any()
        assert np.array_equal(turned[k] & ~columns, np.rot90(plain[k], -turns) & ~columns)
        assert not np.array_equal(turned[k], plain[k])
    assert np.array_equal(turned[HCL], plain[HCL])  # columns stay columns


@pytest.mark.parametrize("fwhm", [3.0, 5.0, 8.0])
def test_fwhm_is_measured_within_ten_percent(fwhm):
    assert estimate_fwhm(clean_field((512, 512), seed=3, fwhm=fwhm)) == pytest.approx(fwhm, rel=0.1)


def test_fwhm_of_pure_noise_is_unknown():
    noise = np.random.default_rng(0).normal(100, 5, (300, 300)).astype(np.float32)
    assert estimate_fwhm(noise) is None


def test_compression_adds_one_random_offset_per_sample():
    image = clean_field((256, 256), seed=1)
    level, sigma = kernels.estimate_background(image)
    x = compress(image, np.random.default_rng(4))
    offset = (np.sinh(x.astype(np.float64)) * sigma + level - image)  # asinh((C - B + o) / sigma)
    sky = np.abs(image - level) < 3 * sigma  # away from the stars, where float32 rounding is small
    noise = float(np.median(sigma))  # ADU; a Python float (pytest.approx takes no NumPy float32)
    assert np.ptp(offset[sky]) < 1e-2 * noise
    expected = np.random.default_rng(4).normal() * noise  # N(0, sigma_U^2), drawn first
    assert float(np.median(offset[sky])) == pytest.approx(expected, abs=1e-3 * noise)


def test_rebinning_sums_2x2_blocks():
    image = np.arange(24, dtype=np.float32).reshape(4, 6)
    assert np.array_equal(rebin2(image), [[14, 22, 30], [62, 70, 78]])


@pytest.fixture(scope="module")
def fields():
    return [CleanField.from_array(f"f{i}", clean_field((400, 400), seed=i, fwhm=f))
            for i, f in enumerate((3.0, 9.0, 3.5))]


def test_samples_are_functions_of_the_seed_and_index(fields):
    samples = SampleSet(fields, 96, "CR,HCL,TRL,SAT", focus=["TRL"], seed=2)
    x1, t1, info1 = samples.sample(7)
    x2, t2, info2 = samples.sample(7)
    assert np.array_equal(x1, x2) and np.array_equal(t1, t2) and info1 == info2
    assert not np.array_equal(samples.sample(8)[0], x1)
    assert not np.array_equal(SampleSet(fields, 96, "CR,HCL,TRL,SAT", focus=["TRL"], seed=3).sample(7)[0], x1)
    x, labels = samples.batch([0, 1, 2])
    assert x.shape == (3, 1, 96, 96) and x.dtype == np.float32
    assert labels.shape == (3, 14, 96, 96) and labels.dtype == np.uint8


def test_focus_classes_are_in_every_sample_and_augmentations_vary(fields):
    samples = SampleSet(fields, 96, "CR,HCL,TRL,SAT", focus=["TRL"], seed=2)
    infos = [samples.sample(i) for i in range(40)]
    assert all("TRL" in info["classes"] and truth[TRL].any() for _, truth, info in infos)
    assert {len(info["classes"]) for _, _, info in infos} > {1, 2}  # the others with probability 1/2
    assert {info["quarter_turns"] for _, _, info in infos} == {0, 1, 2, 3}
    rebinned = [info for _, _, info in infos if info["rebinned"]]
    assert rebinned and all(info["field"] == "f1" for info in rebinned)  # FWHM 9 stays > 2 px binned, not 3 or 3.5
    assert all(info["fwhm"] == pytest.approx(fields[1].fwhm / 2) for info in rebinned)
    assert not any(info["rebinned"] for info in (s[2] for s in infos) if info["field"] != "f1")
    no_rebin = SampleSet(fields, 96, "CR,TRL", seed=2, rebin=False)
    assert not any(no_rebin.sample(i)[2]["rebinned"] for i in range(40))


def test_class_fractions_follow_the_samples(fields):
    samples = SampleSet(fields, 96, "CR,TRL", focus=["TRL"], seed=2)
    fractions = samples.class_fractions(6)
    truths = np.stack([samples.sample(i)[1] for i in range(6)])
    assert np.allclose(fractions, truths.mean(axis=(0, 2, 3)))
    assert fractions[TRL] > 0 and fractions[FR] == 0


def test_validation_images_are_kept_apart():
    items = list(range(10))
    train, valid = split_fields(items, 0.2, seed=1)
    assert len(valid) == 2 and not set(train) & set(valid) and sorted(train + valid) == items
    assert split_fields(items, 0.2, seed=1) == (train, valid)
    assert len(split_fields(items[:2], 0.01)[1]) == 1  # at least one
    with pytest.raises(ValueError, match="at least 2"):
        split_fields(items[:1], 0.2)


def test_images_smaller_than_a_sample_are_refused(fields):
    with pytest.raises(ValueError, match="f0, f1, f2"):
        SampleSet(fields, 512, "CR")
    with pytest.raises(ValueError, match="400 px"):
        TileSet([CleanField("small", np.ones((300, 500), np.float32), 0.0)], [1])


def test_maxitrack_tiles_carry_their_images_label(fields):
    tiles = TileSet(fields[:2], [0, 1], seed=1)
    x, y = tiles.batch(range(12))
    assert x.shape == (12, 1, 400, 400) and set(y.tolist()) == {0, 1}
    assert tiles.label_fractions() == pytest.approx([0.5, 0.5])
