#!/usr/bin/env python3
"""Run the reference MaxiMask 1.4.1 command end to end on a generated field; save the field
and the reference outputs as tests/data/e2e_reference.npz for tests/test_masker.py.

The field (530 x 610: sides not multiples of 400) comes from maximask.simulation.synthetic. Two
reference runs on it as a FITS file: raw probabilities of all 14 classes
(``--prior_modif False --proba_thresh False``), kept on every other row and column and
quantised to 1/65535 (error <= 7.7e-6); and the default single mask (prior correction,
thresholds, ``--single_mask True``), kept whole.

Developer tool, with the reference installed as in shared/REFERENCE.md:
    PYTHONPATH=<unpacked MaxiMask 1.4.1 wheel> refenv/bin/python tools/make_e2e_fixture.py
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from astropy.io import fits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from maximask.simulation.synthetic import make_field  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "data", "e2e_reference.npz")
SHAPE, SEED, STRIDE = (530, 610), 21, 2


def reference(path, *options):
    code = "from maximask_and_maxitrack.maximask.maximask import main; main()"
    subprocess.run([sys.executable, "-c", code, path, *options], check=True)
    with fits.open(path.replace(".fits", ".mask.fits")) as hdul:
        return hdul[0].data.copy()


def main():
    field = make_field(SHAPE, seed=SEED, saturated=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "field.fits")
        fits.PrimaryHDU(field).writeto(path)
        proba = reference(path, "--prior_modif", "False", "--proba_thresh", "False")
        single = reference(path, "--single_mask", "True")
    quantised = np.round(proba[:, ::STRIDE, ::STRIDE] * 65535).astype(np.uint16)
    np.savez_compressed(OUT, field=field, proba_u16=quantised, stride=STRIDE, single_mask=single)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB); proba {proba.shape}, "
          f"single mask {single.dtype} {single.shape}; flagged fraction per bit:",
          [round(float(((single >> k) & 1).mean()), 5) for k in range(13)])


if __name__ == "__main__":
    main()
