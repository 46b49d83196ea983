#!/usr/bin/env python3
"""Run the reference MaxiTrack 1.4.1 command on two generated exposures (one well guided,
one whose stars are slightly smeared, scoring near 0.5); save the fields and the reference scores as
tests/data/track_reference.npz for tests/test_tracker.py.

Fields are 850 x 830 (four 400 px tiles anchored at (h % 400, w % 400), the rest unused),
rounded to integer ADU and stored as uint16. Scores are the reference's defaults
(prior 0.05), read back from the maxitrack.out it writes (4 decimals; the test tolerance
is 1.5e-3).

Developer tool, with the reference installed as in shared/REFERENCE.md:
    PYTHONPATH=<unpacked MaxiMask 1.4.1 wheel> refenv/bin/python tools/make_track_fixture.py
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

OUT = os.path.join(HERE, "..", "tests", "data", "track_reference.npz")
SHAPE = (850, 830)


def main():
    fields = {
        "guided": make_field(SHAPE, seed=51, saturated=1),
        "marginal": make_field(SHAPE, seed=52, saturated=1, tracking_error=True, elongation=1.3),
    }
    scores = {}
    code = "from maximask_and_maxitrack.maxitrack.maxitrack import main; main()"
    with tempfile.TemporaryDirectory() as tmp:
        for name, field in fields.items():
            field = np.clip(np.round(field), 0, 65535).astype(np.uint16)
            fields[name] = field
            path = os.path.join(tmp, f"{name}.fits")
            fits.PrimaryHDU(field.astype(np.float32)).writeto(path)
            subprocess.run([sys.executable, "-c", code, path], check=True, cwd=tmp)
        with open(os.path.join(tmp, "maxitrack.out")) as f:
            for line in f:
                path, score = line.split()
                scores[os.path.basename(path)[:-5]] = float(score)
    np.savez_compressed(OUT, guided=fields["guided"], marginal=fields["marginal"],
                        scores=np.array([scores["guided"], scores["marginal"]]))
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB); scores {scores}")


if __name__ == "__main__":
    main()
