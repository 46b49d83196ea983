"""The masking pipeline end to end against the reference MaxiMask 1.4.1 command."""
import numpy as np

from maximask.classes import ABBREVIATIONS
from maximask.masker import Masker


def test_probabilities_match_the_reference(e2e):
    masker = Masker(tile_size=400, tile_margin=100, output_type="PROBA", prior_correction=False,
                    classes=",".join(ABBREVIATIONS), verbose_type="QUIET")
    field = e2e["field"]
    assert field.shape[0] % 400 and field.shape[1] % 400
    proba = masker.run(field)
    assert proba.shape == (14,) + field.shape and proba.dtype == np.float32
    s = int(e2e["stride"])
    diff = np.abs(proba[:, ::s, ::s] - e2e["proba_u16"] / 65535.0)
    for k, abbr in enumerate(ABBREVIATIONS):
        assert np.percentile(diff[k], 99.99) <= 1e-3, abbr
    assert diff.max() < 0.05


def test_default_flags_match_the_reference_single_mask(e2e):
    flags = Masker(verbose_type="QUIET").run(e2e["field"])
    assert flags.dtype == np.int16
    reference = e2e["single_mask"].astype(np.int32) & 0xFFF  # bits 0-11; ours omit BBG by default
    assert reference.any(), "the fixture must flag something"
    assert np.mean(flags != reference) <= 1e-4
    assert not (flags & (1 << 12)).any() and not (flags & (1 << 13)).any()


def test_output_types_agree_with_each_other(e2e):
    field = e2e["field"][:300, :450]
    common = dict(classes="CR,HCL,SAT,BBG,BG", verbose_type="QUIET")
    proba = Masker(output_type="PROBA", **common).run(field)
    masks = Masker(output_type="MASKS", **common).run(field)
    flags = Masker(output_type="FLAGS", **common).run(field)
    weight = Masker(output_type="WEIGHT", **common).run(field)
    thresholds = Masker(**common).thresholds
    classes = [ABBREVIATIONS.index(a) for a in ("CR", "HCL", "SAT", "BBG", "BG")]
    for plane, k in enumerate(classes):
        np.testing.assert_array_equal(masks[plane], proba[plane] > thresholds[k])
        if ABBREVIATIONS[k] != "BG":
            np.testing.assert_array_equal((flags >> k) & 1, masks[plane])
    np.testing.assert_array_equal(weight, (flags == 0).astype(np.uint8))


def test_small_image_is_padded_not_skipped(e2e):
    field = e2e["field"][100:190, 200:330]
    flags = Masker(verbose_type="QUIET").run(field)
    assert flags.shape == field.shape


def test_cube_planes_are_masked_apart(e2e):
    field = e2e["field"][:250, :300]
    masker = Masker(verbose_type="QUIET", output_type="PROBA", classes="CR,SAT")
    cube = masker.run(np.stack([field, field[::-1]]))
    assert cube.shape == (2, 2) + field.shape
    np.testing.assert_allclose(cube[1], masker.run(field[::-1]), atol=1e-6)


def test_concurrent_batches_give_the_sequential_result(e2e):
    """Two single-threaded network runs at once (NTHREADS 2) against one at a time."""
    common = dict(output_type="PROBA", classes="CR,HP,SAT,BG", batch_size=2, verbose_type="QUIET")
    concurrent = Masker(nthreads=2, **common)
    sequential = Masker(nthreads=1, **common)
    assert (concurrent.network.workers, sequential.network.workers) == (2, 1)
    field = e2e["field"]
    np.testing.assert_array_equal(concurrent.run(field), sequential.run(field))
