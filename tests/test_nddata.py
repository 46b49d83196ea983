"""astropy users' API: the FLAGS bits by name for astropy.nddata.bitmask, and NDData/CCDData in
and out of the Masker, on the shipped real CCD frame."""
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData
from astropy.nddata.bitmask import bitfield_to_boolean_mask

from maximask import Masker
from maximask.classes import CLASSES
from maximask.nddata import FLAG_BITS, FLAG_NAME_MAP, class_bits, mask_nddata

FRAME = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                     "ccdproc_a8280271.fits.fz")


@pytest.fixture(scope="module")
def masker():
    return Masker(verbose_type="QUIET")


@pytest.fixture(scope="module")
def frame():
    return CCDData(fits.getdata(FRAME).astype(np.float32), unit="adu")


def test_flag_name_map_matches_the_class_table_and_the_header_cards():
    assert len(FLAG_BITS) == 13 and "BG" not in FLAG_BITS
    for c in CLASSES[:13]:
        assert getattr(FLAG_NAME_MAP, c.abbr) == 1 << c.index
    assert FLAG_NAME_MAP.SAT == 512 and FLAG_NAME_MAP.CR == 1
    assert class_bits("cr, SAT") == 513 and class_bits(["OV"]) == 2048
    with pytest.raises(ValueError, match="'BG' is not a FLAGS class"):
        class_bits("CR,BG")


def test_ignore_flags_ignores_and_tilde_selects():
    # every pair of a CR, HCL and SAT combination: 0, CR, HCL, SAT, CR+SAT, CR+HCL
    flags = np.array([0, 1, 2, 512, 513, 3], dtype=np.int16)
    keep = bitfield_to_boolean_mask(flags, ignore_flags="~CR,SAT", flag_name_map=FLAG_NAME_MAP)
    assert keep.tolist() == [False, True, False, True, True, True]
    ignore = bitfield_to_boolean_mask(flags, ignore_flags="CR,SAT", flag_name_map=FLAG_NAME_MAP)
    assert ignore.tolist() == [False, False, True, False, False, True]


def test_ccddata_in_ccddata_out_as_ccdproc(masker, frame, tmp_path):
    before = frame.data.copy()
    out = masker.run_nddata(frame, mask_classes="CR")
    assert isinstance(out, CCDData) and out.unit == frame.unit
    assert frame.mask is None and np.array_equal(frame.data, before)  # input untouched
    flags = masker.run(frame.data)
    assert out.flags.dtype == np.int16 and np.array_equal(out.flags, flags)
    assert np.array_equal(out.mask, flags & 1 == 1)
    assert 50 < out.mask.sum() < 400  # a dozen hits (the README's claim: about 130 pixels)
    # default: the union of the masker's CLASSES, so the overscan strip is in too
    union = mask_nddata(masker, frame)
    assert np.array_equal(union.mask, flags != 0) and union.mask[:, :16].sum() > 1000
    # writes as a CCDData with its FLAGS extension
    union.write(tmp_path / "x.fits", hdu_flags="FLAGS")
    with fits.open(tmp_path / "x.fits") as hdul:
        assert np.array_equal(hdul["FLAGS"].data, flags)


def test_existing_mask_is_kept_and_plain_nddata_works(masker, frame):
    prior = np.zeros(frame.shape, bool)
    prior[100, 200] = True
    out = masker.run_nddata(NDData(frame.data, mask=prior), mask_classes=["SAT"])
    assert type(out) is NDData and out.mask.sum() == 1 and out.mask[100, 200]  # no SAT here
    assert out.flags.shape == frame.shape


def test_bad_inputs(masker, frame):
    with pytest.raises(TypeError, match="NDData or CCDData expected, got ndarray"):
        masker.run_nddata(frame.data)
    with pytest.raises(ValueError, match="2-D image expected"):
        masker.run_nddata(NDData(np.ones((2, 70, 70), np.float32)))
    with pytest.raises(ValueError, match="OUTPUT_TYPE FLAGS"):
        mask_nddata(Masker(output_type="MASKS"), frame)
