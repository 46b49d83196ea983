"""One correct line for each problem a user can cause (issue 18), from real processes.

Each test runs an installed command as a separate process (``python -c`` calling its
entry point, the installed package rather than the source folder) and checks the exit
code, the exact line on stderr, and that nothing was written or changed.
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from maximask.synthetic import make_field

ENV = dict(os.environ, PYTHONSAFEPATH="1")
MAINS = {"maximask": "main_mask", "maxitrack": "main_track", "maxieval": "main_eval"}


def run(command, *argv, cwd):
    code = f"import sys; from maximask.cli import {MAINS[command]} as main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=600)


def digests(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def write_image(path, seed=1, shape=(230, 250)):
    fits.PrimaryHDU(make_field(shape, seed=seed, saturated=1)).writeto(path)
    return str(path)


# ------------------------------------------------------------------ maxitrack OUTPUT_NAME

def test_maxitrack_refuses_an_existing_output_name_without_overwrite(tmp_path):
    write_image(tmp_path / "t.fits", shape=(400, 400))
    (tmp_path / "maxitrack.out").write_text("my own notes\n")
    before = digests(tmp_path)
    result = run("maxitrack", "t.fits", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("maxitrack: OUTPUT_NAME maxitrack.out: output file already exists; "
                             "set -OVERWRITE Y to replace it\n")
    assert digests(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["maxitrack.out", "t.fits"]
    result = run("maxitrack", "t.fits", "-OVERWRITE", "Y", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    text = (tmp_path / "maxitrack.out").read_text()
    assert text.startswith("# maxitrack ") and text.splitlines()[-1].startswith("t.fits 0.")
