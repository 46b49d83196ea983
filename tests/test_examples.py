"""What the README and docs/getting_started.md say the shipped examples show is what maximask flags in them."""
import hashlib
import os

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from maximask.cli import main_mask

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
BIT = {"CR": 0, "HCL": 1, "DCL": 2, "SAT": 9, "OV": 11, "TRL": 6}


def flags_of(tmp_path, name):
    path = os.path.join(EXAMPLES, name)
    before = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert main_mask([path, "-OUTPUT_DIR", str(tmp_path), "-VERBOSE_TYPE", "QUIET"]) == 0
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == before
    out = [f for f in os.listdir(tmp_path) if f.endswith(".mask.fits")][0]
    with fits.open(tmp_path / out) as hdul:
        return next(h.data for h in hdul if h.data is not None)


def plane(flags, cls):
    return (flags >> BIT[cls]) & 1 == 1


def test_synthetic_example_trail_column_saturation_and_cosmic_rays(tmp_path):
    flags = flags_of(tmp_path, "field.fits.fz")
    trail = plane(flags, "TRL")
    rows = np.flatnonzero(trail.any(axis=1))
    assert len(rows) > 900  # a line crossing the 1024-row image, flagged as a trail
    assert np.percentile(trail.sum(axis=1)[rows], 90) < 25  # a line, not an area
    assert plane(flags, "HCL").sum(axis=0).max() > 900  # the hot column
    assert plane(flags, "SAT").sum() > 300
    assert ndimage.label(plane(flags, "CR"))[1] > 50


def test_real_ccd_frame_overscan_dead_columns_and_cosmic_rays(tmp_path):
    flags = flags_of(tmp_path, "ccdproc_a8280271.fits.fz")
    assert flags.shape == (520, 536)
    ov = plane(flags, "OV")
    assert ov[:, :16].sum() > 1000 and ov[:, 16:].sum() == 0  # the left overscan strip only
    dcl = plane(flags, "DCL")
    assert dcl[:, 528:].sum() > 900  # the right strip, 8 columns at bias level
    assert dcl[512:, 16:528].sum() > 100  # the last 8 rows, also at bias level
    assert dcl[:512, 16:528].sum() < 10  # nothing in the exposed area
    hits = ndimage.label(plane(flags, "CR"))[1]
    assert 8 <= hits <= 20
    assert not plane(flags, "SAT").any()  # its stars peak at 1715 ADU
